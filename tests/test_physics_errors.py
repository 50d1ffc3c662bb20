"""MPM input validation and the NaN guard: one-line SplatpixErrors."""

from __future__ import annotations

import numpy as np
import pytest

from splatpix.errors import SplatpixError
from splatpix.physics import Circle, HalfPlane, Material, Materials, MPMConfig, MPMSolver, ParticleState, box_particles


def block(cfg: MPMConfig, mats: Materials) -> ParticleState:
    x, vol = box_particles((0.4, 0.4), (0.6, 0.6), cfg.dx)
    return ParticleState.create(x, vol, 0, mats)


@pytest.mark.parametrize("kw, match", [
    ({"E": -1.0}, "Young's modulus"),
    ({"E": 0.0}, "Young's modulus"),
    ({"nu": 0.5}, "Poisson"),
    ({"nu": 0.7}, "Poisson"),
    ({"density": 0.0}, "density"),
    ({"E": float("nan")}, "finite"),
    ({"kind": "lava"}, "unknown kind"),
    ({"friction_angle": 95.0}, "friction_angle"),
    ({"theta_c": 1.5}, "theta_c"),
    ({"cohesion": -0.1}, "cohesion"),
    ({"kind": "water", "bulk_modulus": -5.0}, "bulk_modulus"),
])
def test_bad_material(kw: dict, match: str) -> None:
    with pytest.raises(SplatpixError, match=match):
        Material(**kw)


def test_bad_preset_and_table() -> None:
    with pytest.raises(SplatpixError, match="unknown material preset"):
        Material.preset("custard")
    with pytest.raises(SplatpixError, match="at least one"):
        Materials(())
    assert Material.preset("sand", friction_angle=40).friction_angle == 40


@pytest.mark.parametrize("kw, match", [
    ({"grid_res": 4}, "grid_res"),
    ({"domain": (1.0, 0.333)}, "whole number"),
    ({"domain": (-1.0, 1.0)}, "domain"),
    ({"boundary": "bouncy"}, "boundary mode"),
    ({"boundary": ("slip", "slip")}, "four"),
    ({"boundary_cells": 0}, "boundary_cells"),
    ({"cfl": 0.0}, "cfl"),
    ({"cfl": 2.0}, "cfl"),
    ({"dt": -1e-3}, "dt"),
    ({"frame_dt": 0.0}, "frame_dt"),
    ({"gravity": (0.0, float("inf"))}, "gravity"),
    ({"backend": "cuda"}, "backend"),
    ({"threads": 0}, "threads"),
    ({"wall_friction": -1.0}, "wall_friction"),
])
def test_bad_config(kw: dict, match: str) -> None:
    with pytest.raises(SplatpixError, match=match):
        MPMConfig(**kw)


def test_bad_colliders() -> None:
    with pytest.raises(SplatpixError, match="radius"):
        Circle((0.5, 0.5), -0.1)
    with pytest.raises(SplatpixError, match="normal"):
        HalfPlane((0.0, 0.1), (0.0, 0.0))
    with pytest.raises(SplatpixError, match="boundary mode"):
        Circle((0.5, 0.5), 0.1, mode="glue")


def test_bad_particles() -> None:
    cfg = MPMConfig(grid_res=32)
    mats = Materials.of("jelly")
    st = block(cfg, mats)
    st.x[3] = (1.2, 0.5)
    with pytest.raises(SplatpixError, match="outside the domain"):
        MPMSolver(cfg, st, mats)
    st = block(cfg, mats)
    st.x[0, 0] = 0.5 * cfg.dx  # inside the domain but within the last cell: the stencil would leave the grid
    with pytest.raises(SplatpixError, match="outside the domain"):
        MPMSolver(cfg, st, mats)
    st = block(cfg, mats)
    st.v[5, 1] = np.nan
    with pytest.raises(SplatpixError, match="NaN"):
        MPMSolver(cfg, st, mats)
    st = block(cfg, mats)
    st.material[0] = 3
    with pytest.raises(SplatpixError, match="material ids"):
        MPMSolver(cfg, st, mats)
    st = block(cfg, mats)
    st.F[0] = np.diag([1.0, -1.0])
    with pytest.raises(SplatpixError, match="det"):
        MPMSolver(cfg, st, mats)
    st = block(cfg, mats)
    st.mass = st.mass[:-1]
    with pytest.raises(SplatpixError, match="shape"):
        MPMSolver(cfg, st, mats)
    with pytest.raises(SplatpixError, match="material ids"):
        ParticleState.create(np.full((4, 2), 0.5), 1e-4, 1, mats)


def test_nan_guard_names_the_substep_and_keeps_the_last_good_state() -> None:
    cfg = MPMConfig(grid_res=64, dt=2e-2, frame_dt=2e-2)  # far beyond the CFL limit (~1e-3)
    mats = Materials.of("jelly")
    sim = MPMSolver(cfg, block(cfg, mats), mats)
    with pytest.raises(SplatpixError, match=r"frame \d+, substep \d+.*smaller cfl") as err:
        for _ in range(200):
            sim.step_frame()
    assert "\n" not in str(err.value)
    s = sim.state
    assert all(np.isfinite(getattr(s, k)).all() for k in ("x", "v", "F", "C", "Jp"))
    assert sim.substeps_done > 0
