"""Model <-> particles: each simulated Gaussian is one MPM particle; after every frame the particles move the
Gaussians' means and deform their covariances.

Coordinate mapping (:class:`DomainMap`)
---------------------------------------
The image (native pixels ``x = u W`` right, ``y = v H`` **down**) is placed in the simulation domain (metres,
``y`` **up**) with one isotropic scale ``s = size / max(W, H)`` metres per pixel (``size``, default 1 m, the
length of the image's longer side; the material presets are tuned for a box of about a metre)::

    X = ox + s x,        Y = oy + s (H - y)          (image bottom edge at Y = oy)

The grid has ``dx = size / grid_res`` (``grid_res`` cells across the longer side). Walls are
``boundary_cells = nb`` node layers thick; resting particle centres stay about ``nb dx`` from the domain edge
(measured 2.9 dx and 3.1 dx for ``nb = 3`` at 1 and 4 particles per cell: a particle stops once its B-spline
stencil reaches the last wall node), so the domain is padded by ``nb - 1/2`` cells on each side and the **floor is
the image's bottom edge**: the lowest Gaussians of a resting object sit about half a cell above it, their own
extent reaching down to it. Without ``margin`` the side walls and the ceiling are the image's other edges in the
same way (the shorter side is rounded up to whole cells, the slack split evenly left/right and put at the top).
``margin`` (a fraction of the shorter side) adds room beyond the left, right and top edges, where material may leave
the picture. Gaussians whose means lie outside the solver's valid box
(one cell inside the domain) start clamped into it (counted in ``clamped``).

Because the scale is the same on both axes, vectors map by ``D = diag(1, -1)`` times ``s`` and a deformation
gradient (a ratio of lengths) by ``F_img = D F D``: the ``s`` cancels. Covariances: ``Sigma_sim = s^2 D Sigma D``
and back, after a frame, ``Sigma' = F_img Sigma F_img^T`` in native pixels. A rotation by ``+theta`` in the
simulation (counter-clockwise with y up) is a counter-clockwise rotation on screen too.

Volumes
-------
A particle's rest volume (area; mass = density x volume) is its Gaussian's share of its object's area::

    vol_i = A_k a_i / sum_{j in k} a_j,    a_i = 2 pi sqrt(det Sigma_i)   (the Gaussian's integral, its "area")

with ``A_k`` the area of object ``k``'s region (its pixels, rasterised at pixel centres, less those of earlier
objects) and ``a_i`` clipped to ``[median / 10, 10 median]`` within the object so that a few huge, faint Gaussians
do not carry most of the mass. A fitted model puts many small Gaussians where there is detail and a few large ones
where the image is flat, so ``vol ~ area`` keeps the density (and the stiffness, which acts through ``vol_i``)
uniform over the object, where equal volumes ``A_k / n_k`` would make detailed parts heavier and stiffer. The
object's total mass is ``density x A_k`` either way. (Predicate regions have no area: their raw clipped ``a_i``
are used.)

The solver's ``F`` is the **elastic** deformation gradient: for snow and sand the plastic flow moves Gaussians
but does not stretch them, and water (``F = sqrt(J) I``) only scales them slightly, which keeps grains and drops
looking like themselves instead of smearing into streaks.

Gaussians in no region are not particles: they stay exactly where they are (static scenery, not obstacles; use
colliders for obstacles). Particle ``p`` is Gaussian ``index[p]``, ``index`` increasing: the particle order is the
Gaussian order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import SplatpixError
from .boundary import Circle, HalfPlane
from .materials import Materials
from .scene import ColliderSpec, MaterialSpec, Scene
from .solver import MPMConfig, ParticleState

__all__ = ["AUTO_GRID_RANGE", "Bridge", "DomainMap", "assign_materials", "auto_grid_res", "domain_map",
           "particle_volumes"]

AUTO_GRID_RANGE = (32, 256)
AUTO_PER_CELL = 4.0  # the usual 2 x 2 particles per cell
MIN_VAR_PX = 1e-4  # covariance eigenvalue floor (pixels^2) after deformation
_D = np.diag([1.0, -1.0])


@dataclass(frozen=True)
class DomainMap:
    """The image <-> simulation mapping (module docstring). ``origin`` is the simulation position of the image's
    bottom-left corner (pixel point ``(0, H)``)."""

    height: int
    width: int
    scale: float  # metres per native pixel
    dx: float
    nx: int
    ny: int
    origin: tuple[float, float]
    boundary_cells: int = 3

    @property
    def domain(self) -> tuple[float, float]:
        return (self.nx * self.dx, self.ny * self.dx)

    @property
    def shorter_side_px(self) -> float:
        return float(min(self.height, self.width))

    def to_sim(self, px: np.ndarray) -> np.ndarray:
        """``(P, 2)`` native-pixel points -> simulation positions."""
        p = np.asarray(px, dtype=np.float64)
        ox, oy = self.origin
        return np.stack((ox + self.scale * p[:, 0], oy + self.scale * (self.height - p[:, 1])), 1)

    def to_image(self, xs: np.ndarray) -> np.ndarray:
        """``(P, 2)`` simulation positions -> native pixels (the inverse of :meth:`to_sim`)."""
        x = np.asarray(xs, dtype=np.float64)
        ox, oy = self.origin
        return np.stack(((x[:, 0] - ox) / self.scale, self.height - (x[:, 1] - oy) / self.scale), 1)

    def uv_to_sim(self, uv: tuple[float, float]) -> tuple[float, float]:
        x = self.to_sim(np.array([[uv[0] * self.width, uv[1] * self.height]]))[0]
        return float(x[0]), float(x[1])

    @staticmethod
    def F_to_image(F: np.ndarray) -> np.ndarray:
        """``(P, 2, 2)`` simulation-frame deformation gradients -> the image frame, ``D F D``."""
        return _D @ np.asarray(F, dtype=np.float64) @ _D

    def cov_to_sim(self, cov_px: np.ndarray) -> np.ndarray:
        return self.scale**2 * (_D @ np.asarray(cov_px, dtype=np.float64) @ _D)

    def cov_to_image(self, cov_sim: np.ndarray) -> np.ndarray:
        return (_D @ np.asarray(cov_sim, dtype=np.float64) @ _D) / self.scale**2

    def collider(self, c: ColliderSpec) -> Circle | HalfPlane:
        """A scene collider (normalised image terms) in the simulation frame."""
        if c.type == "circle":
            return Circle(self.uv_to_sim(c.centre), c.radius * self.shorter_side_px * self.scale, c.mode, c.friction)
        n = (float(c.normal[0]), -float(c.normal[1]))  # screen (y down) -> simulation (y up)
        return HalfPlane(self.uv_to_sim(c.point), n, c.mode, c.friction)

    def valid_box(self) -> tuple[float, float, float, float]:
        """``(lo_x, lo_y, hi_x, hi_y)`` where the solver accepts particles (one cell inside the domain)."""
        return self.dx, self.dx, (self.nx - 1) * self.dx, (self.ny - 1) * self.dx


def domain_map(size: tuple[int, int], grid_res: int, length: float = 1.0, boundary_cells: int = 3,
               margin: float = 0.0) -> DomainMap:
    """The :class:`DomainMap` of an image of native ``size = (H, W)`` on a grid of ``grid_res`` cells across its
    longer side (module docstring); ``length`` metres across the longer side, ``margin`` in shorter sides."""
    h, w = int(size[0]), int(size[1])
    if not (isinstance(grid_res, int) and grid_res >= 8):
        raise SplatpixError(f"grid_res must be an integer >= 8, got {grid_res!r}")
    dx_px = max(h, w) / grid_res
    scale = float(length) / max(h, w)
    dx = dx_px * scale
    pad = int(boundary_cells) - 0.5  # where the walls stop particle centres, less half a cell (module docstring)
    m = int(round(margin * min(h, w) / dx_px))
    cells_x = math.ceil(w / dx_px - 1e-9)
    cells_y = math.ceil(h / dx_px - 1e-9)
    nx = cells_x + 2 * m + 2 * int(boundary_cells) - 1
    ny = cells_y + m + 2 * int(boundary_cells) - 1
    ox = (pad + m + 0.5 * (cells_x - w / dx_px)) * dx
    oy = pad * dx
    if min(nx, ny) // 4 < boundary_cells or min(nx, ny) < 8:
        raise SplatpixError(f"grid_res {grid_res} is too coarse for a {w}x{h} image: its shorter side gets "
                            f"{min(cells_x, cells_y)} cells, too few for walls {boundary_cells} cells thick "
                            "(use a larger grid_res)")
    return DomainMap(h, w, scale, dx, nx, ny, (ox, oy), int(boundary_cells))


def auto_grid_res(n_particles: int, area_px: float, size: tuple[int, int]) -> int:
    """``grid_res`` giving about :data:`AUTO_PER_CELL` particles per cell over the simulated area (pixels),
    clamped to :data:`AUTO_GRID_RANGE`."""
    lo, hi = AUTO_GRID_RANGE
    if n_particles <= 0 or area_px <= 0:
        return 64
    dx_px = math.sqrt(AUTO_PER_CELL * area_px / n_particles)
    return int(min(hi, max(lo, round(max(size) / dx_px))))


def _pixel_centres(size: tuple[int, int]) -> Tensor:
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5,
                            indexing="ij")
    return torch.stack((xs.reshape(-1), ys.reshape(-1)), 1)


def assign_materials(model: Any, specs: list[MaterialSpec]) -> tuple[np.ndarray, list[float | None]]:
    """``(N,)`` int64 object id of each Gaussian (the first spec whose region holds its mean, weight >= 1/2; -1:
    none) and each object's region area in native pixels (pixel centres not claimed by an earlier object;
    ``None`` for a predicate region)."""
    from ..edit.apply import gaussian_selection
    from ..edit.region import AllRegion, PredicateRegion

    n = model.n
    assign = np.full(n, -1, dtype=np.int64)
    size = model.size
    claimed: Tensor | None = None
    areas: list[float | None] = []
    for k, spec in enumerate(specs):
        try:
            sel = gaussian_selection(model, spec.region).cpu().numpy() >= 0.5
        except SplatpixError as e:
            raise SplatpixError(f"{spec.where}.region: {e}") from None
        assign[(assign < 0) & sel] = k
        if isinstance(spec.region, PredicateRegion):
            areas.append(None)
            continue
        if isinstance(spec.region, AllRegion):
            inside = torch.ones(size[0] * size[1], dtype=torch.bool)
        else:
            with torch.no_grad():
                inside = spec.region.weights(_pixel_centres(size), size) >= 0.5
        if claimed is None:
            claimed = torch.zeros_like(inside)
        areas.append(float((inside & ~claimed).sum()))
        claimed |= inside
    return assign, areas


def particle_volumes(cov_px: np.ndarray, assign: np.ndarray, areas_px: list[float | None]) -> np.ndarray:
    """``(N,)`` rest volumes in pixels^2 (module docstring; 0 for unassigned Gaussians)."""
    det = np.clip(cov_px[:, 0, 0] * cov_px[:, 1, 1] - cov_px[:, 0, 1] ** 2, 0.0, None)
    a = 2.0 * math.pi * np.sqrt(det)
    vol = np.zeros(len(assign))
    for k, area in enumerate(areas_px):
        sel = assign == k
        if not sel.any():
            continue
        ak = a[sel]
        med = float(np.median(ak))
        if not med > 0:
            med = float(ak.max()) if ak.max() > 0 else 1.0
        ak = np.clip(ak, med / 10.0, med * 10.0)
        total = float(ak.sum())
        target = total if area is None or area <= 0 else float(area)
        vol[sel] = ak * (target / total)
    return vol


def _floor_cov(cov: np.ndarray, min_var: float = MIN_VAR_PX) -> np.ndarray:
    """Symmetrise and lift each covariance's smaller eigenvalue to at least ``min_var``."""
    c = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    a, b, d = c[:, 0, 0], c[:, 0, 1], c[:, 1, 1]
    half_tr = 0.5 * (a + d)
    lam_min = half_tr - np.sqrt((0.5 * (a - d)) ** 2 + b * b)
    lift = np.clip(min_var - lam_min, 0.0, None)
    c[:, 0, 0] += lift
    c[:, 1, 1] += lift
    return c


class Bridge:
    """The particles of a model in a scene, and the way back (module docstring).

    ``base``: a copy of the model (a GaINeR field baked), the state every frame is rebuilt from; ``index``:
    ``(P,)`` Gaussian index of each particle; ``state``/``materials``: ready for :class:`~.solver.MPMSolver`;
    ``domain``: the :class:`DomainMap`; ``objects``: per material entry ``{name, kind, gaussians, area}``."""

    def __init__(self, model: Any, scene: Scene) -> None:
        from ..edit.apply import gaussian_geometry, model_kind

        self.kind = model_kind(model)
        with torch.no_grad():
            if self.kind == "gainer":
                self.base = model.with_gaussians(model.means.detach(), model.cov_params.detach())
            else:
                self.base = model.detach()
            means, cov, _ = gaussian_geometry(self.base)
        self.means_px = means.cpu().numpy()
        self.cov_px = cov.cpu().numpy()
        size = self.base.size
        assign, areas = assign_materials(self.base, scene.materials)
        self.assign = assign
        self.index = np.flatnonzero(assign >= 0).astype(np.int64)
        self.static = np.flatnonzero(assign < 0).astype(np.int64)
        sim = scene.simulation
        grid = sim.grid_res
        if grid is None:
            total = float(sum(a if a is not None else 0.0 for a in areas))
            grid = auto_grid_res(len(self.index), total or float(size[0] * size[1]), size)
        try:
            self.domain = domain_map(size, grid, sim.size, sim.boundary_cells, sim.margin)
        except SplatpixError as e:
            raise SplatpixError(f"scene.simulation.grid_res: {e}") from None
        self.grid_res = grid
        s2 = self.domain.scale**2
        vol_px = particle_volumes(self.cov_px, assign, areas)
        x = self.domain.to_sim(self.means_px[self.index])
        lo_x, lo_y, hi_x, hi_y = self.domain.valid_box()
        eps = 1e-9 * self.domain.dx
        clamped = np.stack((np.clip(x[:, 0], lo_x + eps, hi_x - eps), np.clip(x[:, 1], lo_y + eps, hi_y - eps)), 1)
        self.clamped = int((np.abs(clamped - x) > 0).any(1).sum())
        mat_id = assign[self.index]
        vel = np.array([scene.materials[k].velocity for k in mat_id], dtype=np.float64).reshape(-1, 2)
        self.materials = Materials(tuple(m.material for m in scene.materials))
        self.state = ParticleState.create(clamped, vol_px[self.index] * s2, mat_id, self.materials, v=vel)
        self.objects = [{"name": m.material.name, "kind": m.material.kind, "gaussians": int((assign == k).sum()),
                         "area_px": areas[k]} for k, m in enumerate(scene.materials)]

    def config(self, scene: Scene) -> MPMConfig:
        """The solver configuration of ``scene`` on this bridge's domain."""
        sim = scene.simulation
        frame_dt = scene.frame_dt
        try:
            return MPMConfig(grid_res=self.domain.nx, domain=self.domain.domain, gravity=sim.gravity,
                             boundary=sim.boundary, wall_friction=sim.wall_friction,
                             boundary_cells=sim.boundary_cells,
                             colliders=tuple(self.domain.collider(c) for c in sim.colliders), cfl=sim.cfl,
                             dt=None if sim.substeps is None else frame_dt / sim.substeps, dt_max=sim.dt_max,
                             frame_dt=frame_dt, threads=sim.threads)
        except SplatpixError as e:
            raise SplatpixError(f"scene.simulation: {e}") from None

    def geometry(self, x_sim: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All Gaussians' native-pixel means ``(N, 2)`` and covariances ``(N, 2, 2)`` for particle positions
        ``(P, 2)`` and deformation gradients ``(P, 2, 2)`` (simulation frame); static Gaussians unchanged."""
        x_sim = np.asarray(x_sim, dtype=np.float64)
        F = np.asarray(F, dtype=np.float64)
        if x_sim.shape != (len(self.index), 2) or F.shape != (len(self.index), 2, 2):
            raise SplatpixError(f"expected {len(self.index)} particle positions and gradients, got "
                                f"{x_sim.shape} and {F.shape}")
        means = self.means_px.copy()
        cov = self.cov_px.copy()
        if len(self.index):
            means[self.index] = self.domain.to_image(x_sim)
            Fi = self.domain.F_to_image(F)
            with np.errstate(over="ignore", invalid="ignore"):  # a blown-up state is reported just below
                cov[self.index] = _floor_cov(Fi @ self.cov_px[self.index] @ np.swapaxes(Fi, 1, 2))
        if not (np.isfinite(means).all() and np.isfinite(cov).all()):
            raise SplatpixError("the simulation blew up: non-finite Gaussian positions or covariances (use a smaller "
                                "cfl, or more substeps)")
        return means, cov

    def to_model(self, x_sim: np.ndarray, F: np.ndarray) -> Any:
        """The moved model (same kind, same Gaussian order) for particle positions and gradients (simulation
        frame); static Gaussians keep their exact parameters."""
        from ..edit.apply import rebuild_model

        means, cov = self.geometry(x_sim, F)
        dev = self.base.means.device
        i = self.index
        return rebuild_model(self.base, torch.from_numpy(means[i]).to(dev), torch.from_numpy(cov[i]).to(dev),
                             torch.from_numpy(i).to(dev))
