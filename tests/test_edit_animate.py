"""Specs (validation messages name the bad field), keyframes and easing, and short animations written and read
back: GIF, a folder of PNG frames, MP4 (when imageio-ffmpeg is available)."""

from __future__ import annotations

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from splatpix.edit import Rotate, animate, load_spec, parse_spec
from splatpix.edit.spec import EASINGS, Keyframes
from splatpix.edit.writers import open_writer
from splatpix.errors import SplatpixError
from splatpix.model.gaussians import Gaussians, params_from_covariance

H, W = 24, 32


@pytest.fixture(scope="module")
def model() -> Gaussians:
    g = torch.Generator().manual_seed(0)
    n = 120
    cov = torch.stack((torch.full((n,), 6.0), torch.zeros(n), torch.full((n,), 6.0)), 1)
    return Gaussians(torch.rand((n, 2), generator=g), params_from_covariance(cov, "cholesky"),
                     0.4 * torch.rand((n, 3), generator=g), "cholesky", (H, W))


SPEC = {
    "fps": 4, "frames": 4, "size": [W, H], "background": "#202020",
    "edits": [{"op": "rotate", "params": {"angle": [[0, 0], [1, 90]], "centre": [0.5, 0.5]}, "easing": "ease-in-out"},
              {"op": "translate", "params": {"offset": [[0, [0, 0]], [1, [0.1, 0.0]]]}}],
}


def test_keyframes_and_easing():
    k = Keyframes([(0.0, 0.0), (2.0, 10.0), (3.0, 0.0)])
    lin = EASINGS["linear"]
    assert [k.at(t, lin) for t in (-1, 0, 1, 2, 2.5, 3, 9)] == [0, 0, 5, 10, 5, 0, 0]
    assert k.at(1.0, EASINGS["ease-in"]) == pytest.approx(2.5)
    assert k.at(1.0, EASINGS["ease-out"]) == pytest.approx(7.5)
    assert k.at(0.5, EASINGS["ease-in-out"]) == pytest.approx(10 * (3 * 0.0625 - 2 * 0.015625))
    v = Keyframes([(0.0, (0.0, 1.0)), (1.0, (1.0, 3.0))])
    assert v.at(0.5, lin) == (0.5, 2.0)


def test_spec_evaluates_edits_at_t():
    spec = parse_spec(SPEC)
    assert spec.frames == 4 and spec.fps == 4 and spec.size == (H, W)
    steps = spec.steps_at(0.5, (H, W))
    assert isinstance(steps[0].deformation, Rotate) and steps[0].deformation.angle == pytest.approx(45.0)
    assert steps[1].deformation.offset == pytest.approx((0.05 * W, 0.0))


@pytest.mark.parametrize("patch, match", [
    ({"edits": [{"op": "rotate", "params": {"angle": "fast"}}]},
     r"spec\.edits\[0\]\.params\.angle: expected a number or a keyframe list"),
    ({"edits": [{"op": "rotate", "params": {}}, {"op": "rotate", "params": {"angle": [[0, 1], [1, "x"]]}}]},
     r"spec\.edits\[0\]\.params\.angle: required"),
    ({"edits": [{"op": "rotate", "params": {"angle": 1}}, {"op": "rotate", "params": {"angle": [[0, 1], [1, "x"]]}}]},
     r"spec\.edits\[1\]\.params\.angle\[1\]\[1\]: expected a number"),
    ({"edits": [{"op": "rotate", "params": {"angle": [[1, 0], [1, 5]]}}]}, r"angle\[1\]\[0\]: keyframe times"),
    ({"edits": [{"op": "spin", "params": {}}]}, r"spec\.edits\[0\]\.op: expected one of"),
    ({"edits": [{"op": "rotate", "params": {"angle": 1, "speed": 2}}]}, r"spec\.edits\[0\]\.params\.speed: unknown"),
    ({"edits": [{"op": "rotate", "params": {"angle": 1}, "easing": "bouncy"}]}, r"spec\.edits\[0\]\.easing"),
    ({"edits": [{"op": "rotate", "params": {"angle": 1}, "region": "box:1,2"}]}, r"spec\.edits\[0\]\.region"),
    ({"edits": [{"op": "rotate", "params": {"angle": 1}, "feather": 3}]}, r"spec\.edits\[0\]\.feather: needs a region"),
    ({"edits": [{"op": "rotate", "params": {"angle": 1}, "colour": 3}]}, r"spec\.edits\[0\]\.colour: unknown key"),
    ({"edits": [{"op": "rotate", "params": {"angle": 1, "centre": [0.5]}}]}, r"params\.centre: expected two numbers"),
    ({"edits": [{"op": "twist", "params": {"angle": 1, "radius": [[0, 1], [1, -1]]}}]}, r"spec\.edits\[0\]"),
    ({"edits": [{"op": "wave", "params": {"amplitude": 1, "mode": "sideways"}}]}, r"params\.mode: expected one of"),
    ({"edits": []}, r"spec\.edits: expected a non-empty list"),
    ({"fps": 0}, r"spec\.fps: must be > 0"),
    ({"frames": 0}, r"spec\.frames: expected an integer >= 1"),
    ({"duration": 2}, r"spec\.frames: give duration or frames, not both"),
    ({"size": [0, 3]}, r"spec\.size"),
    ({"region": {"box": [0, 0, 1]}}, r"spec\.region: invalid box"),
    ({"object_only": "yes"}, r"spec\.object_only: expected true or false"),
    ({"loop": True}, r"spec\.loop: unknown key"),
])
def test_bad_specs_name_the_field(patch, match, model):
    with pytest.raises(SplatpixError, match=match):
        spec = parse_spec({**SPEC, **patch})
        spec.check(model.size)


def test_spec_needs_timing_for_an_animation():
    data = {k: v for k, v in SPEC.items() if k != "frames"}
    with pytest.raises(SplatpixError, match=r"spec\.duration"):
        parse_spec(data)
    assert parse_spec(data, timing=False).frames is None
    assert parse_spec({**data, "duration": 1.5}).frames == 6


def test_load_spec_yaml_json_and_errors(tmp_path):
    y = tmp_path / "a.yaml"
    y.write_text("fps: 4\nframes: 2\nedits:\n  - op: rotate\n    params: {angle: [[0, 0], [1, 30]]}\n")
    assert load_spec(y).frames == 2
    j = tmp_path / "a.json"
    j.write_text(json.dumps(SPEC))
    assert load_spec(j).frames == 4
    bad = tmp_path / "b.yaml"
    bad.write_text("fps: [1\n")
    with pytest.raises(SplatpixError, match="not a valid spec file"):
        load_spec(bad)
    with pytest.raises(SplatpixError, match="no such file"):
        load_spec(tmp_path / "missing.yaml")


def _frames_differ(frames: np.ndarray) -> None:
    for a, b in zip(frames, frames[1:], strict=False):
        assert np.abs(a.astype(int) - b.astype(int)).max() > 0


def test_gif_animation(model, tmp_path):
    out = tmp_path / "a.gif"
    report = animate(model, parse_spec(SPEC), out, progress=False)
    assert report["frames"] == 4
    frames = iio.imread(out, index=None)
    assert frames.shape[:3] == (4, H, W)
    _frames_differ(frames)
    assert sorted(os.listdir(tmp_path)) == ["a.gif"]  # no temporary file left


def test_png_dir_animation_replaces_stale_frames(model, tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    for i in range(6):  # an earlier, longer run
        (out / f"frame_{i:05d}.png").write_bytes(b"old")
    (out / "notes.txt").write_text("kept")
    animate(model, parse_spec({**SPEC, "size": [16, 12]}), str(out) + "/", progress=False)
    names = sorted(os.listdir(out))
    assert names == [f"frame_{i:05d}.png" for i in range(4)] + ["notes.txt"]
    img = iio.imread(out / "frame_00002.png")
    assert img.shape == (12, 16, 3)
    fresh = tmp_path / "new"
    animate(model, parse_spec(SPEC), str(fresh) + "/", progress=False)
    assert len(os.listdir(fresh)) == 4
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_mp4_animation(model, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "a.mp4"
    animate(model, parse_spec(SPEC), out, progress=False)
    gen = imageio_ffmpeg.read_frames(str(out))
    meta = next(gen)
    frames = list(gen)
    assert len(frames) == 4 and tuple(meta["size"]) == (W, H)
    assert sorted(os.listdir(tmp_path)) == ["a.mp4"]


def test_mp4_without_imageio_ffmpeg_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "imageio_ffmpeg":
            raise ImportError("no")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(SplatpixError, match=r"pip install splatpix\[video\]"):
        open_writer(tmp_path / "a.mp4", 4)


def test_writer_errors_leave_nothing(tmp_path):
    with pytest.raises(SplatpixError, match="unsupported animation output"):
        open_writer(tmp_path / "a.avi", 4)
    out = tmp_path / "b.gif"
    with pytest.raises(RuntimeError, match="boom"), open_writer(out, 4) as w:
        w.write(torch.zeros(3, 4, 4))
        raise RuntimeError("boom")
    assert not out.exists()
    w = open_writer(tmp_path / "c.gif", 4)
    w.write(torch.zeros(3, 4, 4))
    with pytest.raises(SplatpixError, match="shape"):
        w.write(torch.zeros(3, 5, 4))
    w.abort()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["frames/", "clip.gif", "clip.mp4"])
def test_animation_outputs_get_the_users_permissions(tmp_path, name: str) -> None:
    """Frame folders and videos are made from temporary files (mode 0700/0600): the finished output gets the mode
    any other tool gives a new file, 0o777/0o666 less the umask (here 022)."""
    import stat

    old = os.umask(0o022)
    try:
        target = f"{tmp_path}/{name}"
        with open_writer(target, 5) as w:
            for k in range(2):
                w.write(torch.full((3, 16, 16), 0.25 * (k + 1)))
        mode = stat.S_IMODE(os.stat(target).st_mode)
        assert mode == (0o755 if name.endswith("/") else 0o644), oct(mode)
    finally:
        os.umask(old)
