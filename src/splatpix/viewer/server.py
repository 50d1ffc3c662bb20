"""The viewer's local HTTP server (standard library ``http.server``), on 127.0.0.1 only.

Routes (``/api/*`` need the session token of the page in the ``X-Splatpix-Token`` header, so that no other web
page can read the file or make the server write one; every request's ``Host`` must be this server's own):

=========================  =====================================================================================
``GET /``                  the page (``static/index.html`` with the session token)
``GET /<file>``            the page's scripts and styles (``static/``; nothing else on disk is served)
``GET /api/info``          JSON: name, kind (``spix``, ``gaussians``, ``gainer``), size, channels, N, method, file
                           size in bytes, default save paths
``GET /api/file``          the ``.spix`` file's bytes (read again each time), decoded by the page
``GET /api/model``         a ``.safetensors`` model's arrays (:mod:`.arrays`)
``POST /api/save``         ``?what=model|png&path=P[&overwrite=1]``, body: the edited arrays; writes the model
                           (``.safetensors``) or a PNG of it at the native size, atomically, never over the input
``POST /api/gainer/state`` the edited arrays of a GaINeR field (rendered on the server)
``GET /api/gainer/render`` ``?w=W&h=H&u0=&v0=&u1=&v1=``: PNG render of the current GaINeR field in that window
=========================  =====================================================================================

Errors are JSON ``{"error": "one line"}`` with a 4xx status.
"""

from __future__ import annotations

import json
import math
import mimetypes
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import SplatpixError
from ..io import check_not_input
from . import arrays as spxa
from .source import Source

__all__ = ["HOST", "ViewerServer", "static_dir"]

HOST = "127.0.0.1"
TOKEN_META = '<meta name="splatpix-token" content="">'
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
          ".json": "application/json"}


def static_dir() -> str:
    """The folder of the page's files (package data)."""
    return str(resources.files("splatpix.viewer") / "static")


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _unique(path: str) -> str:
    stem, ext = os.path.splitext(path)
    k = 2
    while os.path.exists(path):
        path = f"{stem}-{k}{ext}"
        k += 1
    return path


class ViewerServer:
    """Serves ``source`` on ``127.0.0.1:port`` (0: a free port); :meth:`serve_forever` until :meth:`shutdown`."""

    def __init__(self, source: Source, port: int = 0) -> None:
        self.source = source
        self.token = secrets.token_urlsafe(24)
        self.static = static_dir()
        handler = type("Handler", (_Handler,), {"viewer": self})
        try:
            self.httpd = ThreadingHTTPServer((HOST, int(port)), handler)
        except OSError as e:
            raise SplatpixError(f"cannot listen on {HOST}:{port} ({e.strerror or e})") from e
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        self._thread: threading.Thread | None = None
        self._served = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def serve_forever(self) -> None:
        self._served = True
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> ViewerServer:
        """Serve on a background thread (tests, embedding); returns self."""
        self._served = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.2,), name="splatpix-view",
                                        daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        if self._served:  # (shutdown() waits for a serve_forever that has run)
            self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> ViewerServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # ------------------------------------------------------------------------------------------ helpers

    def default_paths(self) -> dict[str, str]:
        stem = os.path.splitext(os.path.abspath(self.source.path))[0]
        return {"model": _unique(stem + ".edited.safetensors"), "png": _unique(stem + ".edited.png")}

    def output_path(self, text: str, what: str, overwrite: bool) -> str:
        ext = ".safetensors" if what == "model" else ".png"
        path = os.path.expanduser(text.strip()) if text.strip() else self.default_paths()[what]
        if not os.path.isabs(path):
            path = os.path.join(os.path.dirname(os.path.abspath(self.source.path)), path)
        if os.path.splitext(path)[1].lower() != ext:
            raise _HttpError(400, f"{path}: a {'model' if what == 'model' else 'PNG'} is saved as a {ext} file")
        try:
            check_not_input(path, self.source.path)
        except SplatpixError as e:
            raise _HttpError(400, str(e)) from None
        if os.path.isdir(path):
            raise _HttpError(400, f"{path}: is a directory")
        if os.path.exists(path) and not overwrite:
            raise _HttpError(409, f"{path} exists")
        if not os.path.isdir(os.path.dirname(path)):
            raise _HttpError(400, f"{path}: the directory {os.path.dirname(path)} does not exist")
        return path


def _float_arg(q: dict[str, list[str]], key: str, default: float) -> float:
    try:
        v = float(q[key][0]) if key in q else default
    except ValueError:
        raise _HttpError(400, f"{key} must be a number") from None
    if not math.isfinite(v):
        raise _HttpError(400, f"{key} must be finite")
    return v


def _int_arg(q: dict[str, list[str]], key: str) -> int:
    try:
        v = int(q[key][0])
    except (KeyError, ValueError):
        raise _HttpError(400, f"{key} must be an integer") from None
    if not 0 < v <= 1 << 15:
        raise _HttpError(400, f"{key} must be in 1..32768")
    return v


class _Handler(BaseHTTPRequestHandler):
    viewer: ViewerServer
    server_version = "splatpix-view"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints the URL only
        pass

    # ------------------------------------------------------------------------------------------ replies

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

    def _guarded(self, fn: Any) -> None:
        try:
            if self.headers.get("Host", "") not in self.viewer.hosts:
                raise _HttpError(403, "wrong Host header")
            fn()
        except _HttpError as e:
            self._json(e.status, {"error": str(e)})
        except SplatpixError as e:
            self._json(400, {"error": str(e)})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bug: one line to the page, the server keeps running
            first = str(e).splitlines()[0] if str(e) else ""
            self._json(500, {"error": f"internal error: {type(e).__name__}: {first}"})

    def _check_token(self) -> None:
        if not secrets.compare_digest(self.headers.get("X-Splatpix-Token", ""), self.viewer.token):
            raise _HttpError(403, "missing or wrong session token")

    def _body(self, limit: int) -> bytes:
        try:
            n = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise _HttpError(411, "Content-Length required") from None
        if n < 0 or n > limit:
            raise _HttpError(413, f"request body of {n} bytes exceeds {limit}")
        data = self.rfile.read(n)
        if len(data) != n:
            raise _HttpError(400, "truncated request body")
        return data

    def _limit(self) -> int:
        s = self.viewer.source
        return 8 + spxa.MAX_HEADER + 4 * s.n * (5 + s.channels)

    # ------------------------------------------------------------------------------------------ routes

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_HEAD(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _get(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        v = self.viewer
        s = v.source
        if path.startswith("/api/"):
            self._check_token()
            q = parse_qs(url.query)
            if path == "/api/info":
                self._json(200, {**s.info(), "server": True, "defaults": v.default_paths()})
            elif path == "/api/file" and s.kind == "spix":
                self._send(200, s.spix_bytes(), "application/octet-stream")
            elif path == "/api/model" and s.kind != "spix":
                self._send(200, s.arrays_message(), "application/octet-stream")
            elif path == "/api/gainer/render" and s.kind == "gainer":
                w, h = _int_arg(q, "w"), _int_arg(q, "h")
                win = tuple(_float_arg(q, k, d) for k, d in (("u0", 0.0), ("v0", 0.0), ("u1", 1.0), ("v1", 1.0)))
                if not (win[2] > win[0] and win[3] > win[1]):
                    raise _HttpError(400, "the window needs u1 > u0 and v1 > v0")
                self._send(200, s.render_png(h, w, win), "image/png")
            else:
                raise _HttpError(404, f"no such resource {path}")
            return
        self._static(path)

    def _static(self, path: str) -> None:
        v = self.viewer
        rel = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
        parts = rel.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
            raise _HttpError(404, f"no such file {path}")
        full = os.path.join(v.static, *parts)
        if not os.path.isfile(full):
            raise _HttpError(404, f"no such file {path}")
        with open(full, "rb") as f:
            body = f.read()
        if rel == "index.html":
            body = body.replace(TOKEN_META.encode(), f'<meta name="splatpix-token" content="{v.token}">'.encode())
        ext = os.path.splitext(full)[1].lower()
        self._send(200, body, _TYPES.get(ext) or mimetypes.guess_type(full)[0] or "application/octet-stream")

    def _post(self) -> None:
        url = urlsplit(self.path)
        self._check_token()
        q = parse_qs(url.query)
        s = self.viewer.source
        if url.path == "/api/save":
            what = q.get("what", ["model"])[0]
            if what not in ("model", "png"):
                raise _HttpError(400, "what must be model or png")
            out = self.viewer.output_path(q.get("path", [""])[0], what, q.get("overwrite", ["0"])[0] == "1")
            n = s.save(self._body(self._limit()), what, out)
            self._json(200, {"path": out, "bytes": n, "defaults": self.viewer.default_paths()})
        elif url.path == "/api/gainer/state" and s.kind == "gainer":
            s.set_state(self._body(self._limit()))
            self._json(200, {"ok": True})
        else:
            raise _HttpError(404, f"no such resource {url.path}")
