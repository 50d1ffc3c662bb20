"""Grid boundary conditions: domain walls and static colliders (circle, half-plane), numba and NumPy versions.

Conditions act on grid-node velocities after the gravity update (Hu et al. 2018, Alg. 1 "grid operations"),
for nodes with mass. A node is constrained when it lies in a wall layer (the ``boundary_cells`` outermost
node layers of each side) or inside a collider (signed distance ``phi < 0``); ``n`` is the unit normal pointing
into the free domain. Modes:

* ``sticky``: ``v = 0``.
* ``slip``: the normal component is removed in both directions, ``v -= (v.n) n``.
* ``separate`` (the usual MPM choice; the default): only an inward normal velocity is removed, i.e. the
  projection ``v -= min(v.n, 0) n``; material may leave the wall (bounce, splash) but never enter it.

For ``slip`` and ``separate`` an optional Coulomb friction coefficient ``mu`` reduces the tangential velocity by
``mu |v_n|`` (``v_n`` the removed normal component), stopping it when that exceeds it (Stomakhin et al. 2013,
sec. 8). Walls are applied in the order left, right, bottom, top, then the colliders in list order; a corner
node gets both walls. Colliders are static (zero velocity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from ..errors import SplatpixError
from ..jit import NUMBA_CACHE

__all__ = ["Circle", "GridSpec", "HalfPlane", "MODES", "apply_bc_ref", "pack_colliders", "wall_modes"]

STICKY, SLIP, SEPARATE = 0, 1, 2
MODES = {"sticky": STICKY, "slip": SLIP, "separate": SEPARATE}
CIRCLE, HALF_PLANE = 0, 1


def _mode(mode: str, what: str) -> int:
    if mode not in MODES:
        raise SplatpixError(f"{what}: unknown boundary mode {mode!r} (choose from {', '.join(MODES)})")
    return MODES[mode]


def _check_friction(friction: float, what: str) -> None:
    if not (math.isfinite(friction) and friction >= 0):
        raise SplatpixError(f"{what}: friction must be finite and >= 0, got {friction}")


@dataclass(frozen=True)
class Circle:
    """Static disc collider: material stays outside ``|x - center| < radius``."""

    center: tuple[float, float]
    radius: float
    mode: str = "slip"
    friction: float = 0.0

    def __post_init__(self) -> None:
        _mode(self.mode, "Circle collider")
        _check_friction(self.friction, "Circle collider")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise SplatpixError(f"Circle collider: radius must be > 0, got {self.radius}")
        if len(self.center) != 2 or not all(math.isfinite(c) for c in self.center):
            raise SplatpixError(f"Circle collider: center must be two finite numbers, got {self.center}")


@dataclass(frozen=True)
class HalfPlane:
    """Static half-plane collider: material stays on the side ``(x - point) . normal >= 0``."""

    point: tuple[float, float]
    normal: tuple[float, float]
    mode: str = "slip"
    friction: float = 0.0

    def __post_init__(self) -> None:
        _mode(self.mode, "HalfPlane collider")
        _check_friction(self.friction, "HalfPlane collider")
        vals = (*self.point, *self.normal)
        if len(self.point) != 2 or len(self.normal) != 2 or not all(math.isfinite(c) for c in vals):
            raise SplatpixError("HalfPlane collider: point and normal must be two finite numbers each")
        if math.hypot(*self.normal) == 0:
            raise SplatpixError("HalfPlane collider: normal must be non-zero")


def wall_modes(boundary: str | tuple[str, str, str, str]) -> np.ndarray:
    """Mode ids of the walls (left, right, bottom, top)."""
    names = (boundary,) * 4 if isinstance(boundary, str) else tuple(boundary)
    if len(names) != 4:
        raise SplatpixError(f"boundary must be one mode or four (left, right, bottom, top), got {boundary!r}")
    return np.array([_mode(n, "boundary") for n in names], dtype=np.int64)


def pack_colliders(colliders: tuple[Circle | HalfPlane, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """``kind (K,)``, ``params (K, 4)`` (circle: cx, cy, r, 0; plane: px, py, nx, ny with unit n),
    ``mode (K,)``, ``friction (K,)``."""
    k = len(colliders)
    kind = np.zeros(k, dtype=np.int64)
    params = np.zeros((k, 4), dtype=np.float64)
    mode = np.zeros(k, dtype=np.int64)
    fric = np.zeros(k, dtype=np.float64)
    for i, c in enumerate(colliders):
        if isinstance(c, Circle):
            kind[i] = CIRCLE
            params[i] = (c.center[0], c.center[1], c.radius, 0.0)
        elif isinstance(c, HalfPlane):
            kind[i] = HALF_PLANE
            n = math.hypot(*c.normal)
            params[i] = (c.point[0], c.point[1], c.normal[0] / n, c.normal[1] / n)
        else:
            raise SplatpixError(f"unknown collider type {type(c).__name__} (use Circle or HalfPlane)")
        mode[i] = MODES[c.mode]
        fric[i] = c.friction
    return kind, params, mode, fric


@numba.njit(cache=NUMBA_CACHE, inline="always")
def apply_bc(vx: float, vy: float, nx: float, ny: float, mode: int, mu: float) -> tuple[float, float]:
    """Velocity of a constrained node (unit inward normal ``n``)."""
    if mode == STICKY:
        return 0.0, 0.0
    vn = vx * nx + vy * ny
    if mode == SEPARATE and vn >= 0.0:
        return vx, vy
    tx = vx - vn * nx
    ty = vy - vn * ny
    if mu > 0.0:
        tn = math.sqrt(tx * tx + ty * ty)
        if tn > 0.0:
            s = max(0.0, 1.0 - mu * abs(vn) / tn)
            tx *= s
            ty *= s
    return tx, ty


@numba.njit(cache=NUMBA_CACHE, inline="always")
def collider_normal(kind: int, params: np.ndarray, k: int, px: float, py: float) -> tuple[float, float, float]:
    """``(phi, nx, ny)``: signed distance of point ``p`` to collider ``k`` and its outward unit normal."""
    if kind == CIRCLE:
        dx = px - params[k, 0]
        dy = py - params[k, 1]
        r = math.sqrt(dx * dx + dy * dy)
        if r == 0.0:
            return -params[k, 2], 0.0, 1.0
        return r - params[k, 2], dx / r, dy / r
    nx = params[k, 2]
    ny = params[k, 3]
    return (px - params[k, 0]) * nx + (py - params[k, 1]) * ny, nx, ny


def apply_bc_ref(v: np.ndarray, normal: np.ndarray, mask: np.ndarray, mode: int, mu: float) -> np.ndarray:
    """NumPy version of :func:`apply_bc` on the nodes ``mask`` of ``v (..., 2)``; ``normal`` broadcasts to ``v``."""
    out = v.copy()
    n = np.broadcast_to(normal, v.shape)
    vm = v[mask]
    nm = n[mask]
    if mode == STICKY:
        out[mask] = 0.0
        return out
    vn = (vm * nm).sum(-1)
    t = vm - vn[:, None] * nm
    if mu > 0.0:
        tn = np.linalg.norm(t, axis=-1)
        s = np.where(tn > 0.0, np.maximum(0.0, 1.0 - mu * np.abs(vn) / np.where(tn > 0.0, tn, 1.0)), 1.0)
        t = t * s[:, None]
    if mode == SEPARATE:
        t = np.where((vn >= 0.0)[:, None], vm, t)
    out[mask] = t
    return out


def collider_normal_ref(kind: int, params: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NumPy version of :func:`collider_normal` on points ``(..., 2)``: ``(phi, normal)``."""
    if kind == CIRCLE:
        d = pts - params[:2]
        r = np.linalg.norm(d, axis=-1)
        safe = np.where(r > 0.0, r, 1.0)
        n = np.where((r > 0.0)[..., None], d / safe[..., None], np.array([0.0, 1.0]))
        return r - params[2], n
    n = params[2:4]
    return ((pts - params[:2]) * n).sum(-1), np.broadcast_to(n, pts.shape)


class GridSpec(NamedTuple):
    """Everything the substep kernels need about the grid and its boundaries (packed from an ``MPMConfig``)."""

    dx: float
    nx: int  # cells along x (nodes 0..nx)
    ny: int
    nb: int  # wall thickness in node layers
    gravity: tuple[float, float]
    walls: np.ndarray  # (4,) mode ids: left, right, bottom, top
    wall_friction: float
    ckind: np.ndarray
    cparams: np.ndarray
    cmode: np.ndarray
    cfriction: np.ndarray

    @property
    def inv_dx(self) -> float:
        return 1.0 / self.dx

    @property
    def clamp(self) -> tuple[float, float, float]:
        """``(lo, hi_x, hi_y)``: particle positions are kept in ``[lo, hi]`` (one cell inside the domain)."""
        return self.dx, (self.nx - 1) * self.dx, (self.ny - 1) * self.dx
