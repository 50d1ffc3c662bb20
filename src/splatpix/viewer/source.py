"""What the viewer shows: a ``.spix`` file, a GaussianImage model or a GaINeR field, validated before serving.

* ``.spix``: decoded once here (the CLI's one-line error for a corrupt file); the page receives the file's own bytes,
  read again on each request, and decodes them itself.
* GaussianImage model (``.safetensors``): the page receives its arrays (:mod:`.arrays`; covariances as Cholesky
  factors in native pixels, converted from the rotation-scale form when the file holds that).
* GaINeR field (``.safetensors`` of the gainer kind): the page receives means and covariances (to draw and edit the
  Gaussians) and asks the server for renders; the features and the MLP stay here.

Edited arrays come back from the page and are saved with :func:`splatpix.save_model` (or ``save_gainer``), or
rendered to a PNG with the Python renderer. Gaussians whose parameters the page did not change keep their exact
original parameters.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any

import numpy as np

from ..errors import SplatpixError
from ..io import check_readable_file
from . import arrays as spxa

__all__ = ["MAX_RENDER_PIXELS", "Source"]

MAX_RENDER_PIXELS = 16 << 20
"""Largest server-side render (GaINeR views, PNG outputs), in pixels."""
MAX_SPIX_BYTES = 1 << 30


def _np(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def _chol_from_cov(sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray) -> np.ndarray:
    """``(N, 3)`` Cholesky ``(l11, l21, l22)`` (float64) of covariances, as ``params_from_covariance``."""
    l11 = np.sqrt(np.maximum(sxx, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        l21 = np.where(l11 > 0, sxy / np.maximum(l11, 1e-30), 0.0)
    l22 = np.sqrt(np.maximum(syy - l21 * l21, 0.0))
    return np.stack((l11, l21, l22), 1)


def _cov_from_chol(chol: np.ndarray) -> np.ndarray:
    """``(N, 2, 2)`` float64 covariances ``L L^T`` of ``(N, 3)`` Cholesky factors."""
    c = chol.astype(np.float64)
    l11, l21, l22 = c[:, 0], c[:, 1], c[:, 2]
    sxx, sxy, syy = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
    return np.stack((np.stack((sxx, sxy), -1), np.stack((sxy, syy), -1)), -2)


class Source:
    """The file being viewed (module docstring). ``kind``: ``"spix"``, ``"gaussians"`` or ``"gainer"``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        name = os.fspath(path)
        self.path = name
        self.name = os.path.basename(name)
        self.file_bytes = check_readable_file(name, "a .spix or model")
        self.method: str | None = None
        self.param = "cholesky"
        self._lock = threading.Lock()
        self._edited: Any = None
        try:
            with open(name, "rb") as f:
                magic = f.read(4)
        except OSError as e:
            raise SplatpixError(f"{name}: cannot read ({e.strerror or e})") from e
        if magic == b"SPIX":
            self._open_spix()
        else:
            self._open_model()

    # ------------------------------------------------------------------------------------------ opening

    def _open_spix(self) -> None:
        from .. import jit
        from ..codec import registry
        from ..codec.decoding import decode_arrays

        with jit.using_engine("numba" if jit.numba_loaded() else "numpy"):  # no torch, and no numba to load
            g = decode_arrays(self.path)  # validates the whole file; SplatpixError with one line otherwise
        with open(self.path, "rb") as f:
            head = f.read(25)
        self.kind = "spix"
        self.size = tuple(int(s) for s in g.size)
        self.channels = int(g.channels)
        self.n = int(g.n)
        try:
            self.method = registry.by_id(head[14]).name
        except SplatpixError:
            self.method = f"id {head[14]}"
        self.model = None

    def _open_model(self) -> None:
        from ..gainer.io import GAINER_FORMAT
        from ..model.container import peek_format
        from ..model.files import MODEL_FORMAT

        fmt = peek_format(self.path)
        if fmt == GAINER_FORMAT:
            from ..gainer.io import load_gainer

            field = load_gainer(self.path)
            self.kind, self.model, self.method = "gainer", field, "gainer"
            self.size = tuple(int(s) for s in field.size)
            self.channels, self.n = int(field.channels), int(field.n)
            h, w = self.size
            means = _np(field.means).astype(np.float32)
            cov_n = _np(field.covariance()).astype(np.float64)
            s = np.array((float(w), float(h)))
            cov_px = cov_n * s[None, :, None] * s[None, None, :]
            chol = _chol_from_cov(cov_px[:, 0, 0], cov_px[:, 0, 1], cov_px[:, 1, 1]).astype(np.float32)
            self.means, self.chol, self.colours = means, chol, None
            return
        if fmt != MODEL_FORMAT:
            raise SplatpixError(f"{self.path}: not a .spix file or a splatpix model (.safetensors)")
        from ..model.files import load_model

        g = load_model(self.path)
        self.kind, self.model = "gaussians", g
        self.size = tuple(int(s) for s in g.size)
        self.channels, self.n, self.param = int(g.channels), int(g.n), g.param
        self.means = _np(g.means).astype(np.float32)
        p = _np(g.cov_params)
        if g.param == "cholesky":
            self.chol = p.astype(np.float32)
        else:
            cov = _np(g.covariance_native()).astype(np.float64)
            self.chol = _chol_from_cov(cov[:, 0], cov[:, 1], cov[:, 2]).astype(np.float32)
        self.colours = _np(g.colours).astype(np.float32)

    # ------------------------------------------------------------------------------------------ to the page

    def info(self) -> dict[str, Any]:
        h, w = self.size
        return {"name": self.name, "path": os.path.abspath(self.path), "kind": self.kind, "width": w, "height": h,
                "channels": self.channels, "n": self.n, "method": self.method, "param": self.param,
                "bytes": self.file_bytes}

    def spix_bytes(self) -> bytes:
        """The file's current bytes (read again, so the page sees the file as it is now)."""
        try:
            with open(self.path, "rb") as f:
                return f.read(MAX_SPIX_BYTES + 1)
        except OSError as e:
            raise SplatpixError(f"{self.path}: cannot read ({e.strerror or e})") from e

    def message_kind(self) -> str:
        return "gainer" if self.kind == "gainer" else "gaussians"

    def arrays_message(self) -> bytes:
        h, w = self.size
        header = {"kind": self.message_kind(), "width": w, "height": h, "channels": self.channels, "n": self.n}
        arrs = [("means", self.means), ("cov", self.chol)]
        if self.colours is not None:
            arrs.append(("colours", self.colours))
        return spxa.pack(header, arrs)

    def read_message(self, data: bytes) -> dict[str, np.ndarray]:
        if self.kind == "spix":
            return spxa.unpack(data, "gaussians", self.n, self.channels)
        return spxa.unpack(data, self.message_kind(), self.n, self.channels)

    # ------------------------------------------------------------------------------------------ edited models

    def edited_model(self, a: dict[str, np.ndarray]) -> Any:
        """The model of this source's kind with the page's arrays ``a`` (unchanged Gaussians keep their exact
        parameters)."""
        import torch

        h, w = self.size
        if self.kind == "spix":
            from ..model.gaussians import Gaussians

            return Gaussians(torch.from_numpy(a["means"].copy()), torch.from_numpy(a["cov"].copy()),
                             torch.from_numpy(a["colours"].copy()), "cholesky", (h, w))
        changed = ~((a["means"] == self.means).all(1) & (a["cov"] == self.chol).all(1))
        idx = np.nonzero(changed)[0]
        scale = np.array((float(w), float(h)))
        means_px = torch.from_numpy(a["means"][idx].astype(np.float64) * scale)
        cov_px = torch.from_numpy(_cov_from_chol(a["cov"][idx]))
        from ..edit.apply import rebuild_model

        if self.kind == "gainer":
            return rebuild_model(self.model, means_px, cov_px, index=torch.from_numpy(idx))
        return rebuild_model(self.model, means_px, cov_px, index=torch.from_numpy(idx))

    def set_state(self, data: bytes) -> None:
        """The page's current (edited) arrays, for the server-side renders of a GaINeR field."""
        model = self.edited_model(self.read_message(data))
        with self._lock:
            self._edited = model

    def current(self) -> Any:
        with self._lock:
            return self._edited if self._edited is not None else self.model

    def render(self, model: Any, height: int, width: int,
               window: tuple[float, float, float, float] | None = None) -> np.ndarray:
        """``(C, H, W)`` float render of ``model`` (this source's kind) clamped to [0, 1]."""
        import torch

        if height * width > MAX_RENDER_PIXELS:
            raise SplatpixError(f"render {width}x{height} exceeds the viewer's limit of {MAX_RENDER_PIXELS} pixels")
        if self.kind == "gainer":
            with torch.no_grad():
                return _np(model.render(height, width, window=window).clamp(0, 1))
        from ..render import render

        with torch.no_grad():
            return _np(render(model, height, width, window=window, clamp=True))

    def render_png(self, height: int, width: int, window: tuple[float, float, float, float] | None) -> bytes:
        """PNG bytes of the current model's render (8-bit, rounded)."""
        from PIL import Image

        img = self.render(self.current(), height, width, window)
        q = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        pil = Image.fromarray(q[:, :, 0] if q.shape[2] == 1 else q)
        buf = io.BytesIO()
        pil.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    def save(self, data: bytes, what: str, path: str) -> int:
        """Write the page's arrays as a model (``what="model"``, ``.safetensors``) or a PNG at the native size
        (``"png"``) to ``path`` (atomically); returns the bytes written."""
        model = self.edited_model(self.read_message(data))
        if what == "model":
            extra = {"edited_with": "splatpix view", "source": self.name}
            if self.kind == "gainer":
                from ..gainer.io import save_gainer

                save_gainer(model, path, extra)
            else:
                from ..model.files import save_model

                save_model(model, path, extra)
        else:
            from ..io import save_image

            h, w = self.size
            save_image(self.render(model, h, w), path)
        return os.path.getsize(path)

