"""The ``splatpix`` command line: one module per command group, wired together here.

* :mod:`.model`: ``fit``, ``render``, ``info``, ``demo``; :mod:`.codec`: ``encode``, ``decode``;
  :mod:`.eval`: ``eval rd|bdrate|plot``, ``bench kernel``; :mod:`.edit`: ``edit``, ``animate``;
  :mod:`.simulate`: ``simulate``.
* :mod:`.common`: exit codes, argument types, output checks; :mod:`.options`: the fit and codec option groups that
  several commands share.

Every user error ends with one line on stderr (``splatpix: error: ...``) and a non-zero exit code, never a
traceback (set ``SPLATPIX_DEBUG=1`` to see one). Outputs are written to a temporary file and renamed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import SplatpixError
from . import codec, edit, model, simulate
from . import eval as eval_cmd
from .common import EXIT_DIVERGED, EXIT_ERROR

__all__ = ["EXIT_DIVERGED", "EXIT_ERROR", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="splatpix", description="Images as 2D Gaussians.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model.add_parsers(sub)  # fit, render, info, demo
    codec.add_parsers(sub)  # encode, decode
    eval_cmd.add_parsers(sub)  # bench, eval
    edit.add_parsers(sub)  # edit, animate
    simulate.add_parsers(sub)  # simulate
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SplatpixError as e:
        print(f"splatpix: error: {e}", file=sys.stderr)
        return int(getattr(e, "exit_code", EXIT_ERROR))
    except KeyboardInterrupt:
        print("splatpix: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, OSError, ValueError, RuntimeError) as e:
        if os.environ.get("SPLATPIX_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"splatpix: error: {msg}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
