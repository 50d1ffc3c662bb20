"""Scene files: parsing (YAML and JSON), defaults, overrides of presets, and field-named validation errors."""

from __future__ import annotations

import json

import pytest
import yaml
from PIL import Image

from splatpix.edit.region import AllRegion, BoxRegion, MaskRegion
from splatpix.errors import SplatpixError
from splatpix.physics import load_scene, parse_scene, single_material_scene

BASE = {"materials": [{"preset": "jelly", "region": "box:0.2,0.2,0.6,0.6"}]}


def scene(**patch):
    return {**BASE, **patch}


def test_defaults():
    s = parse_scene(BASE)
    assert s.frames == 48 and s.fps == 24 and s.size is None and s.background is None and s.seed == 0
    assert s.frame_dt == pytest.approx(1 / 24)
    sim = s.simulation
    assert sim.grid_res is None and sim.gravity == (0.0, -9.81) and sim.boundary == "separate"
    assert sim.size == 1.0 and sim.boundary_cells == 3 and sim.substeps is None and sim.colliders == []
    m = s.materials[0]
    assert m.material.kind == "elastic" and m.material.E == 2.0e4 and m.material.name == "jelly"
    assert isinstance(m.region, BoxRegion) and m.velocity == (0.0, 0.0)


def test_full_scene_with_overrides_and_colliders():
    s = parse_scene({
        "fps": 12, "duration": 1.5, "size": "64x40", "background": "#102030", "seed": 7,
        "materials": [
            {"preset": "sand", "region": {"ellipse": [0.3, 0.3, 0.1, 0.2]}, "friction_angle": 35, "name": "heap"},
            {"kind": "elastic", "E": 5e4, "nu": 0.25, "density": 500, "region": "all", "velocity": [1, 2]},
        ],
        "simulation": {"grid_res": 96, "size": 2.0, "gravity": [0, -5], "boundary": ["sticky", "slip", "separate",
                       "separate"], "wall_friction": 0.3, "boundary_cells": 2, "margin": 0.25, "cfl": 0.3,
                       "substeps": 20, "frame_dt": 0.01, "dt_max": 5e-4, "threads": 1,
                       "colliders": [{"type": "circle", "centre": [0.5, 0.6], "radius": 0.1, "mode": "sticky"},
                                     {"type": "half_plane", "point": [0.5, 0.9], "normal": [0.2, -1],
                                      "friction": 0.4}]},
    })
    assert s.frames == 18 and s.fps == 12 and s.size == (40, 64) and s.background == "#102030" and s.seed == 7
    assert s.frame_dt == 0.01
    a, b = s.materials
    assert a.material.kind == "sand" and a.material.friction_angle == 35 and a.material.name == "heap"
    assert a.material.E == 3.537e5  # the rest from the preset
    assert b.material.kind == "elastic" and b.material.E == 5e4 and b.material.density == 500
    assert isinstance(b.region, AllRegion) and b.velocity == (1.0, 2.0)
    sim = s.simulation
    assert sim.grid_res == 96 and sim.boundary == ("sticky", "slip", "separate", "separate")
    assert sim.substeps == 20 and sim.threads == 1 and sim.margin == 0.25
    c, p = sim.colliders
    assert c.type == "circle" and c.centre == (0.5, 0.6) and c.radius == 0.1 and c.mode == "sticky"
    assert p.type == "half_plane" and p.normal == (0.2, -1.0) and p.mode == "slip" and p.friction == 0.4


@pytest.mark.parametrize("patch, match", [
    ({"materials": [{"preset": "jelly", "region": "all", "E": -1}]}, r"^scene\.materials\[0\]\.E: must be > 0"),
    ({"materials": [{"preset": "jelly", "region": "all"}, {"preset": "sand", "region": "all", "density": 0}]},
     r"^scene\.materials\[1\]\.density: must be > 0"),
    ({"materials": [{"preset": "jelly", "region": "all", "nu": 0.5}]}, r"^scene\.materials\[0\]\.nu: Poisson"),
    ({"materials": [{"preset": "sand", "region": "all", "friction_angle": 95}]},
     r"^scene\.materials\[0\]\.friction_angle: must be < 90"),
    ({"materials": [{"preset": "goo", "region": "all"}]}, r"^scene\.materials\[0\]\.preset: expected one of"),
    ({"materials": [{"region": "all"}]}, r"^scene\.materials\[0\]\.preset: give a preset"),
    ({"materials": [{"kind": "plasma", "region": "all"}]}, r"^scene\.materials\[0\]\.kind: expected one of"),
    ({"materials": [{"preset": "jelly"}]}, r"^scene\.materials\[0\]\.region: required"),
    ({"materials": [{"preset": "jelly", "region": "box:1,2"}]}, r"^scene\.materials\[0\]\.region"),
    ({"materials": [{"preset": "jelly", "region": "all", "colour": 1}]}, r"^scene\.materials\[0\]\.colour: unknown"),
    ({"materials": [{"preset": "jelly", "region": "all", "velocity": [1]}]},
     r"^scene\.materials\[0\]\.velocity: expected two numbers"),
    ({"materials": [{"preset": "jelly", "region": "all", "E": "stiff"}]}, r"^scene\.materials\[0\]\.E: expected a"),
    ({"materials": []}, r"^scene\.materials: expected a non-empty list"),
    ({"materials": ["jelly"]}, r"^scene\.materials\[0\]: a material must be a mapping"),
    ({"fps": 0}, r"^scene\.fps: must be > 0"),
    ({"frames": 0}, r"^scene\.frames: expected an integer >= 1"),
    ({"frames": 2.5}, r"^scene\.frames: expected an integer"),
    ({"frames": 3, "duration": 1}, r"^scene\.frames: give duration or frames"),
    ({"duration": -1}, r"^scene\.duration: must be > 0"),
    ({"size": [0, 4]}, r"^scene\.size"),
    ({"background": "#12"}, r"^scene\.background"),
    ({"background": 3}, r"^scene\.background: expected"),
    ({"seed": -1}, r"^scene\.seed"),
    ({"speed": 1}, r"^scene\.speed: unknown key"),
    ({"simulation": {"grid_res": 4}}, r"^scene\.simulation\.grid_res: expected an integer in 8\.\."),
    ({"simulation": {"grid_res": "fine"}}, r"^scene\.simulation\.grid_res"),
    ({"simulation": {"gravity": 9.81}}, r"^scene\.simulation\.gravity: expected two numbers"),
    ({"simulation": {"boundary": "bouncy"}}, r"^scene\.simulation\.boundary: expected one of"),
    ({"simulation": {"boundary": ["slip", "slip"]}}, r"^scene\.simulation\.boundary: expected one mode or four"),
    ({"simulation": {"boundary": ["slip", "slip", "slip", "glue"]}}, r"^scene\.simulation\.boundary\[3\]"),
    ({"simulation": {"cfl": 2}}, r"^scene\.simulation\.cfl: must be in \(0, 1\]"),
    ({"simulation": {"substeps": 0}}, r"^scene\.simulation\.substeps"),
    ({"simulation": {"frame_dt": 0}}, r"^scene\.simulation\.frame_dt: must be > 0"),
    ({"simulation": {"size": -2}}, r"^scene\.simulation\.size: must be > 0"),
    ({"simulation": {"margin": -0.1}}, r"^scene\.simulation\.margin: must be >= 0"),
    ({"simulation": {"wall_friction": -1}}, r"^scene\.simulation\.wall_friction"),
    ({"simulation": {"threads": 0}}, r"^scene\.simulation\.threads"),
    ({"simulation": {"substep": 3}}, r"^scene\.simulation\.substep: unknown key"),
    ({"simulation": {"colliders": [{"type": "square"}]}}, r"^scene\.simulation\.colliders\[0\]\.type"),
    ({"simulation": {"colliders": [{"type": "circle", "centre": [0.5, 0.5]}]}},
     r"^scene\.simulation\.colliders\[0\]\.radius: required"),
    ({"simulation": {"colliders": [{"type": "circle", "centre": [0.5, 0.5], "radius": 0}]}},
     r"^scene\.simulation\.colliders\[0\]\.radius: must be > 0"),
    ({"simulation": {"colliders": [{"type": "half_plane", "point": [0.5, 0.5], "normal": [0, 0]}]}},
     r"^scene\.simulation\.colliders\[0\]\.normal: must be non-zero"),
    ({"simulation": {"colliders": [{"type": "half_plane", "point": [0.5, 0.5], "normal": [0, 1], "mode": "x"}]}},
     r"^scene\.simulation\.colliders\[0\]\.mode"),
    ({"simulation": {"colliders": [{"type": "circle", "centre": [0.5, 0.5], "radius": 1, "normal": [0, 1]}]}},
     r"^scene\.simulation\.colliders\[0\]\.normal: unknown key"),
    ({"simulation": {"cfl": float("nan")}}, r"^scene\.simulation\.cfl: non-finite"),
])
def test_errors_name_the_field(patch, match):
    with pytest.raises(SplatpixError, match=match) as err:
        parse_scene(scene(**patch))
    assert "\n" not in str(err.value)


def test_not_a_mapping():
    with pytest.raises(SplatpixError, match=r"^scene: expected a mapping"):
        parse_scene([1, 2])


def test_load_yaml_and_json_with_relative_mask(tmp_path):
    mask = Image.new("L", (8, 8), 0)
    mask.paste(255, (2, 2, 6, 6))
    mask.save(tmp_path / "mask.png")
    data = {"frames": 5, "materials": [{"preset": "snow", "region": "mask:mask.png"},
                                       {"preset": "water", "region": {"mask": "mask.png"}}],
            "background": "bg.png"}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "s.json").write_text(json.dumps(data))
    for name in ("s.yaml", "s.json"):
        s = load_scene(tmp_path / name)
        assert s.frames == 5 and isinstance(s.materials[0].region, MaskRegion)
        assert s.base_dir == str(tmp_path)
        assert sorted(s.inputs) == sorted([str(tmp_path / "mask.png")] * 2 + [str(tmp_path / "bg.png")])


def test_load_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("materials: [\n")
    with pytest.raises(SplatpixError, match="not a valid scene file"):
        load_scene(tmp_path / "bad.yaml")
    with pytest.raises(SplatpixError):
        load_scene(tmp_path / "missing.yaml")
    (tmp_path / "neg.yaml").write_text("materials:\n  - {preset: jelly, region: all, E: -5}\n")
    with pytest.raises(SplatpixError, match=r"scene\.materials\[0\]\.E: must be > 0"):
        load_scene(tmp_path / "neg.yaml")


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    (tmp_path / "s.yaml").write_text("materials:\n  - {preset: jelly, region: all, E: 3e4, density: 1.2E3}\n"
                                     "simulation: {dt_max: 5e-4, gravity: [0, -2e1]}\n")
    s = load_scene(tmp_path / "s.yaml")
    assert s.materials[0].material.E == 3e4 and s.materials[0].material.density == 1200.0
    assert s.simulation.dt_max == 5e-4 and s.simulation.gravity == (0.0, -20.0)


def test_single_material_scene():
    s = single_material_scene("sand", "box:0,0,0.5,0.5", frames=3, fps=None, simulation={"grid_res": 32})
    assert s.frames == 3 and s.fps == 24 and s.simulation.grid_res == 32
    assert s.materials[0].material.kind == "sand" and isinstance(s.materials[0].region, BoxRegion)
    with pytest.raises(SplatpixError, match=r"scene\.materials\[0\]\.preset"):
        single_material_scene("lava")
