"""MPM numba kernels vs the NumPy reference on random inputs: constitutive models, SVD, whole substeps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from splatpix.physics import Circle, HalfPlane, Material, Materials, MPMConfig, MPMSolver, ParticleState
from splatpix.physics.materials import (
    P_ALPHA,
    P_LAM,
    P_MU,
    kirchhoff,
    kirchhoff_ref,
    project,
    project_ref,
    svd2,
    svd_ref,
)

KINDS = ("elastic", "snow", "sand", "water")
MATS = Materials.of("jelly", "snow", Material.preset("sand", cohesion=0.01), "water", "sand")
FIELDS = ("x", "v", "C", "F", "Jp")


def random_F(rng: np.random.Generator, n: int, noise: float = 0.2) -> np.ndarray:
    F = np.eye(2) + noise * rng.normal(size=(n, 2, 2))
    bad = np.linalg.det(F) <= 0.05
    F[bad] = np.eye(2)
    return F


def random_state(rng: np.random.Generator, cfg: MPMConfig, mat: np.ndarray) -> ParticleState:
    """Random positions over the whole domain (walls and colliders included), velocities, F, C and Jp."""
    n = len(mat)
    lo, hix, hiy = cfg.grid_spec().clamp
    x = np.stack((rng.uniform(lo, hix, n), rng.uniform(lo, hiy, n)), 1)
    st = ParticleState.create(x, (cfg.dx / 2) ** 2, mat, MATS, v=rng.normal(0.0, 1.0, (n, 2)))
    st.F = random_F(rng, n, 0.15)
    st.C = rng.normal(0.0, 5.0, (n, 2, 2))
    st.Jp = rng.uniform(0.9, 1.1, n)
    water = MATS.table()[0][mat] == 3
    J = np.linalg.det(st.F)
    st.F[water] = np.sqrt(J[water])[:, None, None] * np.eye(2)
    st.Jp[water] = J[water]
    return st


def config(**kw: object) -> MPMConfig:
    base = dict(grid_res=32, domain=(1.0, 1.25), gravity=(0.5, -9.81), boundary=("separate", "slip", "sticky",
                "separate"), wall_friction=0.3, colliders=(Circle((0.5, 0.6), 0.12, "separate", 0.2),
                HalfPlane((0.0, 0.25), (1.0, 2.0), "sticky"), Circle((0.2, 0.9), 0.1, "slip")))
    base.update(kw)
    return MPMConfig(**base)  # type: ignore[arg-type]


def assert_states_close(a: ParticleState, b: ParticleState, rtol: float) -> None:
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        scale = max(np.abs(y).max(), 1e-300)
        err = np.abs(x - y).max() / scale
        assert err <= rtol, f"{f}: relative error {err:.2e}"


def test_svd2_matches_lapack_and_reconstructs() -> None:
    rng = np.random.default_rng(0)
    F = rng.normal(size=(500, 2, 2))  # includes inverted matrices
    U, S, Vt = svd_ref(F)
    np.testing.assert_allclose(np.einsum("pik,pk,pkj->pij", U, S, Vt), F, atol=1e-12)
    for p in range(len(F)):
        cu, su, cv, sv, s1, s2 = svd2(F[p, 0, 0], F[p, 0, 1], F[p, 1, 0], F[p, 1, 1])
        Un = np.array([[cu, -su], [su, cu]])
        Vn = np.array([[cv, -sv], [sv, cv]])
        np.testing.assert_allclose(Un @ np.diag([s1, s2]) @ Vn.T, F[p], atol=1e-12)
        np.testing.assert_allclose([s1, s2], S[p], atol=1e-12)
        assert s1 >= abs(s2) - 1e-15
        np.testing.assert_allclose(Un @ Vn.T, U[p] @ Vt[p], atol=1e-10)


@pytest.mark.parametrize("mid", range(len(MATS)))
def test_constitutive_numba_equals_reference(mid: int) -> None:
    rng = np.random.default_rng(10 + mid)
    kinds, params = MATS.table()
    n = 400
    F = random_F(rng, n, 0.25)
    Jp = rng.uniform(0.8, 1.2, n)
    mat = np.full(n, mid)
    tau_ref = kirchhoff_ref(F, Jp, mat, kinds, params)
    F_ref, Jp_ref = project_ref(F, Jp, mat, kinds, params)
    for p in range(n):
        t = kirchhoff(F[p, 0, 0], F[p, 0, 1], F[p, 1, 0], F[p, 1, 1], Jp[p], kinds[mid], params, mid)
        np.testing.assert_allclose(np.reshape(t, (2, 2)), tau_ref[p], rtol=1e-10, atol=1e-10 * np.abs(tau_ref).max())
        r = project(F[p, 0, 0], F[p, 0, 1], F[p, 1, 0], F[p, 1, 1], Jp[p], kinds[mid], params, mid)
        np.testing.assert_allclose(np.reshape(r[:4], (2, 2)), F_ref[p], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(r[4], Jp_ref[p], rtol=1e-10)


def test_snow_clamps_singular_values() -> None:
    rng = np.random.default_rng(1)
    kinds, params = MATS.table()
    F = random_F(rng, 300, 0.1)
    mat = np.full(300, 1)
    Fn, Jp = project_ref(F, np.ones(300), mat, kinds, params)
    s = np.linalg.svd(Fn, compute_uv=False)
    m = MATS[1]
    assert s.min() >= 1 - m.theta_c - 1e-12 and s.max() <= 1 + m.theta_s + 1e-12
    # F = Fe Fp: det F = det(Fe) * Jp
    np.testing.assert_allclose(np.linalg.det(Fn) * Jp, np.linalg.det(F), rtol=1e-12)


@pytest.mark.parametrize("mid", [2, 4])
def test_sand_return_mapping_lands_in_the_cone(mid: int) -> None:
    rng = np.random.default_rng(2)
    kinds, params = MATS.table()
    n = 500
    F = random_F(rng, n, 0.2)
    mat = np.full(n, mid)
    Fn, _ = project_ref(F, np.ones(n), mat, kinds, params)
    coh = MATS[mid].cohesion
    eps = np.log(np.linalg.svd(Fn, compute_uv=False))
    tr = eps.sum(1) - coh
    dev = eps - eps.mean(1, keepdims=True)
    mu, lam, alpha = params[mid, P_MU], params[mid, P_LAM], params[mid, P_ALPHA]
    dgamma = np.linalg.norm(dev, axis=1) + (2 * lam + 2 * mu) / (2 * mu) * tr * alpha
    assert (tr <= 1e-12).all()
    assert (dgamma <= 1e-9).all()
    # stretched material goes to the cone tip: F becomes a rotation times exp(c/2)
    Ft = np.array([[[1.05, 0.0], [0.0, 1.02]]])
    Fn, _ = project_ref(Ft, np.ones(1), np.array([mid]), kinds, params)
    np.testing.assert_allclose(np.linalg.svd(Fn, compute_uv=False), np.exp(coh / 2) * np.ones((1, 2)), atol=1e-12)


@pytest.mark.parametrize("kind", [*KINDS, "mixed"])
def test_substep_numba_equals_reference(kind: str) -> None:
    rng = np.random.default_rng([*KINDS, "mixed"].index(kind))
    cfg = config()
    n = 1500
    mat = rng.integers(0, len(MATS), n) if kind == "mixed" else np.full(n, KINDS.index(kind))
    st = random_state(rng, cfg, mat)
    fast = MPMSolver(cfg, st.copy(), MATS)
    ref = MPMSolver(dataclasses.replace(cfg, backend="reference"), st.copy(), MATS)
    steps = 1 if kind != "mixed" else 8
    for _ in range(steps):
        fast.substep(2e-4)
        ref.substep(2e-4)
        np.testing.assert_allclose(fast.grid_mass, ref.grid_mass, rtol=1e-12, atol=1e-14 * ref.grid_mass.max())
    assert_states_close(fast.state, ref.state, 1e-10)


def test_substep_numba_equals_reference_parallel() -> None:
    """The coloured parallel P2G (forced with threads=2) gives the reference result too."""
    rng = np.random.default_rng(5)
    cfg = config(threads=2)
    st = random_state(rng, cfg, rng.integers(0, len(MATS), 3000))
    fast = MPMSolver(cfg, st.copy(), MATS)
    ref = MPMSolver(dataclasses.replace(cfg, backend="reference"), st.copy(), MATS)
    for _ in range(3):
        fast.substep(1e-4)
        ref.substep(1e-4)
    assert_states_close(fast.state, ref.state, 1e-10)
