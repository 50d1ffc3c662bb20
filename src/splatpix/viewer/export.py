"""``splatpix view --export page.html FILE``: one self-contained HTML file that opens offline anywhere.

The page's stylesheet is inlined; its JavaScript modules (the viewer's and the ``.spix`` decoder's) become
``data:`` URLs tied together by an import map: each relative import specifier (``'./gl.js'``, which cannot be
resolved against a ``data:`` URL) is rewritten to the bare specifier ``'@splatpix/<path from static/>'`` that the
map sends to the target's ``data:`` URL; nothing else in the modules changes. The file's bytes are embedded as
base64 (a ``.spix`` file as it is, a GaussianImage model as the viewer's array message, :mod:`.arrays`) and decoded
by the page. Saving a model needs the server; the exported page can download PNGs. GaINeR fields render in Python
and cannot be exported.
"""

from __future__ import annotations

import base64
import json
import os
import re

from ..errors import SplatpixError
from ..io import atomic_write_bytes, check_not_input
from .server import TOKEN_META, static_dir
from .source import Source

__all__ = ["export_html", "module_graph"]

_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])(\.{1,2}/[^'"\s]+)\1""")
ENTRY = "app.js"
_CSS_TAG = '<link rel="stylesheet" href="viewer.css">'
_ENTRY_TAG = '<script type="module" src="app.js"></script>'


def _data_url(text: str) -> str:
    return "data:text/javascript;base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")


def bare(rel: str) -> str:
    """The import-map specifier of the module at ``rel`` (a path under static/)."""
    return "@splatpix/" + rel


def module_graph(root: str, entry: str = ENTRY) -> dict[str, str]:
    """``{relative path: source}`` of the modules reachable from ``entry`` by static or dynamic imports of relative
    paths, each import of another module rewritten to :func:`bare` (specifiers naming no file are left alone)."""
    out: dict[str, str] = {}
    todo = [entry]
    while todo:
        rel = todo.pop()
        if rel in out:
            continue
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            text = f.read()

        def rewrite(m: re.Match[str], rel: str = rel) -> str:
            spec = m.group(2)
            target = os.path.normpath(os.path.join(os.path.dirname(rel), spec)).replace(os.sep, "/")
            if target.startswith("..") or not os.path.isfile(os.path.join(root, target)):
                return m.group(0)
            todo.append(target)
            start, end = m.span(2)
            return m.group(0)[: start - m.start()] + bare(target) + m.group(0)[end - m.start():]

        out[rel] = _IMPORT.sub(rewrite, text)
    return out


def export_html(source: Source, output: str | os.PathLike[str]) -> int:
    """Write the self-contained page of ``source`` to ``output`` (atomically); returns its size in bytes."""
    out = os.fspath(output)
    check_not_input(out, source.path)
    if source.kind == "gainer":
        raise SplatpixError(f"{source.path}: a GaINeR field is rendered by the Python server and cannot be exported "
                            "(export works for .spix files and GaussianImage models)")
    root = static_dir()
    with open(os.path.join(root, "index.html"), encoding="utf-8") as f:
        html = f.read()
    with open(os.path.join(root, "viewer.css"), encoding="utf-8") as f:
        css = f.read()
    imports = {bare(rel): _data_url(text) for rel, text in module_graph(root).items()}
    if source.kind == "spix":
        data, fmt = source.spix_bytes(), "spix"
    else:
        data, fmt = source.arrays_message(), "spxa"
    embed = {"info": {**source.info(), "path": source.name, "server": False}, "format": fmt,
             "data": base64.b64encode(data).decode("ascii")}
    scripts = (
        '<script type="application/json" id="splatpix-embed">'
        + json.dumps(embed, separators=(",", ":")).replace("<", "\\u003c") + "</script>\n"
        + '<script type="importmap">' + json.dumps({"imports": imports}).replace("<", "\\u003c") + "</script>\n"
        + f'<script type="module">import "{bare(ENTRY)}";</script>'
    )
    for tag in (_CSS_TAG, _ENTRY_TAG, TOKEN_META):
        if tag not in html:
            raise SplatpixError(f"the viewer's index.html lacks {tag!r} (a broken install?)")
    html = html.replace(_CSS_TAG, "<style>\n" + css.replace("</style", "<\\/style") + "</style>")
    html = html.replace(TOKEN_META, "").replace(_ENTRY_TAG, scripts)
    body = html.encode("utf-8")
    atomic_write_bytes(out, body)
    return len(body)
