"""MPM invariants: mass, linear and angular momentum, particle order, CFL time step."""

from __future__ import annotations

import numpy as np

from splatpix.physics import Material, Materials, MPMConfig, MPMSolver, ParticleState, box_particles

MATS = Materials.of("jelly", "snow", "sand", "water")


def spinning_block(cfg: MPMConfig, seed: int = 0) -> ParticleState:
    """A 0.3 x 0.3 block in the middle of the domain, four materials in quadrants, spinning and drifting."""
    x, vol = box_particles((0.35, 0.35), (0.65, 0.65), cfg.dx, jitter=0.5, seed=seed)
    mat = (x[:, 0] > 0.5).astype(int) + 2 * (x[:, 1] > 0.5)
    rng = np.random.default_rng(seed)
    r = x - 0.5
    v = 2.0 * np.stack((-r[:, 1], r[:, 0]), 1) + rng.normal(0.0, 0.05, x.shape) + [0.1, -0.05]
    return ParticleState.create(x, vol, mat, MATS, v=v)


def test_mass_is_conserved_on_particles_and_grid() -> None:
    cfg = MPMConfig(grid_res=64)
    st = spinning_block(cfg)
    sim = MPMSolver(cfg, st, MATS)
    m0 = st.mass.copy()
    total = sim.total_mass()
    for _ in range(20):
        sim.substep(sim.cfl_dt())
        assert np.array_equal(sim.state.mass, m0)
        assert abs(sim.grid_mass.sum() - total) <= 1e-13 * total


def test_momentum_is_conserved_without_gravity_and_walls() -> None:
    cfg = MPMConfig(grid_res=64, gravity=(0.0, 0.0))
    sim = MPMSolver(cfg, spinning_block(cfg), MATS)
    p0 = sim.total_momentum()
    L0 = sim.total_angular_momentum((0.5, 0.5))
    scale = (sim.state.mass * np.linalg.norm(sim.state.v, axis=1)).sum()
    for _ in range(200):
        sim.substep(sim.cfl_dt())
    assert sim.state.x.min() > 0.2 and sim.state.x.max() < 0.8  # never near a wall
    assert np.abs(sim.total_momentum() - p0).max() <= 1e-12 * scale
    # APIC also conserves angular momentum (orbital + affine spin)
    assert abs(sim.total_angular_momentum((0.5, 0.5)) - L0) <= 1e-12 * scale


def test_particle_order_is_preserved() -> None:
    """Particle i stays particle i: a permuted input gives the permuted result, and trajectories are continuous."""
    cfg = MPMConfig(grid_res=48)
    st = spinning_block(cfg, seed=3)
    perm = np.random.default_rng(0).permutation(st.n)
    permuted = ParticleState(*(getattr(st, k)[perm] for k in ("x", "v", "F", "C", "Jp", "mass", "vol0",
                                                               "material")))
    a = MPMSolver(cfg, st, MATS)
    b = MPMSolver(cfg, permuted, MATS)
    prev = a.state.x.copy()
    for _ in range(5):
        dt = a.cfl_dt()
        for _ in range(10):
            a.substep(dt)
            b.substep(dt)
        vmax = np.abs(a.state.v).max() + 9.81 * 10 * dt
        assert np.abs(a.state.x - prev).max() <= 10 * dt * vmax * 1.01
        prev = a.state.x.copy()
    for k in ("x", "v", "F", "C", "Jp"):
        np.testing.assert_allclose(getattr(b.state, k), getattr(a.state, k)[perm], rtol=1e-9, atol=1e-9)
    # step_frame returns copies in particle order
    pos, F = a.step_frame()
    assert pos.shape == (st.n, 2) and F.shape == (st.n, 2, 2)
    np.testing.assert_array_equal(pos, a.state.x)


def test_cfl_dt_shrinks_with_stiffness_and_speed() -> None:
    cfg = MPMConfig(grid_res=64, dt_max=1.0)
    x, vol = box_particles((0.4, 0.4), (0.6, 0.6), cfg.dx)
    dts = []
    for E in (1e4, 4e4, 1.6e5):
        mats = Materials.of(Material(E=E, nu=0.3, density=1000.0))
        dts.append(MPMSolver(cfg, ParticleState.create(x, vol, 0, mats), mats).cfl_dt())
    assert dts[0] > dts[1] > dts[2]
    np.testing.assert_allclose(dts[1] / dts[0], 0.5, rtol=1e-12)  # at rest: dt ~ 1/sqrt(E)
    mats = Materials.of(Material(E=1e4))
    moving = MPMSolver(cfg, ParticleState.create(x, vol, 0, mats, v=np.full((len(x), 2), 3.0)), mats)
    assert moving.cfl_dt() < dts[0]
    # the cap applies
    capped = MPMSolver(MPMConfig(grid_res=64, dt_max=1e-5), ParticleState.create(x, vol, 0, mats), mats)
    assert capped.cfl_dt() == 1e-5


def test_step_frame_covers_frame_dt_exactly() -> None:
    cfg = MPMConfig(grid_res=32, frame_dt=0.01)
    x, vol = box_particles((0.4, 0.4), (0.6, 0.6), cfg.dx)
    mats = Materials.of("jelly")
    sim = MPMSolver(cfg, ParticleState.create(x, vol, 0, mats), mats)
    for _ in range(3):
        sim.step_frame()
    assert abs(sim.time - 0.03) < 1e-12 and sim.frame == 3
    fixed = MPMSolver(MPMConfig(grid_res=32, frame_dt=0.01, dt=3e-4), ParticleState.create(x, vol, 0, mats), mats)
    fixed.step_frame()
    assert fixed.substeps_done == 34 and abs(fixed.time - 0.01) < 1e-12
