"""View and edit a ``.spix`` file or a model in the web browser (``splatpix view``).

::

    splatpix view FILE.spix|MODEL.safetensors [--port P] [--no-browser]
    splatpix view FILE.spix|MODEL.safetensors --export PAGE.html

Serves a viewer and editor on ``http://127.0.0.1:P/`` (``--port 0``, the default, picks a free port) and opens it
in the web browser; Ctrl-C stops it. The page decodes ``.spix`` files itself and renders with WebGL2; GaINeR fields
are rendered by the server. ``--export`` writes one self-contained HTML file that opens offline (docs/viewer.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import SplatpixError
from .common import plain

__all__ = ["add_parsers", "cmd_view"]


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {v}")
    return v


def cmd_view(args: argparse.Namespace) -> int:
    from ..viewer import Source, ViewerServer, export_html

    source = Source(args.file)
    if args.export:
        if args.port is not None or args.no_browser:
            raise SplatpixError("--export writes a file; --port and --no-browser apply to the server only")
        n = export_html(source, args.export)
        print(f"{args.file}: exported {source.size[1]}x{source.size[0]}, {source.n} Gaussians -> {args.export} "
              f"({n} bytes)")
        return 0
    server = ViewerServer(source, 0 if args.port is None else args.port)
    kind = {"spix": f".spix ({source.method})", "gaussians": "model", "gainer": "GaINeR field"}[source.kind]
    print(f"splatpix view: {args.file} ({kind}, {source.size[1]}x{source.size[0]}, {source.n} Gaussians) at "
          f"{server.url} (Ctrl-C stops)", flush=True)
    if not args.no_browser:
        import webbrowser

        if not webbrowser.open(server.url):
            print("splatpix view: could not start a web browser; open the URL above", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt as e:
        server.shutdown()
        if type(e) is not KeyboardInterrupt:  # SIGTERM: the CLI's exit status for it
            raise
        print("splatpix view: stopped", flush=True)
        return 0
    server.shutdown()
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``view`` to an ``argparse`` subparsers object; it sets ``func`` to its handler."""
    p = sub.add_parser("view", help="view and edit a .spix file or a model in the web browser",
                       description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help=".spix file or model (.safetensors; GaussianImage or GaINeR)")
    p.add_argument("--port", type=_port, default=None, help="port on 127.0.0.1 (default 0: any free port)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser; print the URL only")
    p.add_argument("--export", metavar="PAGE.html", help="write one self-contained HTML page instead of serving")
    p.set_defaults(func=cmd_view)
