"""Simulating models: an elastic object falls and comes to rest on the floor, mass is conserved, Gaussians in no
region do not move, both model kinds render to GIF and PNG frames, and the NaN guard keeps a valid partial video."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from helpers import pixel_lattice, raise_on_call, tiny_field

import splatpix
from splatpix.errors import SplatpixError
from splatpix.physics import Bridge, MPMSolver, parse_scene, simulate
from splatpix.physics.solver import MPMSolver as SolverClass

H, W = 32, 48


@pytest.fixture(scope="module")
def fitted() -> splatpix.Gaussians:
    """A real (tiny) fit of a 32 x 48 synthetic image: a bright disc on a gradient."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    disc = (((xs - 0.5) * W) ** 2 + ((ys - 0.35) * H) ** 2 < 64).float()
    img = torch.stack((0.3 * xs + 0.7 * disc, 0.3 * ys, 0.2 + 0.5 * disc)).clamp(0, 1)
    cfg = splatpix.FitConfig(n_gaussians=300, steps=30, optimizer="adam", lr=0.01)
    return splatpix.fit(img, cfg, progress=False).gaussians


def contrasty_field() -> object:
    """A baked GaINeR field with strong random features, so that moving Gaussians changes the picture."""
    f = tiny_field(200, (H, W))
    g = torch.Generator().manual_seed(5)
    feats = 4 * torch.randn(f.gaussian_features().shape, generator=g)
    return f.with_gaussians(f.means.detach(), f.cov_params.detach(), feats)


def read_frames(path: str) -> np.ndarray:
    if path.endswith("/"):
        names = sorted(n for n in os.listdir(path) if n.endswith(".png"))
        return np.stack([iio.imread(os.path.join(path, n)) for n in names])
    return np.asarray(iio.imread(path, index=None))


def test_elastic_object_falls_and_comes_to_rest_on_the_floor():
    sc = parse_scene({"materials": [{"preset": "elastic", "region": "box:0.35,0.15,0.65,0.45"}],
                      "simulation": {"wall_friction": 0.5, "threads": 1}})
    b = Bridge(pixel_lattice((H, W)), sc)
    sim = MPMSolver(b.config(sc), b.state, b.materials)
    eye = np.broadcast_to(np.eye(2), (len(b.index), 2, 2))

    def v_of(x: np.ndarray, F: np.ndarray) -> np.ndarray:
        return b.geometry(x, F)[0][b.index, 1] / H

    v0 = v_of(b.state.x, eye)
    centroid, kes = [v0.mean()], []
    for f in range(120):  # 5 s at 24 fps
        x, F = sim.step_frame()
        v = v_of(x, F)
        centroid.append(v.mean())
        kes.append(sim.kinetic_energy())
        if f == 4:  # free fall so far: 0.5 g t^2 down the image (metres -> v through the scale)
            t = 5 / 24
            expect = 0.5 * 9.81 * t * t / (b.domain.scale * H)
            assert v.mean() - v0.mean() == pytest.approx(expect, rel=0.03)
    centroid = np.array(centroid)
    kes = np.array(kes)
    assert np.all(np.diff(centroid[:6]) > 0)  # v increases: it falls *down* the image
    assert kes[-24:].max() < 0.01 * kes.max()  # at rest (measured 0.006% of the impact energy)
    assert 0.95 < v.max() < 1.0  # resting on the floor, the image's bottom edge (measured 0.972)
    assert v.max() - v.min() == pytest.approx(v0.max() - v0.min(), rel=0.05)  # still the same block
    assert centroid[-1] - centroid[0] > 0.5


def test_mass_is_conserved_and_equals_density_times_area(fitted):
    sc = parse_scene({"frames": 4, "materials": [{"preset": "jelly", "region": "ellipse:0.5,0.35,0.25,0.3"}],
                      "simulation": {"threads": 1}})
    b = Bridge(fitted, sc)
    area = b.objects[0]["area_px"] * b.domain.scale**2
    sim = MPMSolver(b.config(sc), b.state, b.materials)
    m0 = sim.total_mass()
    assert m0 == pytest.approx(1000.0 * area, rel=1e-12)
    for _ in range(6):
        sim.step_frame()
        assert sim.total_mass() == m0
        assert abs(sim.grid_mass.sum() - m0) <= 1e-12 * m0


def test_unassigned_gaussians_do_not_move(tmp_path):
    model = pixel_lattice((H, W))
    sc = {"frames": 5, "background": "#000000", "materials": [{"preset": "jelly", "region": "box:0.6,0,1,0.6"}],
          "simulation": {"threads": 1}}
    b = Bridge(model, parse_scene(sc))
    sim = MPMSolver(b.config(parse_scene(sc)), b.state, b.materials)
    for _ in range(4):
        x, F = sim.step_frame()
    moved = b.to_model(x, F)
    s = torch.from_numpy(b.static)
    assert torch.equal(moved.means[s], model.means[s]) and torch.equal(moved.cov_params[s], model.cov_params[s])
    assert torch.equal(moved.colours, model.colours)
    i = torch.from_numpy(b.index)
    assert float((moved.means[i, 1] - model.means[i, 1]).min()) > 0  # the object fell
    # and on the rendered frames the left part of the image stays exactly as it was
    r = simulate(model, sc, str(tmp_path / "frames") + "/", progress=False)
    frames = read_frames(str(tmp_path / "frames") + "/")
    assert r["static"] == len(b.static) and frames.shape[0] == 5
    left = frames[:, :, : int(0.6 * W) - 4]
    assert np.array_equal(left[0], left[-1])
    assert not np.array_equal(frames[0], frames[-1])


@pytest.mark.parametrize("kind", ["gaussians", "gainer"])
@pytest.mark.parametrize("fmt", ["gif", "dir"])
def test_short_simulation_written_and_read_back(tmp_path, fitted, kind, fmt):
    model = fitted if kind == "gaussians" else contrasty_field()
    size = {"size": [40, 24]} if fmt == "dir" else {}
    sc = {"frames": 4, "fps": 12, "background": "#204060", **size,
          "materials": [{"preset": "jelly", "region": "box:0.2,0.1,0.8,0.6"}], "simulation": {"threads": 1}}
    out = str(tmp_path / "sim.gif") if fmt == "gif" else str(tmp_path / "sim") + "/"
    r = simulate(model, sc, out, progress=False)
    frames = read_frames(out)
    h, w = (24, 40) if fmt == "dir" else (H, W)
    assert frames.shape[:3] == (4, h, w)
    assert r["frames"] == 4 and (r["height"], r["width"]) == (h, w) and r["kind"] == kind
    assert r["particles"] > 0 and r["particles"] + r["static"] == model.n
    assert r["substeps"] >= 3 and r["simulated_seconds"] == pytest.approx(3 / 12)
    assert r["mass"][0] == r["mass"][1] and r["frames_per_minute"] > 0
    assert not np.array_equal(frames[0], frames[-1])
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path))  # the temporary file or folder is gone


def test_scene_from_a_file_and_background(tmp_path):
    (tmp_path / "scene.yaml").write_text(
        "frames: 3\nbackground: '#ff0000'\nmaterials:\n  - {preset: sand, region: 'box:0.3,0.3,0.7,0.7'}\n"
        "simulation: {grid_res: 32, threads: 1, colliders: [{type: circle, centre: [0.5, 0.9], radius: 0.1}]}\n")
    g = pixel_lattice((H, W))
    keep = (g.means[:, 0] > 0.3) & (g.means[:, 0] < 0.7) & (g.means[:, 1] > 0.3) & (g.means[:, 1] < 0.7)
    model = splatpix.Gaussians(g.means[keep], g.cov_params[keep], g.colours[keep], g.param, g.size)
    r = simulate(model, tmp_path / "scene.yaml", str(tmp_path / "o.gif"), progress=False)
    frames = read_frames(str(tmp_path / "o.gif"))
    assert r["grid_res"] == 32 and r["static"] == 0 and frames.shape[0] == 3
    assert tuple(frames[0, 1, 1, :3]) == (255, 0, 0)  # no Gaussian there: the background shows


def test_nan_guard_keeps_the_frames_written_so_far(tmp_path, monkeypatch):
    diverged = SplatpixError("simulation diverged at frame 2, substep 5 (dt = 1e-3, t = 0.1 s): 3 particles got "
                             "non-finite values")
    monkeypatch.setattr(SolverClass, "step_frame", raise_on_call(SolverClass.step_frame, 3, diverged))
    out = str(tmp_path / "partial.gif")
    sc = {"frames": 8, "materials": [{"preset": "jelly", "region": "all"}], "simulation": {"threads": 1}}
    with pytest.raises(SplatpixError, match=r"stopped at frame 3 of 8 .*diverged.*the 3 frames before it") as err:
        simulate(pixel_lattice((H, W)), sc, out, progress=False)
    assert "\n" not in str(err.value)
    assert read_frames(out).shape[0] == 3  # frames 0, 1, 2: a valid GIF


def test_real_divergence_is_caught(tmp_path):
    out = str(tmp_path / "boom") + "/"
    sc = {"frames": 30, "materials": [{"preset": "elastic", "region": "box:0.2,0.2,0.8,0.8", "E": 1e8}],
          "simulation": {"substeps": 1, "threads": 1, "grid_res": 48}}  # dt = 1/24 s, far beyond the CFL limit
    with pytest.raises(SplatpixError, match=r"stopped at frame \d+ of 30") as err:
        simulate(pixel_lattice((H, W)), sc, out, progress=False)
    kept = int(str(err.value).split("the ")[-1].split(" frames")[0])
    assert kept >= 1 and len(os.listdir(out)) == kept


def test_bad_inputs():
    with pytest.raises(SplatpixError, match="cannot edit a str"):
        simulate("model", {"materials": [{"preset": "jelly", "region": "all"}]}, "x.gif")
    with pytest.raises(SplatpixError, match=r"scene\.materials\[0\]\.E"):
        simulate(pixel_lattice((H, W)), {"materials": [{"preset": "jelly", "region": "all", "E": 0}]}, "x.gif")
    with pytest.raises(SplatpixError, match="unsupported animation output"):
        simulate(pixel_lattice((H, W)), {"frames": 2, "materials": [{"preset": "jelly", "region": "all"}]}, "x.avi",
                 progress=False)


def test_frame_zero_is_the_model_composited_over_the_background(tmp_path, fitted):
    from splatpix.edit.composite import composite

    for bg in ("#000000", "#336699"):
        out = str(tmp_path / f"f{bg[1:]}") + "/"
        simulate(fitted, {"frames": 1, "background": bg, "materials": [{"preset": "sand", "region": "all"}]}, out,
                 progress=False)
        got = read_frames(out)[0].astype(np.int16)
        want = torch.round(composite(fitted, bg) * 255).to(torch.int16).permute(1, 2, 0).numpy()
        assert np.abs(got - want).max() <= 1


def test_layered_frames_start_as_the_render_and_the_object_covers_the_scene(tmp_path, fitted):
    """With static and simulated Gaussians, frame 0 is the model's own render (no seam at the region border) and
    a falling object hides what it passes over instead of adding its colour to it."""
    from splatpix.physics.simulate import _layered_frames
    from splatpix.render import render

    scene = parse_scene({"frames": 1, "materials": [{"preset": "jelly", "region": "ellipse:0.5,0.35,0.2,0.25"}]})
    bridge = Bridge(fitted, scene)
    assert len(bridge.static) and len(bridge.index)
    frame = _layered_frames(bridge, (0.0, 0.0, 0.0), H, W)
    with torch.no_grad():
        plain = render(fitted, H, W).clamp(0, 1)
    assert torch.allclose(frame(fitted), plain, atol=1e-4)
    # move the object's Gaussians by half the image height: where they land, the result is not the sum any more
    moved_means = fitted.means.clone()
    moved_means[torch.as_tensor(bridge.index), 1] += 0.3
    moved = splatpix.Gaussians(moved_means, fitted.cov_params, fitted.colours, fitted.param, fitted.size)
    with torch.no_grad():
        summed = render(moved, H, W).clamp(0, 1)
    layered = frame(moved)
    assert float(layered.max()) <= 1 and float((layered - summed).abs().max()) > 0.05
