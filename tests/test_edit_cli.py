"""``splatpix edit`` and ``splatpix animate`` (splatpix.cli_edit): both model kinds, op options, specs, regions,
backgrounds, saved models, and one-line errors for bad input. Runs through ``splatpix.cli.main`` once the
subcommands are wired in, and through a parser built with ``add_parsers`` either way."""

from __future__ import annotations

import argparse
import json
import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from helpers import one_error_line, run_cli, tiny_gainer_config
from PIL import Image

from splatpix import cli
from splatpix.cli.edit import add_parsers, load_any_model
from splatpix.errors import SplatpixError
from splatpix.gainer import GainerField, save_gainer
from splatpix.io import load_image
from splatpix.model.files import save_model
from splatpix.model.gaussians import Gaussians, params_from_covariance

H, W = 24, 32


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


WIRED = {"edit", "animate"} <= _subcommands(cli.build_parser())


def run_own(argv: list[str]) -> int:
    """What splatpix.cli.main does, with a parser of our own subcommands only."""
    parser = argparse.ArgumentParser(prog="splatpix")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SplatpixError as e:
        print(f"splatpix: error: {e}", file=sys.stderr)
        return 2


@pytest.fixture(params=["own", "main"])
def run(request, capsys):
    if request.param == "main" and not WIRED:
        pytest.skip("edit/animate are not wired into splatpix.cli yet")
    entry = run_own if request.param == "own" else cli.main
    return lambda *argv: run_cli(capsys, *argv, main=entry)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("edit_cli")
    g = torch.Generator().manual_seed(0)
    n = 150
    cov = torch.stack((torch.full((n,), 5.0), torch.zeros(n), torch.full((n,), 5.0)), 1)
    gi = Gaussians(torch.rand((n, 2), generator=g), params_from_covariance(cov, "cholesky"),
                   0.4 * torch.rand((n, 3), generator=g), "cholesky", (H, W))
    save_model(gi, d / "gi.safetensors")
    save_gainer(GainerField(tiny_gainer_config(200), size=(H, W), seed=2).bake(), d / "gainer.safetensors")
    mask = np.zeros((H, W), np.uint8)
    mask[4:16, 4:20] = 255
    Image.fromarray(mask).save(d / "mask.png")
    (d / "spec.yaml").write_text(
        "fps: 4\nframes: 3\nsize: [32, 24]\nedits:\n"
        "  - op: twist\n    params: {angle: [[0, 0], [0.5, 90]], radius: 0.4}\n    easing: ease-out\n")
    (d / "still.yaml").write_text(
        "region: mask:mask.png\nfeather: 2\nedits:\n  - op: rotate\n    params: {angle: 20}\n"
        "  - op: translate\n    params: {offset: [0.1, 0]}\n")
    return d


@pytest.mark.parametrize("model", ["gi", "gainer"])
def test_edit_with_op_and_region(run, files, tmp_path, model):
    out, saved = tmp_path / "out.png", tmp_path / "edited.safetensors"
    code, stdout, err = run("edit", files / f"{model}.safetensors", "--op", "rotate", "--angle", 15, "--centre",
                            "0.4,0.5", "--region", "box:0.1,0.1,0.7,0.9", "--feather", 3, "-o", out,
                            "--save-model", saved)
    assert code == 0, err
    assert "rotate" in stdout
    img = load_image(out)
    assert img.shape == (3, H, W)
    edited = load_any_model(saved)
    assert type(edited).__name__ == ("Gaussians" if model == "gi" else "GainerField")


def test_edit_ops_backgrounds_and_size(run, files, tmp_path):
    gi = files / "gi.safetensors"
    for argv in (["--op", "translate", "--offset", "0.1,-0.05"], ["--op", "scale", "--factor", "1.2,0.8"],
                 ["--op", "wave", "--amplitude", 0.02, "--mode", "longitudinal"],
                 ["--op", "cut", "--gap", 0.1, "--axis", 45], ["--op", "bend", "--angle", 30],
                 ["--op", "stretch", "--factor", 1.5, "--axis", 30]):
        code, _, err = run("edit", gi, *argv, "--background", "#ff0000", "--size", "64x48", "-o", tmp_path / "a.png")
        assert code == 0, (argv, err)
        assert load_image(tmp_path / "a.png").shape == (3, 48, 64)
    # a full-image rotation: the uncovered corner shows the background colour exactly
    code, _, err = run("edit", gi, "--op", "rotate", "--angle", 45, "--background", "#00ff00", "--no-cov-transform",
                       "-o", tmp_path / "b.png")
    assert code == 0, err
    assert load_image(tmp_path / "b.png")[:, 0, 0].tolist() == [0.0, 1.0, 0.0]
    bg = tmp_path / "bg.png"
    Image.fromarray(np.full((H, W, 3), 255, np.uint8)).save(bg)
    code, _, err = run("edit", gi, "--op", "translate", "--offset", "0.5,0", "--region", "all", "--object-only",
                       "--background", bg, "-o", tmp_path / "c.png")
    assert code == 0, err
    assert load_image(tmp_path / "c.png")[:, :, :2].min() == 1.0  # the left edge is uncovered after the move


def test_edit_with_spec(run, files, tmp_path):
    out = tmp_path / "s.png"
    code, _, err = run("edit", files / "gi.safetensors", "--spec", files / "still.yaml", "-o", out)
    assert code == 0, err
    assert load_image(out).shape == (3, H, W)
    code, _, err = run("edit", files / "gi.safetensors", "--spec", files / "spec.yaml", "--time", 0.25, "-o", out)
    assert code == 0, err


def test_animate_gif_and_frames(run, files, tmp_path):
    code, stdout, err = run("animate", files / "gi.safetensors", files / "spec.yaml", "-o", tmp_path / "a.gif",
                            "--quiet")
    assert code == 0, err
    assert "3 frames" in stdout
    assert iio.imread(tmp_path / "a.gif", index=None).shape[:3] == (3, H, W)
    code, _, err = run("animate", files / "gainer.safetensors", files / "spec.yaml", "-o", str(tmp_path / "fr") + "/",
                       "--quiet")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "fr")) == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]


def test_errors_are_one_line(run, files, tmp_path):
    gi = files / "gi.safetensors"
    out = tmp_path / "x.png"
    cases = [
        (["edit", gi, "-o", out], "give an edit"),
        (["edit", gi, "--op", "rotate", "-o", out], "--angle: required by rotate"),
        (["edit", gi, "--op", "translate", "--angle", 3, "-o", out], "--angle does not apply to --op translate"),
        (["edit", gi, "--op", "rotate", "--angle", 3, "--centre", "0.5", "-o", out], "--centre: expected two numbers"),
        (["edit", gi, "--op", "twist", "--angle", 3, "--radius", -1, "-o", out], "twist radius"),
        (["edit", gi, "--op", "rotate", "--angle", 3, "--region", "circle:1", "-o", out], "unknown region kind"),
        (["edit", gi, "--op", "rotate", "--angle", 3, "--feather", 2, "-o", out], "--feather needs a region"),
        (["edit", gi, "--op", "rotate", "--angle", 3, "--background", "#12", "-o", out], "invalid colour|no such"),
        (["edit", gi, "--op", "rotate", "--angle", 3, "-o", gi], "refusing to overwrite input"),
        (["edit", gi, "--op", "rotate", "--angle", 3, "-o", out, "--save-model", gi], "refusing to overwrite input"),
        (["edit", gi, "--op", "scale", "--factor", 0, "-o", out], "degenerate"),
        (["edit", gi, "--spec", files / "spec.yaml", "--op", "rotate", "-o", out], "cannot be combined with --spec"),
        (["edit", tmp_path / "missing.safetensors", "--op", "rotate", "--angle", 1, "-o", out], "no such file"),
        (["animate", gi, files / "still.yaml", "-o", tmp_path / "a.gif"], "spec.duration"),
        (["animate", gi, files / "spec.yaml", "-o", tmp_path / "a.avi"], "unsupported animation output"),
        (["animate", gi, files / "spec.yaml", "-o", files / "spec.yaml"], "refusing to overwrite input"),
    ]
    for argv, match in cases:
        code, _, err = run(*argv)
        assert code == 2, (argv, err)
        line = one_error_line(err)
        assert any(m in line for m in match.split("|")), (argv, line)
    assert not out.exists()


def test_bad_spec_file_names_the_field(run, files, tmp_path):
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"fps": 4, "frames": 2, "edits": [{"op": "rotate", "params": {"angle": 1}},
                                                                  {"op": "rotate", "params": {"angle": "x"}}]}))
    code, _, err = run("animate", files / "gi.safetensors", spec, "-o", tmp_path / "a.gif")
    assert code == 2
    assert "spec.edits[1].params.angle: expected a number or a keyframe list" in one_error_line(err)
