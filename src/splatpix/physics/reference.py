"""Pure-NumPy reference of one MLS-MPM substep: the test oracle of the numba kernels in :mod:`.mpm`.

Same algorithm and formulas as :mod:`.mpm` (see its docstring), written independently and vectorised over
particles: weights as arrays, the P2G scatter with ``np.add.at``, the constitutive models of
:func:`.materials.kirchhoff_ref` / :func:`.materials.project_ref` (LAPACK SVD), the boundary conditions of
:func:`.boundary.apply_bc_ref`. Slow (roughly 10-50x the numba path) but obviously correct.
"""

from __future__ import annotations

import numpy as np

from .boundary import GridSpec, apply_bc_ref, collider_normal_ref
from .materials import kirchhoff_ref, project_ref

__all__ = ["reference_substep"]


def _weights(x: np.ndarray, inv_dx: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stencil base ``(P, 2) int``, fractional offsets ``(P, 2)`` and weights ``(3, P, 2)``."""
    xs = x * inv_dx
    base = np.floor(xs - 0.5).astype(np.int64)
    f = xs - base
    w = np.stack((0.5 * (1.5 - f) ** 2, 0.75 - (f - 1.0) ** 2, 0.5 * (f - 0.5) ** 2))
    return base, f, w


def reference_p2g(x: np.ndarray, v: np.ndarray, C: np.ndarray, F: np.ndarray, Jp: np.ndarray, mass: np.ndarray,
                  vol0: np.ndarray, mat: np.ndarray, kinds: np.ndarray, params: np.ndarray, grid: GridSpec,
                  dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid mass ``(nx+1, ny+1)`` and momentum ``(nx+1, ny+1, 2)``."""
    dx = grid.dx
    tau = kirchhoff_ref(F, Jp, mat, kinds, params)
    aff = -dt * vol0[:, None, None] * (4.0 / dx**2) * tau + mass[:, None, None] * C
    base, f, w = _weights(x, grid.inv_dx)
    gm = np.zeros((grid.nx + 1, grid.ny + 1))
    gmv = np.zeros((grid.nx + 1, grid.ny + 1, 2))
    mv = mass[:, None] * v
    for i in range(3):
        for j in range(3):
            wij = w[i, :, 0] * w[j, :, 1]
            d = (np.array([i, j]) - f) * dx
            ix, iy = base[:, 0] + i, base[:, 1] + j
            np.add.at(gm, (ix, iy), wij * mass)
            np.add.at(gmv, (ix, iy), wij[:, None] * (mv + np.einsum("pab,pb->pa", aff, d)))
    return gm, gmv


def reference_grid_update(gm: np.ndarray, gmv: np.ndarray, grid: GridSpec, dt: float) -> np.ndarray:
    """Grid velocities ``(nx+1, ny+1, 2)`` after gravity and boundary conditions (zero where there is no mass)."""
    has = gm > 0.0
    gv = np.zeros_like(gmv)
    gv[has] = gmv[has] / gm[has][:, None] + dt * np.asarray(grid.gravity)
    n0, n1 = gm.shape
    ii, jj = np.meshgrid(np.arange(n0), np.arange(n1), indexing="ij")
    nb = grid.nb
    mu = grid.wall_friction
    for side, (mask, normal) in enumerate((
        (ii < nb, (1.0, 0.0)), (ii > n0 - 1 - nb, (-1.0, 0.0)),
        (jj < nb, (0.0, 1.0)), (jj > n1 - 1 - nb, (0.0, -1.0)),
    )):
        gv = apply_bc_ref(gv, np.array(normal), mask & has, int(grid.walls[side]), mu)
    pts = np.stack((ii * grid.dx, jj * grid.dx), -1)
    for k in range(len(grid.ckind)):
        phi, n = collider_normal_ref(int(grid.ckind[k]), grid.cparams[k], pts)
        gv = apply_bc_ref(gv, n, (phi < 0.0) & has, int(grid.cmode[k]), float(grid.cfriction[k]))
    return gv


def reference_g2p(x: np.ndarray, F: np.ndarray, Jp: np.ndarray, mat: np.ndarray, kinds: np.ndarray,
                  params: np.ndarray, gv: np.ndarray, grid: GridSpec, dt: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """New ``(x, v, C, F, Jp)``."""
    dx = grid.dx
    base, f, w = _weights(x, grid.inv_dx)
    v = np.zeros_like(x)
    B = np.zeros_like(F)
    for i in range(3):
        for j in range(3):
            wij = w[i, :, 0] * w[j, :, 1]
            d = (np.array([i, j]) - f) * dx
            g = gv[base[:, 0] + i, base[:, 1] + j]
            v += wij[:, None] * g
            B += wij[:, None, None] * g[:, :, None] * d[:, None, :]
    C = B * (4.0 / dx**2)
    lo, hix, hiy = grid.clamp
    xn = x + dt * v
    xn[:, 0] = np.clip(xn[:, 0], lo, hix)
    xn[:, 1] = np.clip(xn[:, 1], lo, hiy)
    Ft = (np.eye(2) + dt * C) @ F
    Fn, Jpn = project_ref(Ft, Jp, mat, kinds, params)
    return xn, v, C, Fn, Jpn


def reference_substep(x: np.ndarray, v: np.ndarray, C: np.ndarray, F: np.ndarray, Jp: np.ndarray,
                      mass: np.ndarray, vol0: np.ndarray, mat: np.ndarray, kinds: np.ndarray, params: np.ndarray,
                      grid: GridSpec, dt: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One substep: new ``(x, v, C, F, Jp)`` and the grid mass after P2G. Inputs are not modified."""
    gm, gmv = reference_p2g(x, v, C, F, Jp, mass, vol0, mat, kinds, params, grid, dt)
    gv = reference_grid_update(gm, gmv, grid, dt)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        xn, vn, Cn, Fn, Jpn = reference_g2p(x, F, Jp, mat, kinds, params, gv, grid, dt)
    return xn, vn, Cn, Fn, Jpn, gm
