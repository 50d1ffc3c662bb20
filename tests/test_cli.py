"""The command line: the happy path and bad input (one line on stderr, non-zero exit, no partial output)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import nan_after, one_error_line, ramp_rgb, run_cli, write_png
from PIL import Image

from splatpix.cli import EXIT_DIVERGED
from splatpix.io import load_image
from splatpix.model.files import load_model

fit_mod = importlib.import_module("splatpix.train.loop")


@pytest.fixture
def image(tmp_path):
    return write_png(tmp_path / "img.png", ramp_rgb(40, 48, fx=5.0, fy=7.0))


def test_fit_render_info(tmp_path, image, capsys):
    model = tmp_path / "m.safetensors"
    report = tmp_path / "r.json"
    code, out, err = run_cli(capsys, "fit", image, "-n", 300, "--steps", 150, "--lr", 0.01, "--optimizer", "adam",
                             "-o", model, "--report", report, "--quiet")
    assert code == 0, err
    rep = json.loads(report.read_text())
    for key in ("psnr", "ms_ssim", "seconds", "steps", "n_gaussians"):
        assert key in rep
    assert rep["steps"] == 150 and rep["n_gaussians"] == 300 and rep["psnr"] > 22
    g = load_model(model)
    assert g.n == 300 and g.size == (40, 48)

    png = tmp_path / "out.png"
    code, out, err = run_cli(capsys, "render", model, "-o", png)
    assert code == 0, err
    native = load_image(png)
    assert native.shape == (3, 40, 48)
    code, _, err = run_cli(capsys, "render", model, "-o", tmp_path / "x2.png", "--scale", 2)
    assert code == 0 and load_image(tmp_path / "x2.png").shape == (3, 80, 96)
    code, _, err = run_cli(capsys, "render", model, "-o", tmp_path / "s.png", "--size", "30x20")
    assert code == 0 and load_image(tmp_path / "s.png").shape == (3, 20, 30)
    code, _, err = run_cli(capsys, "render", model, "-o", tmp_path / "c.png", "--crop", "0.25,0.25,0.75,0.75")
    crop = load_image(tmp_path / "c.png")
    assert code == 0 and crop.shape == (3, 20, 24)
    assert torch.allclose(crop, native[:, 10:30, 12:36], atol=1.5 / 255)
    code, out, err = run_cli(capsys, "info", model)
    assert code == 0 and json.loads(out)["n_gaussians"] == 300


@pytest.mark.parametrize("args,needle", [
    (["fit", "{missing}", "-n", "10", "-o", "{tmp}/m.safetensors"], "missing.png"),
    (["fit", "{text}", "-n", "10", "-o", "{tmp}/m.safetensors"], "notes.png"),
    (["fit", "{image}", "-n", "0", "-o", "{tmp}/m.safetensors"], "n_gaussians"),
    (["fit", "{image}", "-n", "-5", "-o", "{tmp}/m.safetensors"], "n_gaussians"),
    (["fit", "{image}", "-n", "10", "--max-pixels", "100", "-o", "{tmp}/m.safetensors"], "pixel"),
    (["fit", "{image}", "-n", "10", "-o", "{image}"], "overwrite"),
    (["render", "{garbage}", "-o", "{tmp}/out.png"], "garbage.safetensors"),
    (["render", "{missing_model}", "-o", "{tmp}/out.png"], "nope.safetensors"),
    (["info", "{garbage}"], "garbage.safetensors"),
])
def test_bad_input_one_line_no_output(tmp_path, image, capsys, args, needle):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": broken json" + bytes(range(200)))
    subs = {"missing": tmp_path / "missing.png", "tmp": tmp_path, "text": text, "image": image,
            "garbage": garbage, "missing_model": tmp_path / "nope.safetensors"}
    before = sorted(p.name for p in tmp_path.iterdir())
    image_bytes = image.read_bytes()
    code, out, err = run_cli(capsys, *(a.format(**subs) for a in args))
    assert code != 0
    assert needle in one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no temp files left
    assert image.read_bytes() == image_bytes


def test_nan_during_training_keeps_last_good_model(tmp_path, image, capsys, monkeypatch):
    monkeypatch.setattr(fit_mod, "render", nan_after(fit_mod.render, 20))  # every render after the 20th
    model = tmp_path / "m.safetensors"
    code, out, err = run_cli(capsys, "fit", image, "-n", 100, "--steps", 100, "-o", model, "--quiet",
                             "--report", tmp_path / "r.json")
    assert code == EXIT_DIVERGED
    assert len(err.strip().splitlines()) == 1 and "diverged" in err
    g = load_model(model)  # the last good model was saved
    assert torch.isfinite(g.means).all() and torch.isfinite(g.colours).all()
    assert json.loads((tmp_path / "r.json").read_text())["diverged"] is True


@pytest.mark.parametrize("signal", ["interrupt", "terminate"])
def test_ctrl_c_during_fit_saves_the_last_good_model(tmp_path, image, capsys, monkeypatch, signal):
    """Ctrl-C (KeyboardInterrupt) or SIGTERM in the 31st render: the model of the last step with a finite loss (29
    optimiser steps) is saved and the report says so; one line on stderr and the signal's exit status (130 / 143)."""
    from splatpix.cli import _Terminated

    real, calls = fit_mod.render, [0]

    def render(*a, **k):
        calls[0] += 1
        if calls[0] == 31:
            raise KeyboardInterrupt() if signal == "interrupt" else _Terminated()
        return real(*a, **k)

    monkeypatch.setattr(fit_mod, "render", render)
    model = tmp_path / "m.safetensors"
    code, out, err = run_cli(capsys, "fit", image, "-n", 100, "--steps", 100, "-o", model, "--quiet",
                             "--report", tmp_path / "r.json")
    assert code == (130 if signal == "interrupt" else 143)
    assert len(err.strip().splitlines()) == 1 and "stopped at step 29; saved that model" in err, err
    g = load_model(model)
    assert g.meta["extra"]["fit"]["steps"] == 29 and torch.isfinite(g.means).all()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["interrupted"] is True and report["steps"] == 29


@pytest.mark.parametrize("method", ["gaussianimage", "sga"])
def test_nan_during_qat_writes_the_last_good_state(tmp_path, image, capsys, monkeypatch, method):
    """A QAT divergence in `encode` writes the file of the last good QAT state (complete and decodable), the report
    with diverged = true, one error line, and exits with status 3."""
    qat_mod = importlib.import_module("splatpix.codec.qat")
    real_render = qat_mod.render
    monkeypatch.setattr(qat_mod, "render", nan_after(real_render, 5, grad_only=True))
    out_path = tmp_path / "x.spix"
    code, _, err = run_cli(capsys, "encode", image, "-o", out_path, "-n", 40, "--method", method, "--steps", 20,
                           "--qat-steps", 30, "--quiet", "--report", tmp_path / "r.json")
    assert code == EXIT_DIVERGED
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "diverged" in lines[0] and str(out_path) in lines[0] and "Traceback" not in err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["diverged"] is True and rep["qat_steps"] == 4 and rep["bytes"] == out_path.stat().st_size
    monkeypatch.setattr(qat_mod, "render", real_render)
    code, _, _ = run_cli(capsys, "decode", out_path, "-o", tmp_path / "y.png")
    assert code == 0 and (tmp_path / "y.png").exists()


def test_nan_during_encode_fit_quantises_the_last_good_fit(tmp_path, image, capsys, monkeypatch):
    """A divergence in `encode`'s fit: the last good fit is quantised and written, exit status 3, one line."""
    monkeypatch.setattr(fit_mod, "render", nan_after(fit_mod.render, 8, grad_only=True))
    out_path = tmp_path / "x.spix"
    code, _, err = run_cli(capsys, "encode", image, "-o", out_path, "-n", 40, "--steps", 30, "--qat-steps", 5,
                           "--quiet", "--report", tmp_path / "r.json")
    assert code == EXIT_DIVERGED
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "during the fit" in lines[0] and str(out_path) in lines[0]
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["diverged"] is True and rep["fit_steps"] < 30 and rep["qat_steps"] == 5
    assert rep["bytes"] == out_path.stat().st_size


def test_console_script_usage_error_is_one_line():
    res = subprocess.run([sys.executable, "-m", "splatpix.cli", "render"], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr


@pytest.mark.parametrize("mode", ["RGBA", "I;16"])
def test_rgba_and_16bit_grey_round_trip(tmp_path, capsys, mode):
    y, x = np.mgrid[0:36, 0:44]
    if mode == "RGBA":
        arr = np.stack((x * 5, y * 6, 255 - x * 5, np.where(x < 22, 255, 90)), -1).astype(np.uint8)
        Image.fromarray(arr, "RGBA").save(tmp_path / "in.png")
        channels = 4
    else:
        arr = (x * 1400 + y * 90).astype(np.uint16)
        Image.fromarray(arr).save(tmp_path / "in.png")
        channels = 1
    src = load_image(tmp_path / "in.png")
    assert src.shape[0] == channels
    code, _, err = run_cli(capsys, "fit", tmp_path / "in.png", "-n", 300, "--steps", 150, "--lr", 0.01,
                           "--optimizer", "adam", "-o", tmp_path / "m.safetensors", "--quiet")
    assert code == 0, err
    code, _, err = run_cli(capsys, "render", tmp_path / "m.safetensors", "-o", tmp_path / "out.png", "--bits", 16)
    assert code == 0, err
    out = load_image(tmp_path / "out.png")
    assert out.shape == src.shape
    assert float(((out - src) ** 2).mean()) < 10 ** (-20 / 10)  # better than 20 dB after a short fit


def test_size_with_one_side_keeps_the_aspect_ratio_and_decode_crops(tmp_path, capsys):
    """``--size W`` / ``--size xH`` keep the aspect ratio of the region shown; ``decode --crop`` decodes a window, the
    same pixels as the numpy render of the decoded model with that window."""
    from pathlib import Path

    from splatpix.codec.decoding import decode_arrays
    from splatpix.render.arrays import render_array

    golden = Path(__file__).parent / "golden"
    spix, model = golden / "gaussianimage.spix", golden / "gaussianimage-rs.safetensors"  # 64x48 and 32x24
    out = tmp_path / "r.png"
    for args, size in ((["--size", "96"], (96, 72)), (["--size", "x12"], (16, 12)),
                       (["--size", "40", "--crop", "0,0,0.5,1"], (40, 60))):
        assert run_cli(capsys, "render", model, "-o", out, *args)[0] == 0
        assert Image.open(out).size == size, args
    assert run_cli(capsys, "decode", spix, "-o", out, "--crop", "0.25,0.25,0.75,0.5", "--size", "64")[0] == 0
    ref = render_array(decode_arrays(spix), 24, 64, window=(0.25, 0.25, 0.75, 0.5), clamp=True)  # 32x12 px shown
    got = np.asarray(Image.open(out)).transpose(2, 0, 1).astype(np.float64) / 255
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 0.5 / 255 + 1e-6
    for bad in (["decode", spix, "--size", "0x5"], ["decode", spix, "--size", "x"], ["decode", spix, "--size", "5x6x7"],
                ["edit", model, "--op", "translate", "--offset", "0.1,0", "--size", "40"]):  # an edit needs both sides
        with pytest.raises(SystemExit) as e:
            run_cli(capsys, *bad, "-o", out)
        assert e.value.code != 0
        one_error_line(capsys.readouterr().err)


def test_compare_pictures_of_fit_encode_and_decode(tmp_path, image, capsys):
    """``--compare``: original | result | error map side by side with captions (encode: JPEG and WebP at the same
    bytes too, their numbers in the report); decode needs ``--reference``; never over an input."""
    h, w = load_image(image).shape[1:]
    cmp_fit, cmp_enc, cmp_dec = (tmp_path / f"{k}.png" for k in ("fit", "enc", "dec"))
    assert run_cli(capsys, "fit", image, "-n", 60, "--steps", 30, "-o", tmp_path / "m.safetensors", "--quiet",
                   "--compare", cmp_fit)[0] == 0
    with Image.open(cmp_fit) as im:
        assert im.size[0] == 3 * w + 2 * 4 and im.size[1] > h
    spix, report = tmp_path / "x.spix", tmp_path / "r.json"
    assert run_cli(capsys, "encode", image, "-o", spix, "-n", 60, "--steps", 30, "--qat-steps", 10, "--quiet",
                   "--compare", cmp_enc, "--report", report)[0] == 0
    rep = json.loads(report.read_text())
    assert [c["codec"] for c in rep["compare"]] == ["jpeg", "webp"] and all(c["psnr"] > 0 for c in rep["compare"])
    with Image.open(cmp_enc) as im:
        assert im.size[0] == 5 * w + 4 * 4
    assert run_cli(capsys, "decode", spix, "-o", tmp_path / "d.png", "--compare", cmp_dec, "--reference", image)[0] == 0
    with Image.open(cmp_dec) as im:
        assert im.size[0] == 3 * w + 2 * 4
    code, _, err = run_cli(capsys, "decode", spix, "-o", tmp_path / "d2.png", "--compare", tmp_path / "c.png")
    assert code == 2 and "--reference" in one_error_line(err)
    code, _, err = run_cli(capsys, "fit", image, "-n", 60, "--steps", 5, "-o", tmp_path / "m2.safetensors", "--quiet",
                           "--compare", image)
    assert code == 2 and one_error_line(err)


def test_fit_ply_export_of_a_gaussian_model(tmp_path, image, capsys):
    """``fit --ply`` (both model kinds): coloured points in pixels with y up, and each Gaussian's 1-sigma semi-axes
    and rotation (checked against the model's covariance)."""
    model, ply = tmp_path / "m.safetensors", tmp_path / "m.ply"
    assert run_cli(capsys, "fit", image, "-n", 30, "--steps", 10, "-o", model, "--ply", ply, "--quiet")[0] == 0
    g = load_model(model)
    lines = ply.read_text().splitlines()
    assert "property uchar red" in lines and "property float rotation" in lines
    rows = np.array([[float(v) for v in line.split()] for line in lines[lines.index("end_header") + 1:]])
    h, w = g.size
    assert rows.shape == (30, 9)
    assert np.allclose(rows[:, 0], g.means[:, 0].numpy() * w, atol=1e-3)
    assert np.allclose(rows[:, 1], h - g.means[:, 1].numpy() * h, atol=1e-3)
    cov = g.covariance_native().numpy().astype(np.float64)
    for (s0, s1, t), c in zip(rows[:, 6:9], cov, strict=True):
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        up = rot @ np.diag([s0 * s0, s1 * s1]) @ rot.T  # y up
        assert np.allclose([up[0, 0], -up[0, 1], up[1, 1]], c, rtol=1e-3, atol=1e-3)
    assert np.array_equal(rows[:, 3:6], np.round(np.clip(g.colours.numpy()[:, :3], 0, 1) * 255))


def test_fit_presets(tmp_path, image, capsys):
    """``fit`` without -n / --steps runs the default preset (balanced) with N from the image size; ``--preset``
    picks another; a GaINeR preset for the Gaussian fit (or the reverse) is a one-line error."""
    model, report = tmp_path / "m.safetensors", tmp_path / "r.json"
    assert run_cli(capsys, "fit", image, "--preset", "fast", "--steps", 20, "-o", model, "--quiet", "--report",
                   report)[0] == 0
    rep = json.loads(report.read_text())
    assert rep["preset"] == "fast" and rep["n_gaussians"] == 100 and rep["config"]["init"] == "structure"
    assert load_model(model).meta["extra"]["fit"]["preset"] == "fast"
    for args, needle in ((["--preset", "cpu"], "--model gainer"), (["--preset", "nope"], "balanced"),
                         (["--model", "gainer", "--preset", "quality"], "Gaussian fit")):
        code, _, err = run_cli(capsys, "fit", image, "-o", tmp_path / "x.safetensors", "--quiet", *args)
        assert code == 2 and needle in one_error_line(err), err


def test_fit_resume_continues_a_saved_model(tmp_path, image, capsys):
    """``fit --resume MODEL``: a model saved by a fit (e.g. stopped by Ctrl-C) trains on from its parameters (N and
    parameterisation taken from it), and gets better than it was; a wrong N or image is a one-line error."""
    a, b, r = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "r.json"
    assert run_cli(capsys, "fit", image, "-n", 60, "--steps", 30, "-o", a, "--quiet", "--param", "rs")[0] == 0
    first = load_model(a)
    assert run_cli(capsys, "fit", image, "--resume", a, "--steps", 60, "-o", b, "--quiet", "--report", r)[0] == 0
    second, rep = load_model(b), json.loads(r.read_text())
    assert second.n == 60 and second.param == "rs" and rep["psnr"] > first.meta["extra"]["fit"]["psnr"]
    code, _, err = run_cli(capsys, "fit", image, "--resume", a, "-n", 61, "-o", tmp_path / "c.safetensors", "--quiet")
    assert code == 2 and "differs" in one_error_line(err)
    other = write_png(tmp_path / "other.png", ramp_rgb(20, 30, fx=2.0, fy=3.0))
    code, _, err = run_cli(capsys, "fit", other, "--resume", a, "-o", tmp_path / "d.safetensors", "--quiet")
    assert code == 2 and "cannot continue" in one_error_line(err)
    code, _, err = run_cli(capsys, "fit", image, "--resume", a, "-o", a, "--quiet")
    assert code == 2 and one_error_line(err) and load_model(a).n == 60  # never over the model it continues


def test_fit_psnr_target_chooses_n(tmp_path, image, capsys):
    """``fit --psnr P``: the preset's N first, then larger ones by the measured MSE-against-N slope, until P is
    reached or 3 fits; each trial printed and reported; -n with it is refused."""
    model, report = tmp_path / "m.safetensors", tmp_path / "r.json"
    code, out, err = run_cli(capsys, "fit", image, "--preset", "fast", "--steps", 30, "--psnr", 60, "-o", model,
                             "--quiet", "--report", report)
    assert code == 0, err
    rep = json.loads(report.read_text())
    ns = [t["n_gaussians"] for t in rep["trials"]]
    assert len(ns) == 3 and ns == sorted(ns) and ns[0] == 100 and out.count("trial N = ") == 3
    assert load_model(model).n == ns[-1] and rep["target_psnr"] == 60  # not reached: the last (largest) is kept
    low = tmp_path / "low.json"
    assert run_cli(capsys, "fit", image, "--preset", "fast", "--steps", 30, "--psnr", 5, "-o", model, "--quiet",
                   "--report", low)[0] == 0
    assert len(json.loads(low.read_text())["trials"]) == 1  # reached at once
    code, _, err = run_cli(capsys, "fit", image, "-n", 50, "--psnr", 30, "-o", model, "--quiet")
    assert code == 2 and "without -n" in one_error_line(err)
