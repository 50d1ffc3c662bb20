"""Model files: safetensors tensors plus JSON metadata; never pickle.

A model file is a `safetensors <https://github.com/huggingface/safetensors>`_ file holding three float32
tensors, ``means`` ``(N, 2)``, ``cov_params`` ``(N, 3)`` and ``colours`` ``(N, C)``, whose metadata has one
key, ``"splatpix"``, holding a JSON object::

    {"format": "splatpix-model", "format_version": 1, "kind": "gaussians", "param": "cholesky",
     "height": 256, "width": 384, "channels": 3, "n_gaussians": 10000, "extra": {...}}

``extra`` (optional) is any JSON object given to :func:`save_model`, e.g. a training report.

Model files are treated as untrusted input (:mod:`splatpix.model.container`, shared with GaINeR's model files): sizes
and the safetensors header are checked before the ``safetensors`` library parses anything, and the metadata,
shapes, dtypes and values are validated. Every problem raises :class:`~splatpix.errors.SplatpixError` with a
one-line message naming the file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..checks import is_int
from ..errors import SplatpixError
from .arrays import PARAMETERISATIONS, GaussianArrays
from .container import ContainerReader, write_container

if TYPE_CHECKING:
    from .gaussians import Gaussians

__all__ = [
    "MAX_MODEL_BYTES",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "load_arrays",
    "load_model",
    "read_model_metadata",
    "save_model",
]

MODEL_FORMAT = "splatpix-model"
MODEL_FORMAT_VERSION = 1
MAX_MODEL_BYTES = 4 << 30
"""Default limit on the size of a model file to load (4 GiB)."""
MAX_SIDE = 1 << 20
"""Limit on each side of a model's native size, in pixels."""

PathLike = str | os.PathLike[str]


def save_model(g: Gaussians, path: PathLike, extra: dict | None = None) -> None:
    """Write ``g`` to ``path`` (safetensors + JSON metadata), atomically.

    ``extra`` is an optional JSON-serialisable dict stored under the metadata key ``"extra"``.
    Refuses (``SplatpixError``) models with non-finite values, which :func:`load_model` would reject.
    """
    name = os.fspath(path)
    if g.channels not in (1, 3, 4):
        raise SplatpixError(f"{name}: cannot save a model with {g.channels} colour channels (need 1, 3 or 4)")
    h, w = g.size
    meta: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "kind": "gaussians",
        "param": g.param,
        "height": int(h),
        "width": int(w),
        "channels": g.channels,
        "n_gaussians": g.n,
    }
    if extra is not None:
        meta["extra"] = extra
    write_container(name, {"means": g.means, "cov_params": g.cov_params, "colours": g.colours}, meta, "model")


def _reader(path: PathLike, max_bytes: int) -> ContainerReader:
    return ContainerReader(path, max_bytes, "splatpix model", "a model")


def _validate_meta(r: ContainerReader, meta: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Check the metadata; return the expected tensor shapes."""
    fmt = meta.get("format")
    if fmt != MODEL_FORMAT:
        raise r.bad(f"format is {fmt!r}, expected {MODEL_FORMAT!r}")
    version = meta.get("format_version")
    if not is_int(version) or version < 1:
        raise r.bad(f"invalid format version {version!r}")
    if version > MODEL_FORMAT_VERSION:
        raise SplatpixError(
            f"{r.name}: model format version {version} is newer than this splatpix supports "
            f"(up to {MODEL_FORMAT_VERSION}); upgrade splatpix to read it"
        )
    if meta.get("kind") != "gaussians":
        raise r.bad(f"unknown model kind {meta.get('kind')!r}")
    if meta.get("param") not in PARAMETERISATIONS:
        raise r.bad(f"unknown covariance parameterisation {meta.get('param')!r}")
    for key in ("height", "width"):
        v = meta.get(key)
        if not is_int(v) or not 0 < v <= MAX_SIDE:
            raise r.bad(f"invalid {key} {v!r}")
    if meta.get("channels") not in (1, 3, 4) or not is_int(meta.get("channels")):
        raise r.bad(f"invalid channel count {meta.get('channels')!r}")
    n = meta.get("n_gaussians")
    if not is_int(n) or n < 0:
        raise r.bad(f"invalid number of Gaussians {n!r}")
    return {"means": (n, 2), "cov_params": (n, 3), "colours": (n, meta["channels"])}


def read_model_metadata(path: PathLike, max_bytes: int = MAX_MODEL_BYTES) -> dict[str, Any]:
    """Validated splatpix metadata of the model at ``path``, without loading its tensors."""
    r = _reader(path, max_bytes)
    return r.metadata(lambda m: _validate_meta(r, m))


def load_model(path: PathLike, max_bytes: int = MAX_MODEL_BYTES) -> Gaussians:
    """Load a model saved by :func:`save_model`, validating everything; ``meta`` holds its metadata."""
    from .gaussians import Gaussians

    return _load(path, max_bytes, Gaussians, numpy=False)


def load_arrays(path: PathLike, max_bytes: int = MAX_MODEL_BYTES) -> GaussianArrays:
    """:func:`load_model` as numpy :class:`~splatpix.model.arrays.GaussianArrays` (the same checks; no torch)."""
    return _load(path, max_bytes, GaussianArrays, numpy=True)


def _load(path: PathLike, max_bytes: int, model: type, *, numpy: bool) -> Any:
    r = _reader(path, max_bytes)
    meta, t = (r.load_arrays if numpy else r.load)(lambda m: _validate_meta(r, m))
    try:
        return model(t["means"], t["cov_params"], t["colours"], meta["param"], (meta["height"], meta["width"]),
                     meta=meta)
    except ValueError as e:
        raise r.bad(str(e)) from e
