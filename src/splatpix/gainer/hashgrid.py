"""Multi-resolution 2-D hash grid (Instant-NGP style), the feature encoder of GaINeR.

A point ``p = (x, y)`` in normalised image coordinates ``[0, 1]^2`` (values outside are clamped; column 0 is
``x``, column 1 is ``y``) is encoded by ``L`` levels of ``F`` features each, concatenated level-major into a
``(L * F,)`` vector (``out[:, l * F + f]``).

Level resolutions::

    b   = exp((ln N_max - ln N_base) / (L - 1))          (b = 1 when L = 1)
    N_l = floor(N_base * b**l),  l = 0 .. L-1

(``N_l`` is evaluated in float64 with a 1e-9 relative guard so that the last level is exactly ``N_max``.)

At level ``l`` the point is scaled, ``s = clamp(p, 0, 1) * N_l`` (float32 in the fast path), its cell is
``i = clamp(floor(s), 0, N_l - 1)`` (so ``p = 1`` lies in the last cell with fraction 1), and the fraction is
``t = s - i``. The four corners ``c = i + (dx, dy)``, ``dx, dy in {0, 1}``, are interpolated bilinearly::

    w_00 = (1 - t_x)(1 - t_y),  w_10 = t_x (1 - t_y),  w_01 = (1 - t_x) t_y,  w_11 = t_x t_y
    out_l = sum_c w_c * table[l, index_l(c)]

A corner's table slot (``T = 2**log2_table_size`` slots per level):

* dense, when the level's ``(N_l + 1)^2`` corners fit (``(N_l + 1)^2 <= T``): ``index = c_y * (N_l + 1) + c_x``;
* hashed otherwise: ``index = ((c_x * 1) XOR (c_y * 2654435761)) mod T``, the product taken modulo ``2**32``
  (uint32 arithmetic). Because ``T`` is a power of two dividing ``2**32``, this equals
  ``(c_x XOR (c_y * 2654435761)) & (T - 1)`` computed in int64, which is what every backend does.

Gradients: w.r.t. the table, each output feature scatters ``w_c * grad`` into its corners' slots; w.r.t. the
points, ``d out_l / d x = N_l * ((1 - t_y)(f_10 - f_00) + t_y (f_11 - f_01))`` and
``d out_l / d y = N_l * ((1 - t_x)(f_01 - f_00) + t_x (f_11 - f_10))``, times the clamp's derivative (1 on the
closed interval ``[0, 1]``, 0 outside, as ``torch.clamp``). ``floor`` is treated as piecewise constant.

Backends: :func:`hashgrid_reference` (pure PyTorch, any device, differentiable by autograd, chunked over points
with activation checkpointing so memory stays bounded) and the numba CPU kernels below (forward parallel over
points; table gradient parallel over levels, each level owning its slice of the table, so the scatter-add has
no races; point gradient parallel over points). :func:`hashgrid` / :class:`HashGrid` choose between them.
A NaN coordinate gives NaN features (the NaN guard of a training loop sees it) and a zero point gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Integral

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..errors import SplatpixError
from ..jit import NUMBA_CACHE

PRIME_Y = 2654435761  # Instant-NGP's second hash prime (the first one is 1)
DEFAULT_CHUNK_POINTS = 1 << 20
MAX_RESOLUTION = 1 << 20  # float32 keeps 24 - log2(N) bits of the in-cell fraction
MAX_LOG2_TABLE_SIZE = 30
BACKENDS = ("auto", "numba", "reference")

_F = np.float32


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise SplatpixError(f"hash grid {name} must be an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise SplatpixError(f"hash grid {name} must be in [{lo}, {hi}], got {value}")


@dataclass(frozen=True)
class HashGridConfig:
    """Shape of a multi-resolution 2-D hash grid.

    ``n_levels`` L, ``features_per_level`` F, ``log2_table_size`` (T = 2**log2_table_size slots per level),
    ``base_resolution`` and ``max_resolution`` (the coarsest and finest level's cells per axis). Level ``l``
    has ``N_l = floor(base * b**l)`` cells per axis, ``b = exp((ln max - ln base) / (L - 1))``.
    Presets: :meth:`from_preset` (``"default"``; ``"paper"`` uses ``log2_table_size = 21``). GaINeR's code uses
    ``max_resolution = 8192``.
    """

    n_levels: int = 16
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    max_resolution: int = 2048

    def __post_init__(self) -> None:
        _check_int("n_levels", self.n_levels, 1, 64)
        _check_int("features_per_level", self.features_per_level, 1, 64)
        _check_int("log2_table_size", self.log2_table_size, 1, MAX_LOG2_TABLE_SIZE)
        _check_int("base_resolution", self.base_resolution, 1, MAX_RESOLUTION)
        _check_int("max_resolution", self.max_resolution, 1, MAX_RESOLUTION)
        if self.max_resolution < self.base_resolution:
            raise SplatpixError(
                f"hash grid max_resolution ({self.max_resolution}) must be >= base_resolution ({self.base_resolution})"
            )

    @classmethod
    def from_preset(cls, name: str, **overrides: int) -> HashGridConfig:
        """``"default"`` (the dataclass defaults) or ``"paper"`` (``log2_table_size = 21``), with overrides."""
        if name not in PRESETS:
            raise SplatpixError(f"unknown hash grid preset {name!r}; use one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    @property
    def table_size(self) -> int:
        """T, the number of slots per level."""
        return 1 << self.log2_table_size

    @property
    def output_dim(self) -> int:
        """L * F, the length of a point's encoding."""
        return self.n_levels * self.features_per_level

    @property
    def growth_factor(self) -> float:
        """b = exp((ln max - ln base) / (L - 1)); 1 for a single level."""
        if self.n_levels == 1:
            return 1.0
        return math.exp((math.log(self.max_resolution) - math.log(self.base_resolution)) / (self.n_levels - 1))

    @property
    def resolutions(self) -> tuple[int, ...]:
        """N_l = floor(base * b**l) for each level (float64, 1e-9 relative guard against round-off)."""
        b = self.growth_factor
        out = []
        for level in range(self.n_levels):
            n = math.floor(self.base_resolution * b**level * (1.0 + 1e-9))
            out.append(min(max(n, self.base_resolution), self.max_resolution))
        return tuple(out)

    @property
    def dense_levels(self) -> tuple[bool, ...]:
        """Whether each level indexes its corners densely ((N_l + 1)^2 <= T) rather than by the hash."""
        t = self.table_size
        return tuple((n + 1) ** 2 <= t for n in self.resolutions)


PRESETS: dict[str, HashGridConfig] = {
    "default": HashGridConfig(),
    "paper": HashGridConfig(log2_table_size=21),
}


def init_table(cfg: HashGridConfig, seed: int = 0, scale: float = 1e-4) -> Tensor:
    """A ``(L, T, F)`` float32 table, uniform in ``[-scale, scale]`` from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    table = torch.empty((cfg.n_levels, cfg.table_size, cfg.features_per_level), dtype=torch.float32)
    return table.uniform_(-scale, scale, generator=gen)


def corner_index(ix: Tensor, iy: Tensor, resolution: int, table_size: int) -> Tensor:
    """Table slots of integer corners ``(ix, iy)`` (int64 tensors) on a level with ``resolution`` cells per axis.

    Dense ``iy * (N + 1) + ix`` when ``(N + 1)^2 <= T``, else ``(ix XOR (iy * 2654435761)) mod 2**32 mod T``
    (computed as ``& (T - 1)`` on int64, which is the same for a power-of-two ``T <= 2**32``)."""
    if (resolution + 1) ** 2 <= table_size:
        return iy * (resolution + 1) + ix
    return torch.bitwise_xor(ix, iy * PRIME_Y) & (table_size - 1)


def _check_inputs(points: Tensor, table: Tensor, cfg: HashGridConfig) -> None:
    if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[1] != 2:
        shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise SplatpixError(f"hash grid points must be a (P, 2) tensor, got {shape}")
    if not points.is_floating_point():
        raise SplatpixError(f"hash grid points must be floating point, got {points.dtype}")
    want = (cfg.n_levels, cfg.table_size, cfg.features_per_level)
    if tuple(table.shape) != want:
        raise SplatpixError(f"hash grid table must have shape {want}, got {tuple(table.shape)}")
    if points.device != table.device:
        raise SplatpixError(f"hash grid points are on {points.device} but the table is on {table.device}")


def _encode_chunk(points: Tensor, table: Tensor, resolutions: tuple[int, ...], table_size: int) -> Tensor:
    """Encode one chunk of points -> ``(P, L * F)`` (plain autograd)."""
    dt = torch.promote_types(points.dtype, table.dtype)
    x = points.to(dt).clamp(0.0, 1.0)  # NaN stays NaN
    outs = []
    for level, n in enumerate(resolutions):
        s = x * n
        with torch.no_grad():
            cell = torch.nan_to_num(s, nan=0.0).floor().clamp_(0, n - 1)
        t = s - cell  # d t / d s = 1 (floor is piecewise constant)
        c = cell.long()
        ix0, iy0 = c[:, 0:1], c[:, 1:2]
        ix = torch.cat((ix0, ix0 + 1, ix0, ix0 + 1), 1)  # corners 00, 10, 01, 11
        iy = torch.cat((iy0, iy0, iy0 + 1, iy0 + 1), 1)
        idx = corner_index(ix, iy, n, table_size)
        tx, ty = t[:, 0], t[:, 1]
        ux, uy = 1.0 - tx, 1.0 - ty
        w = torch.stack((ux * uy, tx * uy, ux * ty, tx * ty), 1)  # (P, 4)
        vals = table[level].to(dt)[idx]  # (P, 4, F)
        outs.append((w.unsqueeze(-1) * vals).sum(1))
    return torch.cat(outs, 1)


def hashgrid_reference(
    points: Tensor, table: Tensor, cfg: HashGridConfig, chunk_points: int = DEFAULT_CHUNK_POINTS
) -> Tensor:
    """Pure-PyTorch hash-grid encoding: ``(P, 2)`` points, ``(L, T, F)`` table -> ``(P, L * F)``.

    Any device; differentiable by autograd w.r.t. ``table`` and ``points`` (module docstring for the maths).
    Points are processed ``chunk_points`` at a time; with gradients enabled each chunk is checkpointed, so
    backward re-computes it and memory stays bounded by one chunk's intermediates plus the output.
    The result's dtype is the promotion of the points' and the table's dtype.
    """
    _check_inputs(points, table, cfg)
    chunk_points = max(1, int(chunk_points))
    res, t = cfg.resolutions, cfg.table_size
    p = points.shape[0]
    if p <= chunk_points:
        return _encode_chunk(points, table, res, t)
    grad = torch.is_grad_enabled() and (points.requires_grad or table.requires_grad)
    parts = []
    for start in range(0, p, chunk_points):
        chunk = points[start : start + chunk_points]
        if grad:
            parts.append(checkpoint(_encode_chunk, chunk, table, res, t, use_reentrant=False))
        else:
            parts.append(_encode_chunk(chunk, table, res, t))
    return torch.cat(parts, 0)


# ----------------------------------------------------------------------------------------------------------------
# numba CPU kernels (float32 in, float32 out)


@njit(cache=NUMBA_CACHE, inline="always")
def cell_fraction(x, n):
    """Clamped coordinate -> (cell, fraction, clamp derivative) on a level with n cells (float32 maths)."""
    inside = x >= _F(0.0) and x <= _F(1.0)  # False for NaN
    if x < _F(0.0):
        x = _F(0.0)
    elif x > _F(1.0):
        x = _F(1.0)
    s = x * _F(n)
    c = np.floor(s)
    if not c >= _F(0.0):  # also NaN
        c = _F(0.0)
    if c > _F(n - 1):
        c = _F(n - 1)
    return np.int64(c), s - c, inside


@njit(cache=NUMBA_CACHE, inline="always")
def corner_slot(ix, iy, n, dense, mask):
    if dense:
        return iy * (n + 1) + ix
    return (ix ^ (iy * np.int64(PRIME_Y))) & mask


@njit(cache=NUMBA_CACHE, parallel=True)
def _forward_kernel(points, table, res, dense, out):
    n_pts = points.shape[0]
    n_lev, t_size, n_feat = table.shape
    mask = np.int64(t_size - 1)
    for p in prange(n_pts):
        x = points[p, 0]
        y = points[p, 1]
        for lev in range(n_lev):
            n = res[lev]
            d = dense[lev]
            cx, tx, _ = cell_fraction(x, n)
            cy, ty, _ = cell_fraction(y, n)
            ux = _F(1.0) - tx
            uy = _F(1.0) - ty
            w00 = ux * uy
            w10 = tx * uy
            w01 = ux * ty
            w11 = tx * ty
            s00 = corner_slot(cx, cy, n, d, mask)
            s10 = corner_slot(cx + 1, cy, n, d, mask)
            s01 = corner_slot(cx, cy + 1, n, d, mask)
            s11 = corner_slot(cx + 1, cy + 1, n, d, mask)
            o = lev * n_feat
            for f in range(n_feat):
                out[p, o + f] = (w00 * table[lev, s00, f] + w10 * table[lev, s10, f]
                                 + w01 * table[lev, s01, f] + w11 * table[lev, s11, f])


@njit(cache=NUMBA_CACHE, parallel=True)
def _grad_table_kernel(points, grad_out, res, dense, grad_table):
    # Parallel over levels, serial over points: each level writes only grad_table[lev], so no races.
    n_pts = points.shape[0]
    n_lev, t_size, n_feat = grad_table.shape
    mask = np.int64(t_size - 1)
    for lev in prange(n_lev):
        n = res[lev]
        d = dense[lev]
        o = lev * n_feat
        for p in range(n_pts):
            cx, tx, _ = cell_fraction(points[p, 0], n)
            cy, ty, _ = cell_fraction(points[p, 1], n)
            ux = _F(1.0) - tx
            uy = _F(1.0) - ty
            w00 = ux * uy
            w10 = tx * uy
            w01 = ux * ty
            w11 = tx * ty
            s00 = corner_slot(cx, cy, n, d, mask)
            s10 = corner_slot(cx + 1, cy, n, d, mask)
            s01 = corner_slot(cx, cy + 1, n, d, mask)
            s11 = corner_slot(cx + 1, cy + 1, n, d, mask)
            for f in range(n_feat):
                g = grad_out[p, o + f]
                grad_table[lev, s00, f] += w00 * g
                grad_table[lev, s10, f] += w10 * g
                grad_table[lev, s01, f] += w01 * g
                grad_table[lev, s11, f] += w11 * g


@njit(cache=NUMBA_CACHE, parallel=True)
def _grad_points_kernel(points, table, grad_out, res, dense, grad_points):
    n_pts = points.shape[0]
    n_lev, t_size, n_feat = table.shape
    mask = np.int64(t_size - 1)
    for p in prange(n_pts):
        x = points[p, 0]
        y = points[p, 1]
        gx = _F(0.0)
        gy = _F(0.0)
        for lev in range(n_lev):
            n = res[lev]
            d = dense[lev]
            cx, tx, _ = cell_fraction(x, n)
            cy, ty, _ = cell_fraction(y, n)
            ux = _F(1.0) - tx
            uy = _F(1.0) - ty
            s00 = corner_slot(cx, cy, n, d, mask)
            s10 = corner_slot(cx + 1, cy, n, d, mask)
            s01 = corner_slot(cx, cy + 1, n, d, mask)
            s11 = corner_slot(cx + 1, cy + 1, n, d, mask)
            o = lev * n_feat
            ax = _F(0.0)
            ay = _F(0.0)
            for f in range(n_feat):
                g = grad_out[p, o + f]
                f00 = table[lev, s00, f]
                f10 = table[lev, s10, f]
                f01 = table[lev, s01, f]
                f11 = table[lev, s11, f]
                ax += g * (uy * (f10 - f00) + ty * (f11 - f01))
                ay += g * (ux * (f01 - f00) + tx * (f11 - f10))
            gx += _F(n) * ax
            gy += _F(n) * ay
        _, _, in_x = cell_fraction(x, 1)
        _, _, in_y = cell_fraction(y, 1)
        grad_points[p, 0] = gx if in_x else _F(0.0)  # select, so a NaN point gets 0, as torch.clamp
        grad_points[p, 1] = gy if in_y else _F(0.0)


def _level_arrays(cfg: HashGridConfig) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(cfg.resolutions, dtype=np.int64), np.asarray(cfg.dense_levels, dtype=np.bool_)


def _f32(a: Tensor) -> np.ndarray:
    return np.ascontiguousarray(a.detach().cpu().numpy(), dtype=np.float32)


def numba_forward(points: np.ndarray, table: np.ndarray, cfg: HashGridConfig) -> np.ndarray:
    """Encode float32 ``(P, 2)`` points with a float32 ``(L, T, F)`` table -> ``(P, L * F)`` float32."""
    out = np.empty((points.shape[0], cfg.output_dim), dtype=np.float32)
    if points.shape[0]:
        res, dense = _level_arrays(cfg)
        _forward_kernel(points, table, res, dense, out)
    return out


def numba_backward(
    points: np.ndarray, table: np.ndarray, grad_out: np.ndarray, cfg: HashGridConfig,
    need_points: bool = True, need_table: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Gradients of ``sum(grad_out * encode(points, table))``: ``(grad_points (P, 2), grad_table (L, T, F))``,
    float32, accumulated in float32; ``None`` for the ones not asked for."""
    res, dense = _level_arrays(cfg)
    gp = gt = None
    if need_points:
        gp = np.zeros((points.shape[0], 2), dtype=np.float32)
        if points.shape[0]:
            _grad_points_kernel(points, table, grad_out, res, dense, gp)
    if need_table:
        gt = np.zeros(table.shape, dtype=np.float32)
        if points.shape[0]:
            _grad_table_kernel(points, grad_out, res, dense, gt)
    return gp, gt


class _NumbaHashGrid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points: Tensor, table: Tensor, cfg: HashGridConfig) -> Tensor:
        ctx.save_for_backward(points, table)
        ctx.cfg = cfg
        out = numba_forward(_f32(points), _f32(table), cfg)
        return torch.from_numpy(out).to(torch.promote_types(points.dtype, table.dtype))

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        points, table = ctx.saved_tensors
        need_p, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gp, gt = numba_backward(_f32(points), _f32(table), _f32(grad_out), ctx.cfg, need_p, need_t)
        return (
            torch.from_numpy(gp).to(points.dtype) if need_p else None,
            torch.from_numpy(gt).to(table.dtype) if need_t else None,
            None,
        )


def hashgrid(
    points: Tensor, table: Tensor, cfg: HashGridConfig, backend: str = "auto",
    chunk_points: int = DEFAULT_CHUNK_POINTS,
) -> Tensor:
    """Encode ``(P, 2)`` normalised points with an ``(L, T, F)`` table -> ``(P, L * F)``.

    ``backend``: ``"numba"`` (CPU kernels; inputs are computed in float32), ``"reference"``
    (:func:`hashgrid_reference`), or ``"auto"`` (numba when both tensors are float32 on the CPU).
    Differentiable w.r.t. ``points`` and ``table`` on every backend."""
    if backend not in BACKENDS:
        raise SplatpixError(f"unknown hash grid backend {backend!r}; use one of {BACKENDS}")
    _check_inputs(points, table, cfg)
    on_cpu = points.device.type == "cpu" and table.device.type == "cpu"
    if backend == "auto":
        f32 = points.dtype == torch.float32 and table.dtype == torch.float32
        backend = "numba" if on_cpu and f32 else "reference"
    if backend == "numba":
        if not on_cpu:
            raise SplatpixError("the numba hash grid backend needs CPU tensors")
        return _NumbaHashGrid.apply(points, table, cfg)
    return hashgrid_reference(points, table, cfg, chunk_points)


class HashGrid(nn.Module):
    """Multi-resolution 2-D hash grid with a trainable ``table`` of shape ``(L, T, F)``.

    ``forward(points)``: ``(P, 2)`` points in ``[0, 1]^2`` (clamped) -> ``(P, L * F)`` features. The table is
    float32, initialised uniform in ``[-1e-4, 1e-4]`` from a generator seeded with ``seed``."""

    def __init__(
        self, cfg: HashGridConfig | None = None, *, seed: int = 0, backend: str = "auto",
        chunk_points: int = DEFAULT_CHUNK_POINTS,
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise SplatpixError(f"unknown hash grid backend {backend!r}; use one of {BACKENDS}")
        self.cfg = HashGridConfig() if cfg is None else cfg
        self.backend = backend
        self.chunk_points = int(chunk_points)
        self.table = nn.Parameter(init_table(self.cfg, seed))

    @property
    def output_dim(self) -> int:
        return self.cfg.output_dim

    def forward(self, points: Tensor) -> Tensor:
        return hashgrid(points, self.table, self.cfg, self.backend, self.chunk_points)

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"levels={c.n_levels}, features={c.features_per_level}, table=2^{c.log2_table_size}, "
                f"resolution={c.base_resolution}..{c.max_resolution}, backend={self.backend!r}")
