"""The ``splatpix`` command line: one module per command group, wired together here.

* :mod:`.model`: ``fit``, ``render``, ``info``, ``demo``; :mod:`.codec`: ``encode``, ``decode``;
  :mod:`.eval`: ``eval rd|bdrate|plot``, ``bench kernel``; :mod:`.edit`: ``edit``, ``animate``;
  :mod:`.simulate`: ``simulate``; :mod:`.view`: ``view``; :mod:`.batch`: ``batch encode|fit``.
* :mod:`.common`: exit codes, argument types, output checks; :mod:`.options`: the fit and codec option groups that
  several commands share.

Every user error ends with one line on stderr (``splatpix: error: ...``) and a non-zero exit code, never a
traceback (set ``SPLATPIX_DEBUG=1`` to see one). Outputs are written to a temporary file and renamed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import jit
from ..errors import SplatpixError
from . import batch, codec, edit, model, simulate, view
from . import eval as eval_cmd
from .common import EXIT_DIVERGED, EXIT_ERROR, EXIT_INTERNAL, positive_int

__all__ = ["EXIT_DIVERGED", "EXIT_ERROR", "EXIT_INTERNAL", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``splatpix: error: ... (see splatpix encode --help)``), exit 2;
    sub-commands inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"splatpix: error: {message} (see {self.prog} --help)\n")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that temporary outputs are removed as on Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


# each module's add_parsers and the commands it adds, in the order of the help text
_GROUPS = (
    (model, ("fit", "render", "info", "demo")),
    (codec, ("encode", "decode")),
    (eval_cmd, ("bench", "eval")),
    (batch, ("batch",)),
    (edit, ("edit", "animate")),
    (simulate, ("simulate",)),
    (view, ("view",)),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or, when ``command`` names one, only the group of commands that defines it: building
    the options of ``edit`` or ``eval`` imports torch, which ``splatpix decode``, ``info`` and ``render`` of a
    GaussianImage-kind model do not need (a second or more of start-up)."""
    parser = _Parser(prog="splatpix", description="Images as 2D Gaussians.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = [g for g in _GROUPS if command in g[1]] or _GROUPS
    for module, _ in groups:
        module.add_parsers(sub)
    _add_threads(parser)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def _add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` on every command (each leaf of the sub-command tree)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.add_argument("--threads", type=positive_int, default=None,
                            help="CPU threads for the kernels and torch (default: all cores)")
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            _add_threads(child)


def _set_threads(n: int | None) -> None:
    if n is None:
        return
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = str(n)  # torch reads it when a command imports it


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    debug = bool(os.environ.get("SPLATPIX_DEBUG"))
    previous = None
    engine = jit.engine()  # a command may select the numpy engine (cli.common.start_engine): restored after it
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _set_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except SplatpixError as e:
        print(f"splatpix: error: {e}", file=sys.stderr)
        return int(getattr(e, "exit_code", EXIT_ERROR))
    except _Terminated as e:  # a message: what the command saved before stopping
        print(f"splatpix: terminated: {e}" if str(e) else "splatpix: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt as e:
        print(f"splatpix: interrupted: {e}" if str(e) else "splatpix: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            raise
        print("splatpix: error: out of memory (a smaller output, fewer Gaussians or a lower --max-pixels/"
              "--max-gaussians budget may help)", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError, RuntimeError) as e:
        if debug:
            raise
        print(f"splatpix: error: {_first_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # a bug: one line, not a traceback
        if debug:
            raise
        print(f"splatpix: internal error: {type(e).__name__}: {_first_line(e)} (this is a bug in splatpix: please "
              "report it with the command that caused it; SPLATPIX_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        jit.set_engine(engine)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
