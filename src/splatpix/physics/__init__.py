"""2-D MLS-MPM physics for splatpix: Gaussians driven as material-point particles.

Moving least squares MPM (Hu et al. 2018) with quadratic B-splines and APIC affine momentum (Jiang et al. 2015),
numba CPU kernels (:mod:`.mpm`) checked against a NumPy reference (:mod:`.reference`). Materials
(:mod:`.materials`): fixed-corotated elastic/jelly, snow (Stomakhin et al. 2013), Drucker-Prager sand (Klar et
al. 2016), weakly compressible water; any mix in one scene by per-particle material id. Walls and static
colliders with sticky/slip/separate conditions (:mod:`.boundary`), CFL time stepping (:mod:`.solver`)::

    from . import MPMConfig, MPMSolver, Materials, ParticleState, box_particles
    cfg = MPMConfig(grid_res=128, gravity=(0.0, -9.81), boundary="separate")
    mats = Materials.of("jelly", "sand")
    x, vol = box_particles((0.3, 0.5), (0.5, 0.7), cfg.dx)
    state = ParticleState.create(x, vol, material=0, materials=mats)
    sim = MPMSolver(cfg, state, mats)
    for _ in range(60):
        pos, F = sim.step_frame()      # (P, 2) positions, (P, 2, 2) deformation gradients; Sigma' = F Sigma F^T

Models: a scene (:mod:`.scene`, YAML/JSON) assigns materials to regions of a model; :mod:`.bridge` turns the
Gaussians into particles and the particles back into a moved model; :func:`simulate` renders it to a video::

    from . import simulate
    report = simulate(model, "scene.yaml", "out.mp4")   # or a mapping, or a Scene from load_scene / parse_scene
"""

from .boundary import Circle, HalfPlane
from .bridge import Bridge, DomainMap, domain_map
from .materials import PRESETS, Material, Materials
from .reference import reference_substep
from .scene import Scene, load_scene, parse_scene, single_material_scene
from .simulate import simulate
from .solver import MPMConfig, MPMSolver, ParticleState, box_particles

__all__ = [
    "PRESETS",
    "Bridge",
    "Circle",
    "DomainMap",
    "HalfPlane",
    "MPMConfig",
    "MPMSolver",
    "Material",
    "Materials",
    "ParticleState",
    "Scene",
    "box_particles",
    "domain_map",
    "load_scene",
    "parse_scene",
    "reference_substep",
    "simulate",
    "single_material_scene",
]
