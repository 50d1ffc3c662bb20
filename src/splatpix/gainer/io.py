"""GaINeR model files (baked fields) and PLY export of the means.

A GaINeR model file is a safetensors file with float32 tensors ``means`` ``(N, 2)``, ``cov_params`` ``(N, 3)``,
``features`` ``(N, D)`` (the baked per-Gaussian features; the hash grid is not stored; ``(N, 2 D)`` for RGBA with a
separate mask model, whose MLP is stored as ``mask_mlp.<i>.*``) and the MLP's
``mlp.<i>.weight`` / ``mlp.<i>.bias`` (``nn.Sequential`` indices; with ``mlp_arch="plain"`` layer ``j`` is module
``2 j``), and one metadata key,
``"splatpix"``, holding a JSON object::

    {"format": "splatpix-gainer", "format_version": 1, "kind": "gainer", "height": 512, "width": 768,
     "channels": 3, "n_gaussians": 20000, "feature_dim": 32, "config": {...GainerConfig...}, "extra": {...}}

Files are untrusted input: the file size and the safetensors header are checked before the safetensors library
parses anything; the metadata (a valid :class:`GainerConfig` within the limits, consistent sizes), the exact set of
tensors, their dtypes, shapes and values (finite) are validated; every problem raises
:class:`~splatpix.errors.SplatpixError` with a one-line message naming the file. Writes are atomic.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..checks import is_int
from ..errors import SplatpixError
from ..io.files import atomic_write
from ..model.container import ContainerReader, write_container
from .field import GainerConfig, GainerField
from .mlp import make_mlp

__all__ = ["GAINER_FORMAT", "GAINER_FORMAT_VERSION", "export_ply", "load_gainer", "read_gainer_metadata",
           "save_gainer"]

GAINER_FORMAT = "splatpix-gainer"
GAINER_FORMAT_VERSION = 1
MAX_GAINER_BYTES = 8 << 30
MAX_SIDE = 1 << 20

PathLike = str | os.PathLike[str]


def mlp_shapes(cfg: GainerConfig, prefix: str, outputs: int) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the config's MLP with ``outputs`` outputs (``nn.Sequential`` names under ``prefix``)."""
    mlp = make_mlp(cfg.feature_dim, cfg.mlp_hidden, cfg.mlp_layers, outputs, cfg.mlp_arch)
    return {f"{prefix}.{k}": tuple(v.shape) for k, v in mlp.state_dict().items()}


def _expected_shapes(cfg: GainerConfig) -> dict[str, tuple[int, ...]]:
    n = cfg.n_gaussians
    shapes: dict[str, tuple[int, ...]] = {"means": (n, 2), "cov_params": (n, 3), "features": (n, cfg.baked_dim)}
    shapes.update(mlp_shapes(cfg, "mlp", cfg.colour_outputs))
    if cfg.separate_mask:
        shapes.update(mlp_shapes(cfg, "mask_mlp", 1))
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
    if model.mask_mlp is not None:
        tensors.update({f"mask_mlp.{k}": v for k, v in model.mask_mlp.state_dict().items()})
    cfg = model.cfg
    h, w = model.size
    meta: dict[str, Any] = {
        "format": GAINER_FORMAT, "format_version": GAINER_FORMAT_VERSION, "kind": "gainer",
        "height": int(h), "width": int(w), "channels": cfg.channels, "n_gaussians": cfg.n_gaussians,
        "feature_dim": cfg.feature_dim, "config": cfg.to_dict(),
    }
    if extra is not None:
        meta["extra"] = extra
    write_container(name, tensors, meta, "GaINeR model")


# -------------------------------------------------------------------------------------------------- loading


def _reader(path: PathLike, max_bytes: int) -> ContainerReader:
    return ContainerReader(path, max_bytes, "splatpix GaINeR model", "a GaINeR model")


def _config_from_meta(r: ContainerReader, meta: dict[str, Any]) -> GainerConfig:
    fmt = meta.get("format")
    if fmt != GAINER_FORMAT:
        raise r.bad(f"format is {fmt!r}, expected {GAINER_FORMAT!r}")
    version = meta.get("format_version")
    if not is_int(version) or version < 1:
        raise r.bad(f"invalid format version {version!r}")
    if version > GAINER_FORMAT_VERSION:
        raise SplatpixError(f"{r.name}: GaINeR format version {version} is newer than this splatpix supports "
                            f"(up to {GAINER_FORMAT_VERSION}); upgrade splatpix to read it")
    if meta.get("kind") != "gainer":
        raise r.bad(f"unknown model kind {meta.get('kind')!r}")
    for key in ("height", "width"):
        v = meta.get(key)
        if not is_int(v) or not 0 < v <= MAX_SIDE:
            raise r.bad(f"invalid {key} {v!r}")
    raw = meta.get("config")
    if not isinstance(raw, dict) or not isinstance(raw.get("hashgrid"), dict):
        raise r.bad("missing or invalid config")
    raw = {"alpha_model": "head", **raw}  # files written before the option existed had the 4-output head
    try:
        cfg = GainerConfig(**raw)
    except TypeError as e:
        raise r.bad(f"invalid config ({e})") from e
    except SplatpixError as e:
        raise r.bad(str(e)) from e
    for key, want in (("channels", cfg.channels), ("n_gaussians", cfg.n_gaussians),
                      ("feature_dim", cfg.feature_dim)):
        if meta.get(key) != want or not is_int(meta.get(key)):
            raise r.bad(f"{key} {meta.get(key)!r} does not match the config ({want})")
    return cfg


def read_gainer_metadata(path: PathLike, max_bytes: int = MAX_GAINER_BYTES) -> dict[str, Any]:
    """Validated metadata of the GaINeR model at ``path``, without loading its tensors."""
    r = _reader(path, max_bytes)
    return r.metadata(lambda m: _expected_shapes(_config_from_meta(r, m)), exact=True)


def load_gainer(path: PathLike, max_bytes: int = MAX_GAINER_BYTES) -> GainerField:
    """Load a baked :class:`GainerField` saved by :func:`save_gainer`, validating everything (CPU, float32)."""
    r = _reader(path, max_bytes)
    meta, out = r.load(lambda m: _expected_shapes(_config_from_meta(r, m)), exact=True)
    cfg = _config_from_meta(r, meta)
    try:
        model = GainerField(cfg, out["means"], out["cov_params"], size=(meta["height"], meta["width"]),
                            baked_features=out["features"])
        model.mlp.load_state_dict({k[len("mlp."):]: v for k, v in out.items() if k.startswith("mlp.")})
        if model.mask_mlp is not None:
            model.mask_mlp.load_state_dict(
                {k[len("mask_mlp."):]: v for k, v in out.items() if k.startswith("mask_mlp.")})
    except (SplatpixError, RuntimeError) as e:
        raise r.bad(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
    model.meta = meta
    return model


# -------------------------------------------------------------------------------------------------- PLY


def export_ply(model: Any, path: PathLike) -> None:
    """Write the Gaussians of a GaINeR field or a Gaussian model as an ASCII PLY point cloud (atomically), one vertex
    per Gaussian in index order (the order an edited PLY must keep: GaINeR's features stay attached to the index):

    * ``x``, ``y``, ``z``: the mean in pixels of the native size, ``x`` to the right and ``y`` **up** (origin at the
      bottom-left corner, so viewers show the image upright and with its aspect ratio), ``z = 0``;
    * ``red``, ``green``, ``blue`` (uchar): the Gaussian's colour (a Gaussian model's colour, clipped; a GaINeR field's
      render at the mean);
    * ``scale_0 >= scale_1``: the 1-sigma semi-axes in pixels; ``rotation``: the angle of axis 0 from ``+x``,
      counter-clockwise with ``y`` up, in radians."""
    import numpy as np

    from ..model.arrays import as_arrays, covariance_from_params

    name = os.fspath(path)
    h, w = model.size
    if isinstance(model, GainerField):
        means = model.means.detach().to("cpu", torch.float64).numpy()
        with torch.no_grad():
            l11, l21, l22 = (t.detach().to("cpu", torch.float64) for t in model.cholesky())
            cov = torch.stack((l11 * l11 * w * w, l11 * l21 * w * h, (l21 * l21 + l22 * l22) * h * h), 1).numpy()
            img = model.render(h, w).clamp(0, 1).detach().cpu().double().numpy()
        px = np.clip((means * [w, h]).astype(np.int64), 0, [w - 1, h - 1])
        rgb = img[:3, px[:, 1], px[:, 0]].T if img.shape[0] >= 3 else np.repeat(img[:1, px[:, 1], px[:, 0]].T, 3, 1)
        kind = "GaINeR field"
    elif hasattr(model, "cov_params") and hasattr(model, "colours"):
        a = as_arrays(model)
        means = a.means.astype(np.float64)
        cov = covariance_from_params(a.cov_params.astype(np.float64), a.param)  # native pixels
        col = np.clip(a.colours.astype(np.float64), 0, 1)
        rgb = col[:, :3] if col.shape[1] >= 3 else np.repeat(col[:, :1], 3, 1)
        kind = "Gaussian model"
    else:
        raise SplatpixError(f"{name}: can only export a GainerField or a Gaussian model, got {type(model).__name__}")
    sxx, sxy, syy = cov[:, 0], -cov[:, 1], cov[:, 2]  # y up: the off-diagonal changes sign
    half_tr, disc = 0.5 * (sxx + syy), np.sqrt((0.5 * (sxx - syy)) ** 2 + sxy * sxy)
    s0, s1 = np.sqrt(np.maximum(half_tr + disc, 0)), np.sqrt(np.maximum(half_tr - disc, 0))
    angle = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    x, y = means[:, 0] * w, h - means[:, 1] * h
    rgb8 = np.round(np.nan_to_num(rgb) * 255).astype(np.int64)
    with atomic_write(name, "w") as f:
        f.write("ply\nformat ascii 1.0\n")
        f.write(f"comment splatpix {kind}: {means.shape[0]} Gaussians of a {w}x{h} image; x right, y up, in pixels "
                "(origin bottom-left); scale_0/1: 1-sigma semi-axes in pixels; rotation: axis 0 from +x, "
                "counter-clockwise, radians\n")
        f.write(f"element vertex {means.shape[0]}\nproperty float x\nproperty float y\nproperty float z\n"
                "property uchar red\nproperty uchar green\nproperty uchar blue\n"
                "property float scale_0\nproperty float scale_1\nproperty float rotation\n")
        f.write("end_header\n")
        f.writelines(f"{xi:.9g} {yi:.9g} 0 {r} {g} {b} {a:.6g} {c:.6g} {t:.6g}\n"
                     for xi, yi, (r, g, b), a, c, t in zip(x.tolist(), y.tolist(), rgb8.tolist(), s0.tolist(),
                                                          s1.tolist(), np.where(np.isfinite(angle), angle,
                                                                                0.0).tolist(), strict=True))
