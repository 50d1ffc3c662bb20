"""Simulation scenes (YAML or JSON): materials assigned to regions of a model, solver settings, output.

Shape (every field is checked; a bad one raises :class:`SplatpixError` naming it, e.g.
``scene.materials[0].E: must be > 0, got -1``)::

    fps: 24                    # frames per second of the output (default 24)
    frames: 48                 # or duration: 2.0 (seconds); frame 0 is the initial state (default 48)
    size: [768, 512]           # output [width, height] or "768x512" (default: the model's native size)
    background: "#000000"      # "#rrggbb" (default black), an image path (relative to the scene), or original
    seed: 0                    # recorded in the report (the solver is deterministic)
    materials:                 # one entry per simulated object; a Gaussian takes the first entry whose region
      - preset: jelly          #   holds its mean; Gaussians in no region stay where they are (static)
        region: "ellipse:0.5,0.35,0.2,0.2"   # as in editing: all, box:..., polygon:..., ellipse:..., mask:PATH
        E: 3.0e4               # overrides of the preset (Material fields): kind, E, nu, density, theta_c,
        velocity: [0.0, 0.0]   #   theta_s, hardening, hardening_max, friction_angle, cohesion, bulk_modulus,
        name: blob             #   gamma; initial velocity in m/s in the simulation frame (x right, y up)
    simulation:
      grid_res: auto           # cells across the image's longer side, or auto (about 4 particles per cell)
      size: 1.0                # metres spanned by the image's longer side (the presets are tuned for ~1 m)
      gravity: [0.0, -9.81]    # m/s^2 in the simulation frame (y up): the default pulls things down the image
      boundary: separate       # sticky | slip | separate, or [left, right, bottom, top]
      wall_friction: 0.0
      boundary_cells: 3        # wall thickness in grid nodes
      margin: 0.0              # room beyond the image's left, right and top edges (fraction of its shorter side)
      cfl: 0.4
      substeps: null           # fixed substeps per frame (default: CFL-adaptive time steps)
      frame_dt: null           # simulated seconds per output frame (default 1 / fps: real time)
      dt_max: 1.0e-3
      threads: null            # numba threads (default: the solver's choice; 1 is best on a busy machine)
      colliders:               # static obstacles, in normalised image coordinates
        - {type: circle, centre: [0.5, 0.7], radius: 0.08, mode: slip, friction: 0.0}
        - {type: half_plane, point: [0.5, 0.9], normal: [0.3, -1.0], mode: sticky}

Coordinates: positions (regions, collider centres and points) are normalised image ``(u, v)``, v down; lengths
(collider radii, margin) are fractions of the image's shorter side; a half-plane's ``normal`` is a screen
direction (x right, y down) pointing to the side where material may be. Physical vectors (gravity, velocities)
are in the simulation frame, SI units, y **up**. :mod:`.bridge` has the image <-> simulation mapping.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..checks import is_number
from ..edit.spec import reject_non_finite
from ..errors import SplatpixError
from .boundary import MODES
from .materials import PRESETS, Material

__all__ = ["ColliderSpec", "MaterialSpec", "Scene", "SimulationSpec", "load_scene", "parse_scene",
           "single_material_scene"]

MAX_FRAMES = 100_000
MAX_SIDE = 1 << 15
MAX_GRID = 4096
_TOP_KEYS = ("fps", "frames", "duration", "size", "background", "seed", "materials", "simulation")
_SIM_KEYS = ("grid_res", "size", "gravity", "boundary", "wall_friction", "boundary_cells", "margin", "cfl",
             "substeps", "frame_dt", "dt_max", "threads", "colliders")
_MATERIAL_FIELDS = ("kind", "E", "nu", "density", "theta_c", "theta_s", "hardening", "hardening_max",
                    "friction_angle", "cohesion", "bulk_modulus", "gamma")
_MATERIAL_KEYS = ("preset", "region", "name", "velocity", *_MATERIAL_FIELDS)
_CIRCLE_KEYS = ("type", "centre", "radius", "mode", "friction")
_PLANE_KEYS = ("type", "point", "normal", "mode", "friction")


@dataclass
class MaterialSpec:
    """One simulated object: a material, the region whose Gaussians it takes, an initial velocity (m/s, y up)."""

    material: Material
    region: Any  # splatpix.edit.region.Region
    velocity: tuple[float, float] = (0.0, 0.0)
    where: str = "scene.materials[0]"


@dataclass
class ColliderSpec:
    """A static collider in image terms: ``circle`` (``centre`` (u, v), ``radius`` as a fraction of the shorter
    side) or ``half_plane`` (``point`` (u, v), ``normal`` a screen direction, y down)."""

    type: str
    centre: tuple[float, float] = (0.5, 0.5)
    radius: float = 0.1
    point: tuple[float, float] = (0.5, 1.0)
    normal: tuple[float, float] = (0.0, -1.0)
    mode: str = "slip"
    friction: float = 0.0


@dataclass
class SimulationSpec:
    """Solver settings (module docstring); ``grid_res=None`` is ``auto``."""

    grid_res: int | None = None
    size: float = 1.0
    gravity: tuple[float, float] = (0.0, -9.81)
    boundary: str | tuple[str, str, str, str] = "separate"
    wall_friction: float = 0.0
    boundary_cells: int = 3
    margin: float = 0.0
    cfl: float = 0.4
    substeps: int | None = None
    frame_dt: float | None = None
    dt_max: float = 1e-3
    threads: int | None = None
    colliders: list[ColliderSpec] = field(default_factory=list)


@dataclass
class Scene:
    """A validated scene (module docstring). ``size`` is the output ``(height, width)`` (``None``: native)."""

    materials: list[MaterialSpec]
    simulation: SimulationSpec = field(default_factory=SimulationSpec)
    frames: int = 48
    fps: float = 24.0
    size: tuple[int, int] | None = None
    background: str | None = None
    seed: int = 0
    base_dir: str | None = None
    inputs: list[str] = field(default_factory=list)  # files the scene reads (mask regions, background image)

    @property
    def frame_dt(self) -> float:
        """Simulated seconds per output frame."""
        return self.simulation.frame_dt if self.simulation.frame_dt is not None else 1.0 / self.fps


# ------------------------------------------------------------------------------------------------ helpers


def _bad(where: str, msg: str) -> SplatpixError:
    return SplatpixError(f"{where}: {msg}")


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _coerce(v: Any) -> Any:
    """``"1e5"`` -> ``100000.0``: PyYAML (YAML 1.1) reads exponents without a dot and sign as strings."""
    if isinstance(v, str) and _FLOAT.match(v.strip()):
        return float(v)
    return v


def _is_yaml_number(v: Any) -> bool:
    return is_number(_coerce(v))


def _check_keys(d: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for k in d:
        if k not in allowed:
            raise _bad(f"{where}.{k}" if isinstance(k, str) else where, f"unknown key (use {', '.join(allowed)})")


def _number(v: Any, where: str, *, positive: bool = False, minimum: float | None = None,
            below: float | None = None) -> float:
    if not _is_yaml_number(v):
        raise _bad(where, f"expected a number, got {v!r}")
    v = float(_coerce(v))
    if positive and not v > 0:
        raise _bad(where, f"must be > 0, got {v!r}")
    if minimum is not None and v < minimum:
        raise _bad(where, f"must be >= {minimum:g}, got {v!r}")
    if below is not None and not v < below:
        raise _bad(where, f"must be < {below:g}, got {v!r}")
    return float(v)


def _integer(v: Any, where: str, minimum: int, maximum: int | None = None) -> int:
    if not (isinstance(v, int) and not isinstance(v, bool)) or v < minimum or (maximum is not None and v > maximum):
        rng = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise _bad(where, f"expected an integer {rng}, got {v!r}")
    return int(v)


def _vec2(v: Any, where: str) -> tuple[float, float]:
    if not (isinstance(v, list | tuple) and len(v) == 2 and all(_is_yaml_number(t) for t in v)):
        raise _bad(where, f"expected two numbers [a, b], got {v!r}")
    return float(_coerce(v[0])), float(_coerce(v[1]))


def _mode(v: Any, where: str) -> str:
    if not isinstance(v, str) or v not in MODES:
        raise _bad(where, f"expected one of {', '.join(MODES)}, got {v!r}")
    return str(v)


def _out_size(v: Any, where: str) -> tuple[int, int]:
    """``[width, height]`` or ``"WxH"`` -> (height, width)."""
    w = h = None
    if isinstance(v, str):
        try:
            w, h = (int(t) for t in v.lower().split("x"))
        except ValueError:
            pass
    elif isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(t, int) and not isinstance(t, bool)
                                                             for t in v):
        w, h = v
    if w is None or h is None:
        raise _bad(where, f"expected [width, height] or 'WxH', got {v!r}")
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise _bad(where, f"width and height must be in 1..{MAX_SIDE}, got {v!r}")
    return int(h), int(w)


def _region(v: Any, where: str, base_dir: str | None, inputs: list[str]) -> Any:
    from ..edit.spec import parse_region_value

    if isinstance(v, str) and v.strip().startswith("mask:"):
        path = v.strip()[5:].strip()
        inputs.append(path if base_dir is None or os.path.isabs(path) else os.path.join(base_dir, path))
    elif isinstance(v, Mapping) and len(v) == 1 and isinstance(v.get("mask"), str):
        path = v["mask"]
        inputs.append(path if base_dir is None or os.path.isabs(path) else os.path.join(base_dir, path))
    return parse_region_value(v, 0.0, where, base_dir)


# ------------------------------------------------------------------------------------------------ parsing


def _material(d: Any, where: str, base_dir: str | None, inputs: list[str]) -> MaterialSpec:
    if not isinstance(d, Mapping):
        raise _bad(where, f"a material must be a mapping with preset (or kind) and region, got {d!r}")
    _check_keys(d, _MATERIAL_KEYS, where)
    preset = d.get("preset")
    if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
        raise _bad(f"{where}.preset", f"expected one of {', '.join(PRESETS)}, got {preset!r}")
    if preset is None and "kind" not in d:
        raise _bad(f"{where}.preset", "give a preset (elastic, jelly, snow, sand, water) or a kind")
    kw: dict[str, Any] = {}
    if "kind" in d:
        if d["kind"] not in ("elastic", "snow", "sand", "water"):
            raise _bad(f"{where}.kind", f"expected one of elastic, snow, sand, water, got {d['kind']!r}")
        kw["kind"] = d["kind"]
    checks: dict[str, dict[str, Any]] = {
        "E": {"positive": True}, "density": {"positive": True},
        "theta_c": {"minimum": 0.0, "below": 1.0}, "theta_s": {"minimum": 0.0}, "hardening": {"minimum": 0.0},
        "hardening_max": {"minimum": 1.0}, "friction_angle": {"minimum": 0.0, "below": 90.0},
        "cohesion": {"minimum": 0.0}, "bulk_modulus": {"positive": True}, "gamma": {"minimum": 1.0},
    }
    for k, opts in checks.items():
        if k in d:
            kw[k] = _number(d[k], f"{where}.{k}", **opts)
    if "nu" in d:
        kw["nu"] = _number(d["nu"], f"{where}.nu")
        if not -1.0 < kw["nu"] < 0.5:
            raise _bad(f"{where}.nu", f"Poisson's ratio must be in (-1, 0.5), got {d['nu']!r}")
    name = d.get("name", preset or kw.get("kind", ""))
    if not isinstance(name, str):
        raise _bad(f"{where}.name", f"expected a string, got {name!r}")
    if "region" not in d or d["region"] is None:
        raise _bad(f"{where}.region", "required: the region whose Gaussians get this material (or all)")
    region = _region(d["region"], f"{where}.region", base_dir, inputs)
    velocity = _vec2(d["velocity"], f"{where}.velocity") if "velocity" in d else (0.0, 0.0)
    try:
        mat = Material.preset(preset, **kw).with_(name=name) if preset is not None else Material(name=name, **kw)
    except SplatpixError as e:
        raise _bad(where, str(e)) from None
    return MaterialSpec(mat, region, velocity, where)


def _collider(d: Any, where: str) -> ColliderSpec:
    if not isinstance(d, Mapping):
        raise _bad(where, f"a collider must be a mapping with type circle or half_plane, got {d!r}")
    kind = d.get("type")
    if kind not in ("circle", "half_plane"):
        raise _bad(f"{where}.type", f"expected circle or half_plane, got {kind!r}")
    _check_keys(d, _CIRCLE_KEYS if kind == "circle" else _PLANE_KEYS, where)
    mode = _mode(d.get("mode", "slip"), f"{where}.mode")
    friction = _number(d.get("friction", 0.0), f"{where}.friction", minimum=0.0)
    if kind == "circle":
        for k in ("centre", "radius"):
            if k not in d:
                raise _bad(f"{where}.{k}", "required by a circle")
        return ColliderSpec("circle", centre=_vec2(d["centre"], f"{where}.centre"),
                            radius=_number(d["radius"], f"{where}.radius", positive=True), mode=mode,
                            friction=friction)
    for k in ("point", "normal"):
        if k not in d:
            raise _bad(f"{where}.{k}", "required by a half_plane")
    normal = _vec2(d["normal"], f"{where}.normal")
    if normal == (0.0, 0.0):
        raise _bad(f"{where}.normal", "must be non-zero")
    return ColliderSpec("half_plane", point=_vec2(d["point"], f"{where}.point"), normal=normal, mode=mode,
                        friction=friction)


def _simulation(d: Any, where: str) -> SimulationSpec:
    if d is None:
        return SimulationSpec()
    if not isinstance(d, Mapping):
        raise _bad(where, f"expected a mapping of solver settings, got {d!r}")
    _check_keys(d, _SIM_KEYS, where)
    s = SimulationSpec()
    g = d.get("grid_res", "auto")
    s.grid_res = None if g == "auto" or g is None else _integer(g, f"{where}.grid_res", 8, MAX_GRID)
    s.size = _number(d.get("size", 1.0), f"{where}.size", positive=True)
    if "gravity" in d:
        s.gravity = _vec2(d["gravity"], f"{where}.gravity")
    b = d.get("boundary", "separate")
    if isinstance(b, list | tuple):
        if len(b) != 4:
            raise _bad(f"{where}.boundary", f"expected one mode or four [left, right, bottom, top], got {b!r}")
        s.boundary = tuple(_mode(m, f"{where}.boundary[{i}]") for i, m in enumerate(b))  # type: ignore[assignment]
    else:
        s.boundary = _mode(b, f"{where}.boundary")
    s.wall_friction = _number(d.get("wall_friction", 0.0), f"{where}.wall_friction", minimum=0.0)
    s.boundary_cells = _integer(d.get("boundary_cells", 3), f"{where}.boundary_cells", 1, 16)
    s.margin = _number(d.get("margin", 0.0), f"{where}.margin", minimum=0.0)
    if s.margin > 10:
        raise _bad(f"{where}.margin", f"at most 10 (shorter sides), got {s.margin!r}")
    cfl = _number(d.get("cfl", 0.4), f"{where}.cfl", positive=True)
    if cfl > 1:
        raise _bad(f"{where}.cfl", f"must be in (0, 1], got {cfl!r}")
    s.cfl = cfl
    if d.get("substeps") is not None:
        s.substeps = _integer(d["substeps"], f"{where}.substeps", 1, 1_000_000)
    if d.get("frame_dt") is not None:
        s.frame_dt = _number(d["frame_dt"], f"{where}.frame_dt", positive=True)
    s.dt_max = _number(d.get("dt_max", 1e-3), f"{where}.dt_max", positive=True)
    if d.get("threads") is not None:
        s.threads = _integer(d["threads"], f"{where}.threads", 1, 1024)
    cols = d.get("colliders", [])
    if cols is None:
        cols = []
    if not isinstance(cols, list):
        raise _bad(f"{where}.colliders", f"expected a list of colliders, got {cols!r}")
    s.colliders = [_collider(c, f"{where}.colliders[{i}]") for i, c in enumerate(cols)]
    return s


def parse_scene(data: Any, base_dir: str | None = None, where: str = "scene") -> Scene:
    """Validate a scene (the parsed YAML/JSON object, module docstring); relative paths are taken from
    ``base_dir``."""
    if not isinstance(data, Mapping):
        raise _bad(where, f"expected a mapping (materials, simulation, frames, ...), got {type(data).__name__}")
    reject_non_finite(data, where)
    _check_keys(data, _TOP_KEYS, where)
    fps = _number(data.get("fps", 24), f"{where}.fps", positive=True)
    if "duration" in data and "frames" in data:
        raise _bad(f"{where}.frames", "give duration or frames, not both")
    if "duration" in data:
        frames = max(1, round(_number(data["duration"], f"{where}.duration", positive=True) * fps))
    else:
        frames = _integer(data.get("frames", 48), f"{where}.frames", 1)
    if frames > MAX_FRAMES:
        raise _bad(f"{where}.frames", f"at most {MAX_FRAMES} frames, got {frames}")
    size = _out_size(data["size"], f"{where}.size") if data.get("size") is not None else None
    inputs: list[str] = []
    background = data.get("background")
    if background is not None:
        if not isinstance(background, str) or not background.strip():
            raise _bad(f"{where}.background", f"expected #rrggbb, an image path or original, got {background!r}")
        background = background.strip()
        if background.startswith("#"):
            from ..edit.composite import parse_colour

            try:
                parse_colour(background)
            except SplatpixError as e:
                raise _bad(f"{where}.background", str(e)) from None
        elif background != "original":
            inputs.append(background if base_dir is None or os.path.isabs(background)
                          else os.path.join(base_dir, background))
    seed = _integer(data.get("seed", 0), f"{where}.seed", 0)
    mats = data.get("materials")
    if not isinstance(mats, list) or not mats:
        raise _bad(f"{where}.materials", "expected a non-empty list of materials (preset, region, overrides)")
    materials = [_material(m, f"{where}.materials[{i}]", base_dir, inputs) for i, m in enumerate(mats)]
    sim = _simulation(data.get("simulation"), f"{where}.simulation")
    return Scene(materials, sim, frames, fps, size, background, seed, base_dir, inputs)


def load_scene(path: str | os.PathLike[str]) -> Scene:
    """Read and validate a scene file: ``.json`` as JSON, anything else as YAML (safe loader). Relative paths in it
    (mask regions, the background image) are taken from the file's folder."""
    from ..io.files import read_spec_file

    name = os.fspath(path)
    data = read_spec_file(name, "scene")
    return parse_scene(data, os.path.dirname(os.path.abspath(name)))


def single_material_scene(material: str, region: str = "all", **top: Any) -> Scene:
    """The one-material scene of the command-line shortcut: ``material`` (a preset) on ``region``; ``top`` holds
    optional top-level fields (``frames``, ``fps``, ``size``, ``background``) and ``simulation`` settings."""
    data: dict[str, Any] = {k: v for k, v in top.items() if v is not None}
    data["materials"] = [{"preset": material, "region": region}]
    return parse_scene(data, os.getcwd())
