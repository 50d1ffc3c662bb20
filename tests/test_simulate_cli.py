"""``splatpix simulate`` (splatpix.cli_simulate) through ``splatpix.cli.main``: the one-material shortcut and the
--scene path for both model kinds, overrides, and one-line errors (bad input, output over an input, NaN guard)."""

from __future__ import annotations

import os
import re

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from helpers import one_error_line, raise_on_call, run_cli, tiny_gainer_config

from splatpix import cli
from splatpix.errors import SplatpixError
from splatpix.gainer import GainerField, save_gainer
from splatpix.model.files import save_model
from splatpix.model.gaussians import Gaussians, params_from_covariance
from splatpix.physics.solver import MPMSolver

H, W = 24, 36


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("simulate_cli")
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    means = torch.stack((xs.reshape(-1) / W, ys.reshape(-1) / H), 1)
    n = means.shape[0]
    cov = torch.stack((torch.full((n,), 0.6), torch.zeros(n), torch.full((n,), 0.6)), 1)
    g = torch.Generator().manual_seed(0)
    save_model(Gaussians(means, params_from_covariance(cov, "cholesky"), 0.4 * torch.rand((n, 3), generator=g),
                         "cholesky", (H, W)), d / "gi.safetensors")
    cfg = tiny_gainer_config(200)
    f = GainerField(cfg, size=(H, W), seed=2)
    f = f.with_gaussians(f.means.detach(), f.cov_params.detach(), 4 * torch.randn(200, cfg.baked_dim, generator=g))
    save_gainer(f, d / "gainer.safetensors")
    (d / "scene.yaml").write_text(
        "fps: 12\nframes: 3\nbackground: '#101010'\n"
        "materials:\n"
        "  - {preset: jelly, region: 'box:0.1,0.1,0.45,0.5', E: 3.0e4}\n"
        "  - {preset: sand, region: {ellipse: [0.7, 0.3, 0.15, 0.2]}, friction_angle: 35}\n"
        "simulation: {grid_res: 36, threads: 1, boundary: [slip, slip, sticky, separate],\n"
        "             colliders: [{type: half_plane, point: [0.5, 0.9], normal: [0.2, -1]}]}\n")
    return d


def count_frames(path: str) -> tuple[int, tuple[int, int]]:
    if path.endswith("/"):
        names = sorted(n for n in os.listdir(path) if n.endswith(".png"))
        return len(names), iio.imread(os.path.join(path, names[0])).shape[:2]
    frames = np.asarray(iio.imread(path, index=None))
    return frames.shape[0], frames.shape[1:3]


def test_registered():
    assert "simulate" in cli.build_parser().format_help()


@pytest.mark.parametrize("model", ["gi.safetensors", "gainer.safetensors"])
def test_material_shortcut(files, tmp_path, capsys, model):
    out = str(tmp_path / "fall.gif")
    code, stdout, err = run_cli(capsys, "simulate", files / model, "--material", "jelly", "--region",
                                "box:0.2,0.1,0.8,0.5", "--frames", "4", "--fps", "12", "--grid-res", "36",
                                "--gravity", "20", "-o", out, "--quiet")
    assert code == 0, err
    assert "4 frames 36x24" in stdout and out in stdout
    assert count_frames(out) == (4, (H, W))


@pytest.mark.parametrize("model", ["gi.safetensors", "gainer.safetensors"])
def test_scene_path_with_overrides(files, tmp_path, capsys, model):
    out = str(tmp_path / "frames") + "/"
    code, stdout, err = run_cli(capsys, "simulate", files / model, "--scene", files / "scene.yaml", "-o", out,
                                "--frames", "5", "--size", "48x32", "--quiet")
    assert code == 0, err
    assert count_frames(out) == (5, (32, 48))
    code, stdout, err = run_cli(capsys, "simulate", files / model, "--scene", files / "scene.yaml", "-o", out,
                                "--quiet")
    assert code == 0, err
    assert count_frames(out) == (3, (H, W))  # a shorter rerun into the same folder drops the stale frames


@pytest.mark.parametrize("argv, match", [
    (["--material", "jelly", "--scene", "{scene}"], "--material cannot be combined with --scene"),
    (["--region", "all", "--scene", "{scene}"], "--region cannot be combined with --scene"),
    ([], "give a scene"),
    (["--material", "jelly", "--region", "box:1,2"], "region"),
    (["--material", "jelly", "--frames", "0"], r"scene\.frames: expected an integer >= 1"),
    (["--material", "jelly", "--grid-res", "4"], r"scene\.simulation\.grid_res"),
    (["--material", "jelly", "--scene", "{missing}"], "--material cannot be combined"),
    (["--scene", "{missing}"], "missing.yaml"),
    (["--material", "jelly", "--background", "{missing_bg}"], "nope.png"),
])
def test_errors_are_one_line(files, tmp_path, capsys, argv, match):
    argv = [a.format(scene=files / "scene.yaml", missing=tmp_path / "missing.yaml",
                     missing_bg=tmp_path / "nope.png") for a in argv]
    out = tmp_path / "x.gif"
    code, _, err = run_cli(capsys, "simulate", files / "gi.safetensors", *argv, "-o", out, "--quiet")
    assert code != 0
    line = one_error_line(err)
    assert re.search(match, line), line
    assert not out.exists()


def test_bad_scene_field_is_named(files, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("materials:\n  - {preset: jelly, region: all}\n  - {preset: sand, region: "
                                       "all, E: -3}\n")
    code, _, err = run_cli(capsys, "simulate", files / "gi.safetensors", "--scene", tmp_path / "bad.yaml", "-o",
                           tmp_path / "o.gif")
    assert code != 0 and "scene.materials[1].E: must be > 0" in err and len(err.strip().splitlines()) == 1


def test_never_writes_over_an_input(files, tmp_path, capsys):
    before = (files / "gi.safetensors").read_bytes()
    code, _, err = run_cli(capsys, "simulate", files / "gi.safetensors", "--material", "sand", "-o",
                           files / "gi.safetensors")
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert (files / "gi.safetensors").read_bytes() == before
    code, _, err = run_cli(capsys, "simulate", files / "gi.safetensors", "--scene", files / "scene.yaml", "-o",
                           files / "scene.yaml")
    assert code != 0 and "scene.yaml" in err


def test_nan_guard_exits_non_zero_with_a_partial_video(files, tmp_path, capsys, monkeypatch):
    diverged = SplatpixError("simulation diverged at frame 1, substep 3 (dt = 1e-3, t = 0.05 s): 2 particles got "
                             "non-finite values")
    monkeypatch.setattr(MPMSolver, "step_frame", raise_on_call(MPMSolver.step_frame, 2, diverged))
    out = str(tmp_path / "partial.gif")
    code, _, err = run_cli(capsys, "simulate", files / "gi.safetensors", "--material", "water", "--frames", "6",
                           "-o", out, "--quiet")
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "stopped at frame 2 of 6" in lines[0] and "diverged" in lines[0]
    assert count_frames(out) == (2, (H, W))
