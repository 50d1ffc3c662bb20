"""GaINeR model files (baked fields) and PLY export of the means.

A GaINeR model file is a safetensors file with float32 tensors ``means`` ``(N, 2)``, ``cov_params`` ``(N, 3)``,
``features`` ``(N, D)`` (the baked per-Gaussian features; the hash grid is not stored) and the MLP's
``mlp.<i>.weight`` / ``mlp.<i>.bias`` (``nn.Sequential`` indices: layer ``j`` is module ``2 j``), and one metadata key,
``"splatpix"``, holding a JSON object::

    {"format": "splatpix-gainer", "format_version": 1, "kind": "gainer", "height": 512, "width": 768,
     "channels": 3, "n_gaussians": 20000, "feature_dim": 32, "config": {...GainerConfig...}, "extra": {...}}

Files are untrusted input: the file size and the safetensors header are checked before the safetensors library
parses anything; the metadata (a valid :class:`GainerConfig` within the limits, consistent sizes), the exact set of
tensors, their dtypes, shapes and values (finite) are validated; every problem raises
:class:`~splatpix.errors.SplatpixError` with a one-line message naming the file. Writes are atomic.
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

from ..errors import SplatpixError
from ..io import atomic_write, atomic_write_bytes, check_readable_file
from .field import GainerConfig, GainerField

__all__ = ["GAINER_FORMAT", "GAINER_FORMAT_VERSION", "export_ply", "load_gainer", "read_gainer_metadata",
           "save_gainer"]

GAINER_FORMAT = "splatpix-gainer"
GAINER_FORMAT_VERSION = 1
MAX_GAINER_BYTES = 8 << 30
MAX_HEADER_BYTES = 100_000_000
MAX_SIDE = 1 << 20
_META_KEY = "splatpix"
_FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}

PathLike = str | os.PathLike[str]


def _not_model(name: str, reason: str) -> SplatpixError:
    return SplatpixError(f"{name}: not a splatpix GaINeR model ({reason})")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _expected_shapes(cfg: GainerConfig) -> dict[str, tuple[int, ...]]:
    n, d = cfg.n_gaussians, cfg.feature_dim
    shapes: dict[str, tuple[int, ...]] = {"means": (n, 2), "cov_params": (n, 3), "features": (n, d)}
    width = d
    for j in range(cfg.mlp_layers):
        shapes[f"mlp.{2 * j}.weight"] = (cfg.mlp_hidden, width)
        shapes[f"mlp.{2 * j}.bias"] = (cfg.mlp_hidden,)
        width = cfg.mlp_hidden
    j = cfg.mlp_layers
    shapes[f"mlp.{2 * j}.weight"] = (cfg.channels, width)
    shapes[f"mlp.{2 * j}.bias"] = (cfg.channels,)
    return shapes


# -------------------------------------------------------------------------------------------------- saving


def save_gainer(model: GainerField, path: PathLike, extra: dict | None = None) -> None:
    """Write ``model`` as a baked GaINeR file (atomically). An unbaked field is saved with the features its grid
    gives at the current means (the field itself is not modified). Refuses non-finite values."""
    name = os.fspath(path)
    if not isinstance(model, GainerField):
        raise SplatpixError(f"{name}: can only save a GainerField, got {type(model).__name__}")
    with torch.no_grad():
        feats = model.gaussian_features().detach()
    tensors = {"means": model.means, "cov_params": model.cov_params, "features": feats}
    tensors.update({f"mlp.{k}": v for k, v in model.mlp.state_dict().items()})
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}
    for key, t in tensors.items():
        if not bool(torch.isfinite(t).all()):
            raise SplatpixError(f"{name}: refusing to save a GaINeR model with non-finite values in {key}")
    cfg = model.cfg
    h, w = model.size
    meta: dict[str, Any] = {
        "format": GAINER_FORMAT, "format_version": GAINER_FORMAT_VERSION, "kind": "gainer",
        "height": int(h), "width": int(w), "channels": cfg.channels, "n_gaussians": cfg.n_gaussians,
        "feature_dim": cfg.feature_dim, "config": cfg.to_dict(),
    }
    if extra is not None:
        if not isinstance(extra, dict):
            raise SplatpixError(f"{name}: extra model metadata must be a dict, got {type(extra).__name__}")
        meta["extra"] = extra
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise SplatpixError(f"{name}: extra model metadata is not JSON-serialisable ({e})") from e
    atomic_write_bytes(name, _st_save(tensors, metadata={_META_KEY: text}))


# -------------------------------------------------------------------------------------------------- loading


def _check_file(name: str, max_bytes: int) -> int:
    size = check_readable_file(name, "a GaINeR model")
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


def _config_from_meta(name: str, meta: dict[str, Any]) -> GainerConfig:
    fmt = meta.get("format")
    if fmt != GAINER_FORMAT:
        raise _not_model(name, f"format is {fmt!r}, expected {GAINER_FORMAT!r}")
    version = meta.get("format_version")
    if not _is_int(version) or version < 1:
        raise _not_model(name, f"invalid format version {version!r}")
    if version > GAINER_FORMAT_VERSION:
        raise SplatpixError(f"{name}: GaINeR format version {version} is newer than this splatpix supports "
                            f"(up to {GAINER_FORMAT_VERSION}); upgrade splatpix to read it")
    if meta.get("kind") != "gainer":
        raise _not_model(name, f"unknown model kind {meta.get('kind')!r}")
    for key in ("height", "width"):
        v = meta.get(key)
        if not _is_int(v) or not 0 < v <= MAX_SIDE:
            raise _not_model(name, f"invalid {key} {v!r}")
    raw = meta.get("config")
    if not isinstance(raw, dict) or not isinstance(raw.get("hashgrid"), dict):
        raise _not_model(name, "missing or invalid config")
    try:
        cfg = GainerConfig(**raw)
    except TypeError as e:
        raise _not_model(name, f"invalid config ({e})") from e
    except SplatpixError as e:
        raise _not_model(name, str(e)) from e
    for key, want in (("channels", cfg.channels), ("n_gaussians", cfg.n_gaussians),
                      ("feature_dim", cfg.feature_dim)):
        if meta.get(key) != want or not _is_int(meta.get(key)):
            raise _not_model(name, f"{key} {meta.get(key)!r} does not match the config ({want})")
    if "extra" in meta and not isinstance(meta["extra"], dict):
        raise _not_model(name, "extra metadata is not a JSON object")
    return cfg


def _parse_header(name: str, header_bytes: bytes, data_len: int) -> tuple[dict[str, Any], GainerConfig]:
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
    cfg = _config_from_meta(name, meta)
    expected = _expected_shapes(cfg)
    names = set(header) - {"__metadata__"}
    if names != set(expected):
        missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
        raise _not_model(name, f"wrong tensors (missing {missing}, unexpected {unexpected})")
    for key, shape in expected.items():
        entry = header[key]
        if not isinstance(entry, dict):
            raise _not_model(name, f"invalid entry for tensor {key!r}")
        dtype = entry.get("dtype")
        if dtype not in _FLOAT_DTYPES:
            raise _not_model(name, f"tensor {key!r} has dtype {dtype!r}, expected a float type")
        if entry.get("shape") != list(shape):
            raise _not_model(name, f"tensor {key!r} has shape {entry.get('shape')}, expected {list(shape)}")
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len
            or offsets[1] - offsets[0] != math.prod(shape) * _FLOAT_DTYPES[dtype]
        ):
            raise _not_model(name, f"tensor {key!r} has invalid data offsets {offsets}")
    return meta, cfg


def read_gainer_metadata(path: PathLike, max_bytes: int = MAX_GAINER_BYTES) -> dict[str, Any]:
    """Validated metadata of the GaINeR model at ``path``, without loading its tensors."""
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
    return _parse_header(name, header_bytes, size - 8 - n)[0]


def load_gainer(path: PathLike, max_bytes: int = MAX_GAINER_BYTES) -> GainerField:
    """Load a baked :class:`GainerField` saved by :func:`save_gainer`, validating everything (CPU, float32)."""
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
    meta, cfg = _parse_header(name, data[8 : 8 + n], size - 8 - n)
    try:
        tensors = _st_load(data)
    except Exception as e:  # noqa: BLE001 - the safetensors parser's errors on untrusted input
        raise _not_model(name, f"invalid safetensors data: {type(e).__name__}") from e
    expected = _expected_shapes(cfg)
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected.items():
        t = tensors.get(key)
        if t is None or not t.is_floating_point() or tuple(t.shape) != shape:
            raise _not_model(name, f"tensor {key!r} is missing or has the wrong dtype or shape")
        t = t.to(torch.float32)
        if not bool(torch.isfinite(t).all()):
            raise _not_model(name, f"tensor {key!r} has non-finite values")
        out[key] = t
    try:
        model = GainerField(cfg, out["means"], out["cov_params"], size=(meta["height"], meta["width"]),
                            baked_features=out["features"])
        model.mlp.load_state_dict({k[len("mlp."):]: v for k, v in out.items() if k.startswith("mlp.")})
    except (SplatpixError, RuntimeError) as e:
        raise _not_model(name, str(e).splitlines()[0] if str(e) else type(e).__name__) from e
    model.meta = meta
    return model


# -------------------------------------------------------------------------------------------------- PLY


def export_ply(model: GainerField, path: PathLike) -> None:
    """Write the means as an ASCII PLY point cloud (atomically): one vertex ``x y z`` per Gaussian in index order,
    ``x = u``, ``y = v`` (normalised image coordinates, ``v`` pointing down) and ``z = 0``; the order is what an
    edited PLY must keep, since features stay attached to the Gaussian index."""
    name = os.fspath(path)
    if not isinstance(model, GainerField):
        raise SplatpixError(f"{name}: can only export a GainerField, got {type(model).__name__}")
    means = model.means.detach().to("cpu", torch.float64).numpy()
    h, w = model.size
    with atomic_write(name, "w") as f:
        f.write("ply\nformat ascii 1.0\n")
        f.write(f"comment splatpix GaINeR means, normalised image coordinates (u, v) of a {w}x{h} image\n")
        f.write(f"element vertex {means.shape[0]}\nproperty float x\nproperty float y\nproperty float z\n")
        f.write("end_header\n")
        f.writelines(f"{float(u):.9g} {float(v):.9g} 0\n" for u, v in means)
