"""The MLS-MPM solver: configuration, particle state, time stepping (CFL), NaN guard, conserved quantities.

Time step (explicit MPM stability, e.g. Jiang et al. 2016 course notes sec. 9.5)::

    dt = min(cfl * dx / (c_max + |v|_max), dt_max),   c = sqrt(M / rho)

with ``M`` the wave modulus of each particle's material (``lambda + 2 mu``, the P-wave modulus, for solids --
about ``E`` for moderate ``nu`` -- times the snow hardening factor; the Tait sound speed for water) and ``rho``
its rest density. It is re-evaluated every substep; the substeps of a frame split the remaining frame time
evenly (``n = ceil(remaining / dt)``), so there is no sliver step at the end. A fixed ``MPMConfig.dt`` instead
gives ``ceil(frame_dt / dt)`` equal substeps per frame. The solver has no randomness; :func:`box_particles`
jitters with a seeded generator.

The substep writes into a second set of particle buffers and swaps them in only if every value is finite, so
after a :class:`~splatpix.errors.SplatpixError` from the NaN guard the state is the last good substep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

from ..errors import SplatpixError
from . import mpm
from .boundary import Circle, GridSpec, HalfPlane, pack_colliders, wall_modes
from .materials import Materials, as_materials, elastic_energy_ref
from .reference import reference_substep

__all__ = ["MPMConfig", "MPMSolver", "ParticleState", "box_particles"]

BACKENDS = ("numba", "reference")
PARALLEL_MIN = 20_000  # below this many particles a parallel launch costs more than it saves


@dataclass(frozen=True)
class MPMConfig:
    """Scene and solver settings (SI units).

    The domain ``[0, Lx] x [0, Ly]`` has ``grid_res`` cells along x and ``Ly / dx`` (must be an integer) along
    y. ``boundary`` is one mode for all four walls or ``(left, right, bottom, top)``; modes ``sticky``, ``slip``,
    ``separate`` (see :mod:`.boundary`). Walls are ``boundary_cells`` node layers thick, so material comes to
    rest about ``(boundary_cells - 1) * dx`` from the domain edge. Particles must start (and are kept) in
    ``[dx, L - dx]``. ``threads=1`` is best on a busy or small machine (parallel launches then cost more than
    they save)."""

    grid_res: int = 128
    domain: tuple[float, float] = (1.0, 1.0)
    gravity: tuple[float, float] = (0.0, -9.81)
    boundary: str | tuple[str, str, str, str] = "separate"
    wall_friction: float = 0.0
    boundary_cells: int = 3
    colliders: tuple[Circle | HalfPlane, ...] = field(default_factory=tuple)
    cfl: float = 0.4
    dt: float | None = None  # fixed substep (upper bound); None: CFL-adaptive
    dt_max: float = 1e-3
    frame_dt: float = 1.0 / 60.0
    backend: str = "numba"  # or "reference" (NumPy, slow; for tests)
    threads: int | None = None  # numba threads; None: all for >= PARALLEL_MIN particles, else 1

    def __post_init__(self) -> None:
        if int(self.grid_res) != self.grid_res or self.grid_res < 8:
            raise SplatpixError(f"grid_res must be an integer >= 8, got {self.grid_res}")
        if len(self.domain) != 2 or not all(math.isfinite(d) and d > 0 for d in self.domain):
            raise SplatpixError(f"domain must be two positive sizes (Lx, Ly), got {self.domain}")
        ny = self.domain[1] / self.dx
        if abs(ny - round(ny)) > 1e-6 * max(1.0, ny) or round(ny) < 8:
            raise SplatpixError(f"domain height {self.domain[1]} must be a whole number (>= 8) of cells of "
                                f"dx = {self.dx:g}")
        if len(self.gravity) != 2 or not all(math.isfinite(g) for g in self.gravity):
            raise SplatpixError(f"gravity must be two finite numbers, got {self.gravity}")
        wall_modes(self.boundary)
        if not (math.isfinite(self.wall_friction) and self.wall_friction >= 0):
            raise SplatpixError(f"wall_friction must be >= 0, got {self.wall_friction}")
        if not 1 <= self.boundary_cells <= min(self.grid_res, self.ny) // 4:
            raise SplatpixError(f"boundary_cells must be in [1, {min(self.grid_res, self.ny) // 4}], "
                                f"got {self.boundary_cells}")
        pack_colliders(tuple(self.colliders))
        if not (math.isfinite(self.cfl) and 0 < self.cfl <= 1):
            raise SplatpixError(f"cfl must be in (0, 1], got {self.cfl}")
        for name in ("dt_max", "frame_dt"):
            val = getattr(self, name)
            if not (math.isfinite(val) and val > 0):
                raise SplatpixError(f"{name} must be > 0, got {val}")
        if self.dt is not None and not (math.isfinite(self.dt) and self.dt > 0):
            raise SplatpixError(f"dt must be > 0 or None (CFL), got {self.dt}")
        if self.threads is not None and (int(self.threads) != self.threads or self.threads < 1):
            raise SplatpixError(f"threads must be a positive integer or None, got {self.threads}")
        if self.backend not in BACKENDS:
            raise SplatpixError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    @property
    def dx(self) -> float:
        return self.domain[0] / self.grid_res

    @property
    def nx(self) -> int:
        return int(self.grid_res)

    @property
    def ny(self) -> int:
        return int(round(self.domain[1] / self.dx))

    def grid_spec(self) -> GridSpec:
        ckind, cparams, cmode, cfric = pack_colliders(tuple(self.colliders))
        return GridSpec(self.dx, self.nx, self.ny, int(self.boundary_cells), (float(self.gravity[0]),
                        float(self.gravity[1])), wall_modes(self.boundary), float(self.wall_friction),
                        ckind, cparams, cmode, cfric)


@dataclass
class ParticleState:
    """Per-particle arrays, particle ``i`` at row ``i`` throughout (never reordered).

    ``F`` is the elastic deformation gradient (the full one for ``elastic``; after the return mapping for snow
    and sand; ``sqrt(J) I`` for water), ``C`` the APIC affine velocity (velocity gradient), ``Jp`` the plastic
    volume ratio (snow, sand; ``J`` for water; 1 for elastic)."""

    x: np.ndarray  # (P, 2) float64
    v: np.ndarray  # (P, 2)
    F: np.ndarray  # (P, 2, 2)
    C: np.ndarray  # (P, 2, 2)
    Jp: np.ndarray  # (P,)
    mass: np.ndarray  # (P,)
    vol0: np.ndarray  # (P,) rest volume (area x unit depth)
    material: np.ndarray  # (P,) int64 index into Materials

    @classmethod
    def create(cls, x: np.ndarray, vol0: np.ndarray | float, material: np.ndarray | int,
               materials: Materials, v: np.ndarray | None = None, F: np.ndarray | None = None) -> ParticleState:
        """Particles at rest (or with velocity ``v``) and undeformed (or ``F``); ``mass = density * vol0``."""
        x = np.array(x, dtype=np.float64, copy=True)
        if x.ndim != 2 or x.shape[1] != 2:
            raise SplatpixError(f"particle positions must have shape (P, 2), got {x.shape}")
        n = x.shape[0]
        vol = np.broadcast_to(np.asarray(vol0, dtype=np.float64), (n,)).copy()
        mat = np.broadcast_to(np.asarray(material), (n,)).astype(np.int64)
        if mat.size and (mat.min() < 0 or mat.max() >= len(materials)):
            raise SplatpixError(f"material ids must be in [0, {len(materials) - 1}]")
        mass = materials.densities()[mat] * vol
        vel = np.zeros((n, 2)) if v is None else np.array(v, dtype=np.float64).reshape(n, 2)
        Fd = np.broadcast_to(np.eye(2), (n, 2, 2)).copy() if F is None else np.array(F, np.float64).reshape(n, 2, 2)
        return cls(x, vel, Fd, np.zeros((n, 2, 2)), np.ones(n), mass, vol, mat)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def copy(self) -> ParticleState:
        return ParticleState(*(np.array(getattr(self, k), copy=True) for k in _FIELDS))


_FIELDS = ("x", "v", "F", "C", "Jp", "mass", "vol0", "material")
_SHAPES = {"x": (2,), "v": (2,), "F": (2, 2), "C": (2, 2), "Jp": (), "mass": (), "vol0": (), "material": ()}


def box_particles(lo: tuple[float, float], hi: tuple[float, float], dx: float, per_cell: int = 2,
                  jitter: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(P, 2)`` and volumes ``(P,)`` filling the box ``[lo, hi]`` with ``per_cell^2`` particles per
    grid cell of size ``dx`` (a lattice, optionally jittered by ``jitter`` spacings with a seeded generator)."""
    h = dx / per_cell
    xs = np.arange(lo[0] + 0.5 * h, hi[0], h)
    ys = np.arange(lo[1] + 0.5 * h, hi[1], h)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    x = np.stack((gx.ravel(), gy.ravel()), 1)
    if jitter > 0:
        x = x + np.random.default_rng(seed).uniform(-0.5, 0.5, x.shape) * jitter * h
    return x, np.full(len(x), h * h)


class MPMSolver:
    """2-D MLS-MPM with quadratic B-splines and APIC, numba kernels (``backend="numba"``) or the NumPy
    reference (``"reference"``). ``state`` is used in place (its arrays are replaced each substep)."""

    def __init__(self, config: MPMConfig, state: ParticleState, materials: Materials | list) -> None:
        self.config = config
        self.materials = as_materials(materials)
        self.state = state
        self.grid = config.grid_spec()
        self._kinds, self._params = self.materials.table()
        self._moduli = self.materials.wave_moduli()
        self._rho = self.materials.densities()
        self._validate_state()
        n0, n1 = self.grid.nx + 1, self.grid.ny + 1
        self.grid_mass = np.zeros((n0, n1))
        self._gv = np.zeros((n0, n1, 2))
        self._aff = np.zeros((state.n, 2, 2))
        self._spare: tuple[np.ndarray, ...] | None = None
        self._n_strips = (self.grid.nx + 1) // mpm.STRIP + 1
        self.frame = 0
        self.time = 0.0
        self.substeps_done = 0
        self._frame_substep = 0

    # -- validation ---------------------------------------------------------------------------------------------

    def _validate_state(self) -> None:
        s = self.state
        n = s.x.shape[0] if isinstance(s.x, np.ndarray) and s.x.ndim == 2 else -1
        if n < 0:
            raise SplatpixError("ParticleState.x must be an array of shape (P, 2)")
        for k in _FIELDS:
            a = getattr(s, k)
            if not isinstance(a, np.ndarray) or a.shape != (n, *_SHAPES[k]):
                raise SplatpixError(f"ParticleState.{k} must be an array of shape {(n, *_SHAPES[k])}, "
                                    f"got {getattr(a, 'shape', type(a).__name__)}")
            if k == "material":
                if not np.issubdtype(a.dtype, np.integer):
                    raise SplatpixError("ParticleState.material must be an integer array")
                setattr(s, k, np.ascontiguousarray(a, dtype=np.int64))
            else:
                a = np.ascontiguousarray(a, dtype=np.float64)
                if not np.isfinite(a).all():
                    raise SplatpixError(f"ParticleState.{k} has NaN or infinite values")
                setattr(s, k, a)
        if n and (s.material.min() < 0 or s.material.max() >= len(self.materials)):
            raise SplatpixError(f"material ids must be in [0, {len(self.materials) - 1}], "
                                f"got [{s.material.min()}, {s.material.max()}]")
        if n and (s.mass.min() <= 0 or s.vol0.min() <= 0):
            raise SplatpixError("particle mass and vol0 must be > 0")
        if n and np.linalg.det(s.F).min() <= 0:
            raise SplatpixError("particle deformation gradients F must have det(F) > 0")
        lo, hix, hiy = self.grid.clamp
        out = ~((s.x[:, 0] >= lo) & (s.x[:, 0] <= hix) & (s.x[:, 1] >= lo) & (s.x[:, 1] <= hiy))
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise SplatpixError(f"{int(out.sum())} particles lie outside the domain (first: particle {i} at "
                                f"({s.x[i, 0]:g}, {s.x[i, 1]:g}); positions must be in [{lo:g}, {hix:g}] x "
                                f"[{lo:g}, {hiy:g}], one cell inside the domain)")

    # -- time stepping ------------------------------------------------------------------------------------------

    def cfl_dt(self) -> float:
        """Stable substep from the CFL condition (capped by ``dt_max``)."""
        s = self.state
        if s.n == 0:
            return self.config.dt_max
        vmax, cmax = mpm.max_speeds(s.v, s.material, s.Jp, self._kinds, self._params, self._moduli, self._rho)
        return min(self.config.cfl * self.grid.dx / (cmax + vmax), self.config.dt_max)

    def substep(self, dt: float) -> None:
        """Advance the particles by ``dt``. Raises :class:`SplatpixError` (state unchanged) on non-finite results."""
        if not (math.isfinite(dt) and dt > 0):
            raise SplatpixError(f"substep dt must be > 0, got {dt}")
        s = self.state
        g = self.grid
        if s.n == 0:
            self.time += dt
            return
        if self.config.backend == "reference":
            x, v, C, F, Jp, gm = reference_substep(s.x, s.v, s.C, s.F, s.Jp, s.mass, s.vol0, s.material,
                                                   self._kinds, self._params, g, dt)
            self.grid_mass = gm
            bad = int((~np.isfinite(np.concatenate((v.ravel(), C.ravel(), F.ravel(), Jp)))).sum())
        else:
            if self._spare is None or self._spare[0].shape[0] != s.n:
                self._spare = tuple(np.empty_like(a) for a in (s.x, s.v, s.C, s.F, s.Jp))
                self._aff = np.empty((s.n, 2, 2))
            x, v, C, F, Jp = self._spare
            prev = numba.get_num_threads()
            want = self.config.threads or (numba.config.NUMBA_NUM_THREADS if s.n >= PARALLEL_MIN else 1)
            numba.set_num_threads(min(int(want), numba.config.NUMBA_NUM_THREADS))
            try:
                bad = self._numba_substep(dt, x, v, C, F, Jp)
            finally:
                numba.set_num_threads(prev)
        if bad:
            raise SplatpixError(f"simulation diverged at frame {self.frame}, substep {self._frame_substep} "
                                f"(dt = {dt:.3g}, t = {self.time:.4g} s): {bad} particles got non-finite values; "
                                f"use a smaller cfl (now {self.config.cfl}) or dt; the state is the last good "
                                f"substep")
        if self.config.backend == "numba":
            self._spare = (s.x, s.v, s.C, s.F, s.Jp)
        s.x, s.v, s.C, s.F, s.Jp = x, v, C, F, Jp
        self.time += dt
        self.substeps_done += 1
        self._frame_substep += 1

    def _numba_substep(self, dt: float, x: np.ndarray, v: np.ndarray, C: np.ndarray, F: np.ndarray,
                       Jp: np.ndarray) -> int:
        s = self.state
        g = self.grid
        mpm.particle_affine(s.F, s.C, s.Jp, s.mass, s.vol0, s.material, self._kinds, self._params, dt,
                            g.inv_dx, self._aff)
        order, starts = mpm.strip_order(s.x, g.inv_dx, self._n_strips)
        mpm.p2g(s.x, s.v, s.mass, self._aff, g.inv_dx, g.dx, order, starts, self.grid_mass, self._gv)
        mpm.grid_update(self.grid_mass, self._gv, dt, g.gravity[0], g.gravity[1], g.dx, g.nb, g.walls,
                        g.wall_friction, g.ckind, g.cparams, g.cmode, g.cfriction)
        lo, hix, hiy = g.clamp
        return int(mpm.g2p(s.x, s.F, s.Jp, s.material, self._kinds, self._params, self._gv, dt, g.inv_dx, g.dx,
                           lo, hix, hiy, x, v, C, F, Jp))

    def step_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Advance by ``frame_dt``; returns copies of the positions ``(P, 2)`` and deformation gradients
        ``(P, 2, 2)``."""
        remaining = self.config.frame_dt
        self._frame_substep = 0
        if self.config.dt is not None:
            n = max(1, math.ceil(remaining / self.config.dt - 1e-9))
            for _ in range(n):
                self.substep(remaining / n)
        else:
            while remaining > 1e-12 * self.config.frame_dt:
                n = max(1, math.ceil(remaining / self.cfl_dt() - 1e-9))
                dt = remaining / n
                self.substep(dt)
                remaining -= dt
        self.frame += 1
        return self.state.x.copy(), self.state.F.copy()

    # -- diagnostics --------------------------------------------------------------------------------------------

    def total_mass(self) -> float:
        return float(self.state.mass.sum())

    def total_momentum(self) -> np.ndarray:
        """Linear momentum ``sum_p m_p v_p`` (2,). The APIC affine part adds nothing to it
        (``sum_i w_ip (x_i - x_p) = 0`` for B-splines), and the transfers conserve it exactly."""
        s = self.state
        return (s.mass[:, None] * s.v).sum(0)

    def total_angular_momentum(self, origin: tuple[float, float] = (0.0, 0.0)) -> float:
        """``sum_p m_p (x_p - o) x v_p + m_p dx^2/4 (C_10 - C_01)`` (APIC, Jiang et al. 2015: the affine part
        ``B_p = C_p D_p`` carries angular momentum)."""
        s = self.state
        r = s.x - np.asarray(origin)
        orbital = (s.mass * (r[:, 0] * s.v[:, 1] - r[:, 1] * s.v[:, 0])).sum()
        spin = (s.mass * (s.C[:, 1, 0] - s.C[:, 0, 1])).sum() * self.grid.dx**2 / 4.0
        return float(orbital + spin)

    def kinetic_energy(self) -> float:
        s = self.state
        return float(0.5 * (s.mass * (s.v**2).sum(1)).sum())

    def energy(self) -> dict[str, float]:
        """``kinetic`` (``m v^2 / 2``), ``affine`` (``m dx^2/8 ||C||^2``, the APIC part), ``gravity``
        (``-m g . x``), ``elastic`` (``sum V0 psi(F)``) and their ``total``."""
        s = self.state
        e = {
            "kinetic": self.kinetic_energy(),
            "affine": float((s.mass * (s.C**2).sum((1, 2))).sum() * self.grid.dx**2 / 8.0),
            "gravity": float(-(s.mass[:, None] * s.x * np.asarray(self.grid.gravity)).sum()),
            "elastic": float((s.vol0 * elastic_energy_ref(s.F, s.Jp, s.material, self._kinds,
                                                          self._params)).sum()) if s.n else 0.0,
        }
        e["total"] = sum(e.values())
        return e
