"""Shared test set-up. The shared helpers themselves are plain functions in ``tests/helpers.py``.

Test files import them as ``from helpers import ramp_image, run_cli, ...``. Under pytest's default import mode
(``prepend``, as pyproject.toml leaves it) ``tests/`` is already on ``sys.path`` because it has no ``__init__.py``;
the insertion below makes the import work under ``--import-mode=importlib`` too.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
