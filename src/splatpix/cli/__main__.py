"""``python -m splatpix.cli``: the ``splatpix`` command."""

import sys

from . import main

sys.exit(main())
