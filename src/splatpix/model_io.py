"""Model files: safetensors tensors plus JSON metadata; never pickle.

A model file is a `safetensors <https://github.com/huggingface/safetensors>`_ file holding three float32
tensors, ``means`` ``(N, 2)``, ``cov_params`` ``(N, 3)`` and ``colours`` ``(N, C)``, whose metadata has one
key, ``"splatpix"``, holding a JSON object::

    {"format": "splatpix-model", "format_version": 1, "kind": "gaussians", "param": "cholesky",
     "height": 256, "width": 384, "channels": 3, "n_gaussians": 10000, "extra": {...}}

``extra`` (optional) is any JSON object given to :func:`save_model`, e.g. a training report.

Model files are treated as untrusted input: sizes and the safetensors header are checked before the
``safetensors`` library parses anything, and the metadata, shapes, dtypes and values are validated. Every
problem raises :class:`~splatpix.errors.SplatpixError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from .errors import SplatpixError
from .gaussians import PARAMETERISATIONS, Gaussians
from .io import atomic_write_bytes, check_readable_file

__all__ = [
    "MAX_MODEL_BYTES",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "load_model",
    "read_model_metadata",
    "save_model",
]

MODEL_FORMAT = "splatpix-model"
MODEL_FORMAT_VERSION = 1
MAX_MODEL_BYTES = 4 << 30
"""Default limit on the size of a model file to load (4 GiB)."""
MAX_HEADER_BYTES = 100_000_000
"""Limit on the safetensors JSON header (the same limit the safetensors library applies)."""
MAX_SIDE = 1 << 20
"""Limit on each side of a model's native size, in pixels."""

_META_KEY = "splatpix"
_TENSORS = ("means", "cov_params", "colours")
_FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}

PathLike = str | os.PathLike[str]


def _not_model(name: str, reason: str) -> SplatpixError:
    return SplatpixError(f"{name}: not a splatpix model ({reason})")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# --------------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------------


def save_model(g: Gaussians, path: PathLike, extra: dict | None = None) -> None:
    """Write ``g`` to ``path`` (safetensors + JSON metadata), atomically.

    ``extra`` is an optional JSON-serialisable dict stored under the metadata key ``"extra"``.
    Refuses (``SplatpixError``) models with non-finite values, which :func:`load_model` would reject.
    """
    name = os.fspath(path)
    tensors = {
        "means": g.means,
        "cov_params": g.cov_params,
        "colours": g.colours,
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}
    for key, t in tensors.items():
        if not bool(torch.isfinite(t).all()):
            raise SplatpixError(f"{name}: refusing to save a model with non-finite values in {key}")
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
        if not isinstance(extra, dict):
            raise SplatpixError(f"{name}: extra model metadata must be a dict, got {type(extra).__name__}")
        meta["extra"] = extra
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError, RecursionError) as e:
        raise SplatpixError(f"{name}: extra model metadata is not JSON-serialisable ({e})") from e
    data = _st_save(tensors, metadata={_META_KEY: text})
    atomic_write_bytes(name, data)


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


def _check_file(name: str, max_bytes: int) -> int:
    size = check_readable_file(name, "a model")
    if size < 8:
        raise _not_model(name, f"file too short: {size} bytes")
    if size > max_bytes:
        raise SplatpixError(f"{name}: model file too large ({size} bytes; the limit is {max_bytes})")
    return size


def _header_length(name: str, prefix: bytes, file_size: int) -> int:
    (n,) = struct.unpack("<Q", prefix[:8])
    if n < 2 or n > MAX_HEADER_BYTES or n > file_size - 8:
        raise _not_model(name, f"invalid safetensors header length {n} for a file of {file_size} bytes")
    return n


def _parse_header(name: str, header_bytes: bytes, data_len: int) -> dict[str, Any]:
    """Validate the safetensors JSON header; return the splatpix metadata dict."""
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _not_model(name, f"unreadable safetensors header: {type(e).__name__}") from e
    if not isinstance(header, dict):
        raise _not_model(name, "safetensors header is not a JSON object")
    st_meta = header.get("__metadata__")
    if not isinstance(st_meta, dict) or not isinstance(st_meta.get(_META_KEY), str):
        raise _not_model(name, "no splatpix metadata")
    try:
        meta = json.loads(st_meta[_META_KEY])
    except (ValueError, RecursionError) as e:
        raise _not_model(name, f"unreadable splatpix metadata: {type(e).__name__}") from e
    if not isinstance(meta, dict):
        raise _not_model(name, "splatpix metadata is not a JSON object")
    _validate_meta(name, meta)
    n, c = meta["n_gaussians"], meta["channels"]
    expected = {"means": [n, 2], "cov_params": [n, 3], "colours": [n, c]}
    for key in _TENSORS:
        entry = header.get(key)
        if not isinstance(entry, dict):
            raise _not_model(name, f"missing tensor {key!r}")
        dtype = entry.get("dtype")
        if dtype not in _FLOAT_DTYPES:
            raise _not_model(name, f"tensor {key!r} has dtype {dtype!r}, expected a float type")
        shape = entry.get("shape")
        if shape != expected[key] or not all(_is_int(s) for s in shape):
            raise _not_model(name, f"tensor {key!r} has shape {shape}, expected {expected[key]}")
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len
            or offsets[1] - offsets[0] != math.prod(shape) * _FLOAT_DTYPES[dtype]
        ):
            raise _not_model(name, f"tensor {key!r} has invalid data offsets {offsets}")
    return meta


def _validate_meta(name: str, meta: dict[str, Any]) -> None:
    fmt = meta.get("format")
    if fmt != MODEL_FORMAT:
        raise _not_model(name, f"format is {fmt!r}, expected {MODEL_FORMAT!r}")
    version = meta.get("format_version")
    if not _is_int(version) or version < 1:
        raise _not_model(name, f"invalid format version {version!r}")
    if version > MODEL_FORMAT_VERSION:
        raise SplatpixError(
            f"{name}: model format version {version} is newer than this splatpix supports "
            f"(up to {MODEL_FORMAT_VERSION}); upgrade splatpix to read it"
        )
    if meta.get("kind") != "gaussians":
        raise _not_model(name, f"unknown model kind {meta.get('kind')!r}")
    if meta.get("param") not in PARAMETERISATIONS:
        raise _not_model(name, f"unknown covariance parameterisation {meta.get('param')!r}")
    for key in ("height", "width"):
        v = meta.get(key)
        if not _is_int(v) or not 0 < v <= MAX_SIDE:
            raise _not_model(name, f"invalid {key} {v!r}")
    if meta.get("channels") not in (1, 3, 4) or not _is_int(meta.get("channels")):
        raise _not_model(name, f"invalid channel count {meta.get('channels')!r}")
    n = meta.get("n_gaussians")
    if not _is_int(n) or n < 0:
        raise _not_model(name, f"invalid number of Gaussians {n!r}")
    if "extra" in meta and not isinstance(meta["extra"], dict):
        raise _not_model(name, "extra metadata is not a JSON object")


def read_model_metadata(path: PathLike, max_bytes: int = MAX_MODEL_BYTES) -> dict[str, Any]:
    """Validated splatpix metadata of the model at ``path``, without loading its tensors."""
    name = os.fspath(path)
    size = _check_file(name, max_bytes)
    try:
        with open(name, "rb") as f:
            n = _header_length(name, f.read(8), size)
            header_bytes = f.read(n)
    except OSError as e:
        raise SplatpixError(f"{name}: cannot read ({e.strerror or e})") from e
    if len(header_bytes) != n:
        raise _not_model(name, "file truncated while reading the header")
    return _parse_header(name, header_bytes, size - 8 - n)


def load_model(path: PathLike, max_bytes: int = MAX_MODEL_BYTES) -> Gaussians:
    """Load a model saved by :func:`save_model`, validating everything; ``meta`` holds its metadata."""
    name = os.fspath(path)
    size = _check_file(name, max_bytes)
    try:
        with open(name, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise SplatpixError(f"{name}: cannot read ({e.strerror or e})") from e
    if len(data) != size:
        raise SplatpixError(f"{name}: file changed while being read")
    n = _header_length(name, data, size)
    meta = _parse_header(name, data[8 : 8 + n], size - 8 - n)
    try:
        tensors = _st_load(data)
    except Exception as e:  # noqa: BLE001 - the safetensors parser's errors on untrusted input
        raise _not_model(name, f"invalid safetensors data: {type(e).__name__}") from e
    out: dict[str, torch.Tensor] = {}
    for key in _TENSORS:
        t = tensors.get(key)
        if t is None:
            raise _not_model(name, f"missing tensor {key!r}")
        if not t.is_floating_point():
            raise _not_model(name, f"tensor {key!r} has dtype {t.dtype}, expected a float type")
        t = t.to(torch.float32)
        if not bool(torch.isfinite(t).all()):
            raise _not_model(name, f"tensor {key!r} has non-finite values")
        out[key] = t
    n_g, c = meta["n_gaussians"], meta["channels"]
    expected = {"means": (n_g, 2), "cov_params": (n_g, 3), "colours": (n_g, c)}
    for key, shape in expected.items():
        if tuple(out[key].shape) != shape:
            raise _not_model(name, f"tensor {key!r} has shape {tuple(out[key].shape)}, expected {shape}")
    try:
        return Gaussians(
            out["means"], out["cov_params"], out["colours"], meta["param"], (meta["height"], meta["width"]),
            meta=meta,
        )
    except ValueError as e:
        raise _not_model(name, str(e)) from e
