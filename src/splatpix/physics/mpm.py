"""Numba kernels of one MLS-MPM substep (Hu et al. 2018, "A moving least squares material point method with
displacement discontinuity and two-way rigid body coupling"), 2-D, quadratic B-splines, APIC transfers.

Grid: ``(nx + 1) x (ny + 1)`` nodes at ``(i dx, j dx)``. A particle at ``x_p`` has stencil base
``b = floor(x_p / dx - 0.5)``, fractional offset ``f = x_p / dx - b`` and weights (per axis)
``w0 = (1.5 - f)^2 / 2``, ``w1 = 0.75 - (f - 1)^2``, ``w2 = (f - 0.5)^2 / 2`` over nodes ``b, b + 1, b + 2``.
With ``D^-1 = 4 / dx^2`` and ``d_ip = x_i - x_p``:

1. **P2G**: ``A_p = -dt V_p^0 D^-1 tau_p + m_p C_p`` (``tau`` the Kirchhoff stress, :mod:`.materials`);
   ``m_i = sum_p w_ip m_p``, ``(m v)_i = sum_p w_ip (m_p v_p + A_p d_ip)``.
2. **Grid**: ``v_i = (m v)_i / m_i + dt g``, then the boundary conditions (:mod:`.boundary`).
3. **G2P**: ``v_p = sum_i w_ip v_i``, ``C_p = D^-1 sum_i w_ip v_i d_ip^T``, ``x_p += dt v_p`` (clamped to
   ``[dx, L - dx]`` so the stencil stays on the grid; the walls stop material well before that),
   ``F_p <- (I + dt C_p) F_p`` followed by the return mapping, which updates ``Jp``.

The stress is evaluated from the ``F`` left by the previous substep, so after a substep ``x, v, C, F, Jp`` all
belong to the same time. The per-particle stress (SVDs) and G2P run in parallel (``prange``, race-free). The P2G
scatter is made race-free by colouring: particles are counting-sorted (stably, so the order is deterministic)
into vertical strips of ``STRIP`` stencil-base columns; a strip writes only its own columns plus two more, so
all even strips can scatter concurrently, then all odd ones. Summation order depends only on the input, not
on the number of threads. Particles are never reordered in the state: particle ``i`` stays particle ``i``.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ..jit import NUMBA_CACHE
from .boundary import apply_bc, collider_normal
from .materials import P_GAMMA, P_HMAX, P_XI, SNOW, WATER, kirchhoff, project

STRIP = 4  # stencil-base columns per P2G strip (>= 2 for the colouring to be race-free)


@numba.njit(cache=NUMBA_CACHE, parallel=True)
def particle_affine(F: np.ndarray, C: np.ndarray, Jp: np.ndarray, mass: np.ndarray, vol0: np.ndarray,
                    mat: np.ndarray, kinds: np.ndarray, params: np.ndarray, dt: float, inv_dx: float,
                    out: np.ndarray) -> None:
    """``out[p] = -dt V_p^0 D^-1 tau_p + m_p C_p``."""
    coef = -dt * 4.0 * inv_dx * inv_dx
    for p in prange(F.shape[0]):
        m = mat[p]
        t00, t01, t10, t11 = kirchhoff(F[p, 0, 0], F[p, 0, 1], F[p, 1, 0], F[p, 1, 1], Jp[p], kinds[m], params, m)
        k = coef * vol0[p]
        mp = mass[p]
        out[p, 0, 0] = k * t00 + mp * C[p, 0, 0]
        out[p, 0, 1] = k * t01 + mp * C[p, 0, 1]
        out[p, 1, 0] = k * t10 + mp * C[p, 1, 0]
        out[p, 1, 1] = k * t11 + mp * C[p, 1, 1]


@numba.njit(cache=NUMBA_CACHE)
def strip_order(x: np.ndarray, inv_dx: float, n_strips: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable counting sort of the particles by P2G strip: ``(order, starts)``, strip ``s`` is
    ``order[starts[s]:starts[s + 1]]``."""
    n = x.shape[0]
    sid = np.empty(n, dtype=np.int64)
    starts = np.zeros(n_strips + 1, dtype=np.int64)
    for p in range(n):
        s = int(math.floor(x[p, 0] * inv_dx - 0.5)) // STRIP
        s = min(max(s, 0), n_strips - 1)
        sid[p] = s
        starts[s + 1] += 1
    for s in range(n_strips):
        starts[s + 1] += starts[s]
    fill = starts[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for p in range(n):
        s = sid[p]
        order[fill[s]] = p
        fill[s] += 1
    return order, starts


@numba.njit(cache=NUMBA_CACHE, inline="always")
def _scatter(p: int, x: np.ndarray, v: np.ndarray, mass: np.ndarray, aff: np.ndarray, inv_dx: float, dx: float,
             gm: np.ndarray, gmv: np.ndarray) -> None:
    px = x[p, 0] * inv_dx
    py = x[p, 1] * inv_dx
    bx = int(math.floor(px - 0.5))
    by = int(math.floor(py - 0.5))
    fx = px - bx
    fy = py - by
    wx0, wx1, wx2 = 0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2
    wy0, wy1, wy2 = 0.5 * (1.5 - fy) ** 2, 0.75 - (fy - 1.0) ** 2, 0.5 * (fy - 0.5) ** 2
    m = mass[p]
    mvx = m * v[p, 0]
    mvy = m * v[p, 1]
    a00, a01, a10, a11 = aff[p, 0, 0], aff[p, 0, 1], aff[p, 1, 0], aff[p, 1, 1]
    for i in range(3):
        wx = wx0 if i == 0 else (wx1 if i == 1 else wx2)
        dpx = (i - fx) * dx
        for j in range(3):
            wy = wy0 if j == 0 else (wy1 if j == 1 else wy2)
            dpy = (j - fy) * dx
            w = wx * wy
            gm[bx + i, by + j] += w * m
            gmv[bx + i, by + j, 0] += w * (mvx + a00 * dpx + a01 * dpy)
            gmv[bx + i, by + j, 1] += w * (mvy + a10 * dpx + a11 * dpy)


@numba.njit(cache=NUMBA_CACHE, parallel=True)
def p2g(x: np.ndarray, v: np.ndarray, mass: np.ndarray, aff: np.ndarray, inv_dx: float, dx: float,
        order: np.ndarray, starts: np.ndarray, gm: np.ndarray, gmv: np.ndarray) -> None:
    """Clear the grid and scatter mass and APIC momentum, two colours of strips."""
    for i in prange(gm.shape[0]):
        for j in range(gm.shape[1]):
            gm[i, j] = 0.0
            gmv[i, j, 0] = 0.0
            gmv[i, j, 1] = 0.0
    n_strips = starts.shape[0] - 1
    for colour in range(2):
        n_col = (n_strips - colour + 1) // 2
        for k in prange(n_col):
            s = colour + 2 * k
            for q in range(starts[s], starts[s + 1]):
                _scatter(order[q], x, v, mass, aff, inv_dx, dx, gm, gmv)


@numba.njit(cache=NUMBA_CACHE, parallel=True)
def grid_update(gm: np.ndarray, gv: np.ndarray, dt: float, gx: float, gy: float, dx: float, nb: int,
                walls: np.ndarray, wall_mu: float, ckind: np.ndarray, cparams: np.ndarray, cmode: np.ndarray,
                cmu: np.ndarray) -> None:
    """Momentum -> velocity (in place in ``gv``), gravity, walls, colliders."""
    n0 = gm.shape[0]
    n1 = gm.shape[1]
    for i in prange(n0):
        for j in range(n1):
            m = gm[i, j]
            if m <= 0.0:
                gv[i, j, 0] = 0.0
                gv[i, j, 1] = 0.0
                continue
            vx = gv[i, j, 0] / m + dt * gx
            vy = gv[i, j, 1] / m + dt * gy
            if i < nb:
                vx, vy = apply_bc(vx, vy, 1.0, 0.0, walls[0], wall_mu)
            if i > n0 - 1 - nb:
                vx, vy = apply_bc(vx, vy, -1.0, 0.0, walls[1], wall_mu)
            if j < nb:
                vx, vy = apply_bc(vx, vy, 0.0, 1.0, walls[2], wall_mu)
            if j > n1 - 1 - nb:
                vx, vy = apply_bc(vx, vy, 0.0, -1.0, walls[3], wall_mu)
            for k in range(ckind.shape[0]):
                phi, nx, ny = collider_normal(ckind[k], cparams, k, i * dx, j * dx)
                if phi < 0.0:
                    vx, vy = apply_bc(vx, vy, nx, ny, cmode[k], cmu[k])
            gv[i, j, 0] = vx
            gv[i, j, 1] = vy


@numba.njit(cache=NUMBA_CACHE, parallel=True)
def g2p(x: np.ndarray, F: np.ndarray, Jp: np.ndarray, mat: np.ndarray, kinds: np.ndarray, params: np.ndarray,
        gv: np.ndarray, dt: float, inv_dx: float, dx: float, lo: float, hix: float, hiy: float,
        x_out: np.ndarray, v_out: np.ndarray, C_out: np.ndarray, F_out: np.ndarray, Jp_out: np.ndarray) -> int:
    """Gather velocity and affine velocity, advect, update ``F`` and apply plasticity.
    Returns the number of particles with non-finite results."""
    bad = 0
    d_inv = 4.0 * inv_dx * inv_dx
    for p in prange(x.shape[0]):
        px = x[p, 0] * inv_dx
        py = x[p, 1] * inv_dx
        bx = int(math.floor(px - 0.5))
        by = int(math.floor(py - 0.5))
        fx = px - bx
        fy = py - by
        wx0, wx1, wx2 = 0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2
        wy0, wy1, wy2 = 0.5 * (1.5 - fy) ** 2, 0.75 - (fy - 1.0) ** 2, 0.5 * (fy - 0.5) ** 2
        vx = 0.0
        vy = 0.0
        c00 = 0.0
        c01 = 0.0
        c10 = 0.0
        c11 = 0.0
        for i in range(3):
            wx = wx0 if i == 0 else (wx1 if i == 1 else wx2)
            dpx = (i - fx) * dx
            for j in range(3):
                wy = wy0 if j == 0 else (wy1 if j == 1 else wy2)
                dpy = (j - fy) * dx
                w = wx * wy
                ux = gv[bx + i, by + j, 0]
                uy = gv[bx + i, by + j, 1]
                vx += w * ux
                vy += w * uy
                c00 += w * ux * dpx
                c01 += w * ux * dpy
                c10 += w * uy * dpx
                c11 += w * uy * dpy
        c00 *= d_inv
        c01 *= d_inv
        c10 *= d_inv
        c11 *= d_inv
        nxp = min(max(x[p, 0] + dt * vx, lo), hix)
        nyp = min(max(x[p, 1] + dt * vy, lo), hiy)
        f00, f01, f10, f11 = F[p, 0, 0], F[p, 0, 1], F[p, 1, 0], F[p, 1, 1]
        g00 = 1.0 + dt * c00
        g01 = dt * c01
        g10 = dt * c10
        g11 = 1.0 + dt * c11
        t00 = g00 * f00 + g01 * f10
        t01 = g00 * f01 + g01 * f11
        t10 = g10 * f00 + g11 * f10
        t11 = g10 * f01 + g11 * f11
        m = mat[p]
        t00, t01, t10, t11, jp = project(t00, t01, t10, t11, Jp[p], kinds[m], params, m)
        x_out[p, 0] = nxp
        x_out[p, 1] = nyp
        v_out[p, 0] = vx
        v_out[p, 1] = vy
        C_out[p, 0, 0] = c00
        C_out[p, 0, 1] = c01
        C_out[p, 1, 0] = c10
        C_out[p, 1, 1] = c11
        F_out[p, 0, 0] = t00
        F_out[p, 0, 1] = t01
        F_out[p, 1, 0] = t10
        F_out[p, 1, 1] = t11
        Jp_out[p] = jp
        s = vx + vy + c00 + c01 + c10 + c11 + t00 + t01 + t10 + t11 + jp
        if not math.isfinite(s):
            bad += 1
    return bad


@numba.njit(cache=NUMBA_CACHE)
def max_speeds(v: np.ndarray, mat: np.ndarray, Jp: np.ndarray, kinds: np.ndarray, params: np.ndarray,
               moduli: np.ndarray, rho: np.ndarray) -> tuple[float, float]:
    """``(max |v_p|, max wave speed c_p)``: ``c = sqrt(M / rho)`` with the material's wave modulus ``M``, times
    the snow hardening factor ``h``; for water ``M = K J^(1 - gamma)`` (the Tait sound speed at ``J``)."""
    vmax2 = 0.0
    cmax2 = 0.0
    for p in range(v.shape[0]):
        s2 = v[p, 0] * v[p, 0] + v[p, 1] * v[p, 1]
        if s2 > vmax2:
            vmax2 = s2
        m = mat[p]
        k = kinds[m]
        M = moduli[m]
        if k == SNOW:
            M *= min(math.exp(params[m, P_XI] * (1.0 - Jp[p])), params[m, P_HMAX])
        elif k == WATER:  # Jp holds J
            M *= max(Jp[p], 1e-3) ** (1.0 - params[m, P_GAMMA])
        c2 = M / rho[m]
        if c2 > cmax2:
            cmax2 = c2
    return math.sqrt(vmax2), math.sqrt(cmax2)
