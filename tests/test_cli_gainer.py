"""The command line with GaINeR models: fit --model gainer, render and info of GaINeR files, bad input."""

from __future__ import annotations

import importlib
import json
import struct

import numpy as np
import pytest
import torch
from helpers import nan_after, one_error_line, ramp_rgb, rewrite_safetensors_meta, run_cli, write_png
from PIL import Image

from splatpix.cli import EXIT_DIVERGED, EXIT_ERROR, main
from splatpix.cli import model as cli
from splatpix.gainer import load_gainer
from splatpix.io import load_image
from splatpix.metrics import psnr
from splatpix.model.files import load_model

train_mod = importlib.import_module("splatpix.gainer.train")

H, W, N = 16, 24, 64
TINY = ["--preset", "small", "-n", str(N), "--batch", "0", "--quiet"]


def _write_image(path, alpha: bool = False):
    chans = ramp_rgb(H, W, fx=3.0, fy=4.0)
    if alpha:
        y, x = np.mgrid[0:H, 0:W]
        chans = np.concatenate((chans, np.where((x - W / 2) ** 2 + (y - H / 2) ** 2 < 36, 1.0, 0.0)[None]))
    return write_png(path, chans)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("gainer_cli")
    image = _write_image(d / "img.png")
    model, report, ply = d / "m.safetensors", d / "r.json", d / "m.ply"
    code = main([str(a) for a in ("fit", image, "--model", "gainer", *TINY, "--steps", 50, "-o", model,
                                  "--report", report, "--ply", ply)])
    assert code == 0
    return {"dir": d, "image": image, "model": model, "report": report, "ply": ply}


def test_fit_writes_model_report_and_ply(fitted):
    m = load_gainer(fitted["model"])
    assert m.n == N and m.size == (H, W) and m.baked and m.channels == 3
    rep = json.loads(fitted["report"].read_text())
    for key in ("psnr", "psnr_float", "seconds", "steps", "n_gaussians", "model_bytes", "config"):
        assert key in rep, key
    assert rep["steps"] == 50 and rep["n_gaussians"] == N and rep["model"] == "gainer"
    assert rep["model_bytes"] == fitted["model"].stat().st_size
    assert rep["config"]["model"]["k"] == 8 and rep["config"]["batch"] == 0  # the small preset's K, our batch
    assert m.meta["extra"]["fit"]["steps"] == 50
    lines = fitted["ply"].read_text().splitlines()
    assert lines[0] == "ply" and f"element vertex {N}" in lines
    assert len(lines) == lines.index("end_header") + 1 + N
    rows = np.array([[float(v) for v in line.split()] for line in lines[lines.index("end_header") + 1:]])
    means = m.means.detach().numpy().astype(np.float64)
    assert np.allclose(rows[:, 0], means[:, 0] * W, atol=1e-4) and np.allclose(rows[:, 1], H - means[:, 1] * H,
                                                                                 atol=1e-4)  # pixels, y up
    assert (rows[:, 3:6] >= 0).all() and (rows[:, 3:6] <= 255).all() and (rows[:, 6] >= rows[:, 7]).all()


def test_render_native_scaled_and_crop(fitted, capsys):
    d, model = fitted["dir"], fitted["model"]
    code, out, err = run_cli(capsys, "render", model, "-o", d / "x1.png")
    assert code == 0, err
    native = load_image(d / "x1.png")
    assert native.shape == (3, H, W)
    assert psnr(native, load_image(fitted["image"])) > 18.0
    code, _, err = run_cli(capsys, "render", model, "-o", d / "x2.png", "--scale", 2)
    assert code == 0, err
    assert load_image(d / "x2.png").shape == (3, 2 * H, 2 * W)
    code, _, err = run_cli(capsys, "render", model, "-o", d / "s.png", "--size", "30x10", "--bits", 16)
    assert code == 0, err
    assert load_image(d / "s.png").shape == (3, 10, 30)
    code, _, err = run_cli(capsys, "render", model, "-o", d / "c.png", "--crop", "0.25,0.25,0.75,0.75")
    assert code == 0, err
    crop = load_image(d / "c.png")
    assert crop.shape == (3, H // 2, W // 2)
    # a 1x crop samples the same pixel centres as the native render
    assert torch.allclose(crop, native[:, H // 4: 3 * H // 4, W // 4: 3 * W // 4], atol=1.5 / 255)


def test_info_prints_gainer_metadata(fitted, capsys):
    code, out, err = run_cli(capsys, "info", fitted["model"])
    assert code == 0, err
    meta = json.loads(out)
    assert meta["format"] == "splatpix-gainer" and meta["n_gaussians"] == N
    assert (meta["height"], meta["width"]) == (H, W) and meta["config"]["k"] == 8


def test_rgba_image_gives_rgba_png(tmp_path, capsys):
    image = _write_image(tmp_path / "rgba.png", alpha=True)
    model = tmp_path / "m.safetensors"
    code, out, err = run_cli(capsys, "fit", image, "--model", "gainer", *TINY, "--steps", 20, "--k", 4,
                             "--aggregation", "mean", "--trainable-means", "-o", model, "--report", tmp_path / "r.json")
    assert code == 0, err
    assert "colour PSNR" in out and "where visible, alpha PSNR" in out
    report = json.loads((tmp_path / "r.json").read_text())
    from splatpix.gainer import load_gainer as _load
    from splatpix.io import load_image
    from splatpix.metrics import psnr_rgba

    colour, alpha = psnr_rgba(_load(model).render(H, W).clamp(0, 1), load_image(image))
    assert report["psnr"] == pytest.approx(colour, abs=0.01) and report["psnr_alpha"] == pytest.approx(alpha, abs=0.01)
    m = load_gainer(model)
    assert m.channels == 4 and m.cfg.k == 4 and m.cfg.aggregation == "mean" and m.cfg.trainable_means
    code, _, err = run_cli(capsys, "render", model, "-o", tmp_path / "out.png", "--scale", 0.5)
    assert code == 0, err
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "RGBA" and im.size == (W // 2, H // 2)


def _corrupt(kind: str, src, dst):
    data = bytearray(src.read_bytes())
    if kind == "truncated":
        data = data[: len(data) - 100]
    elif kind == "nan":
        data[-4:] = struct.pack("<f", float("nan"))
    elif kind == "metadata":  # valid safetensors container, metadata saying n_gaussians differs from the config
        data = rewrite_safetensors_meta(bytes(data), lambda h, m: m.__setitem__("n_gaussians", m["n_gaussians"] + 1))
    elif kind == "header":
        data[8:20] = b"#" * 12
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("kind", ["truncated", "nan", "metadata", "header"])
@pytest.mark.parametrize("command", ["render", "info"])
def test_corrupted_gainer_model(fitted, tmp_path, capsys, kind, command):
    bad = _corrupt(kind, fitted["model"], tmp_path / "bad.safetensors")
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["render", bad, "-o", tmp_path / "out.png"] if command == "render" else ["info", bad]
    if command == "info" and kind == "nan":  # info reads only the header: the NaN is found by render
        code, out, err = run_cli(capsys, *args)
        assert code == 0
        return
    code, out, err = run_cli(capsys, *args)
    assert code == EXIT_ERROR
    assert "bad.safetensors" in one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("args,needle", [
    (["fit", "{tmp}/missing.png", "--model", "gainer", "-o", "{tmp}/m.safetensors"], "missing.png"),
    (["fit", "{image}", "--model", "gainer", "--k", "0", "-o", "{tmp}/m.safetensors"], "k must be"),
    (["fit", "{image}", "--model", "gainer", "-n", "0", "-o", "{tmp}/m.safetensors"], "n_gaussians"),
    (["fit", "{image}", "--model", "gainer", "--batch", "-1", "-o", "{tmp}/m.safetensors"], "batch"),
    (["fit", "{image}", "--model", "gainer", "--steps", "-1", "-o", "{tmp}/m.safetensors"], "steps"),
    (["fit", "{image}", "--model", "gainer", "--lr", "0.5", "-o", "{tmp}/m.safetensors"], "--lr"),
    (["fit", "{image}", "--model", "gainer", "-o", "{image}"], "overwrite"),
    (["fit", "{image}", "--model", "gainer", "-o", "{tmp}/m.safetensors", "--ply", "{image}"], "overwrite"),
    (["fit", "{image}", "--model", "gainer", "--max-pixels", "100", "-o", "{tmp}/m.safetensors"], "pixel"),
    (["fit", "{image}", "--k", "4", "-o", "{tmp}/m.safetensors"], "--k"),
    (["fit", "{image}", "--ply", "{image}", "-o", "{tmp}/m.safetensors"], "overwrite"),
    (["render", "{model}", "-o", "{model}"], "overwrite"),
    (["render", "{model}", "-o", "{tmp}/out.png", "--scale", "1000"], "pixel limit"),
])
def test_bad_input_one_line_no_output(fitted, tmp_path, capsys, args, needle):
    image = _write_image(tmp_path / "img.png")
    model = tmp_path / "model.safetensors"
    model.write_bytes(fitted["model"].read_bytes())
    subs = {"tmp": tmp_path, "image": image, "model": model}
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, out, err = run_cli(capsys, *(a.format(**subs) for a in args), "--quiet" if args[0] == "fit" else "--bits=8")
    assert code == EXIT_ERROR
    assert needle in one_error_line(err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written or changed


def test_divergence_saves_last_good_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_mod, "_loss", nan_after(train_mod._loss, 10))  # every loss after the 10th
    image = _write_image(tmp_path / "img.png")
    model, report = tmp_path / "m.safetensors", tmp_path / "r.json"
    code, out, err = run_cli(capsys, "fit", image, "--model", "gainer", *TINY, "--steps", 30, "-o", model,
                             "--report", report)
    assert code == EXIT_DIVERGED
    assert len(err.strip().splitlines()) == 1 and "diverged" in err and "m.safetensors" in err
    m = load_gainer(model)  # the last good model was saved and loads
    assert torch.isfinite(m.render()).all()
    rep = json.loads(report.read_text())
    assert rep["diverged"] is True and rep["steps"] < 30


def test_gaussianimage_default_is_unchanged(tmp_path, capsys, monkeypatch):
    image = _write_image(tmp_path / "img.png")
    model = tmp_path / "m.safetensors"
    code, out, err = run_cli(capsys, "fit", image, "-n", 40, "--steps", 20, "-o", model, "--quiet")
    assert code == 0, err
    g = load_model(model)  # a Gaussian model, not a GaINeR one
    assert g.n == 40 and g.size == (H, W)
    code, _, err = run_cli(capsys, "render", model, "-o", tmp_path / "x2.png", "--scale", 2)
    assert code == 0 and load_image(tmp_path / "x2.png").shape == (3, 2 * H, 2 * W)
    # without -n / --steps the Gaussian fit's default preset applies (balanced: one Gaussian per 32 px, 2000 steps)
    seen = {}

    def fake_run_fit(image_path, model_path, args, report_path):
        cfg = cli.fit_config(args, (H, W))  # what the real run_fit trains with
        seen.update(gaussians=cfg.n_gaussians, steps=cfg.steps)
        return {"ms_ssim": None, "n_gaussians": cfg.n_gaussians, "steps": cfg.steps, "seconds": 0.0, "psnr": 0.0}

    monkeypatch.setattr(cli, "run_fit", fake_run_fit)
    code, _, err = run_cli(capsys, "fit", image, "-o", tmp_path / "d.safetensors")
    assert code == 0, err
    assert seen == {"gaussians": 100, "steps": 2000}  # 16 x 24 pixels / 32, at the floor of 100


def test_fit_checkpoint_and_resume(tmp_path, capsys, monkeypatch):
    image = _write_image(tmp_path / "img.png")
    ck, m1, m2 = tmp_path / "run.ckpt", tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    base = ["fit", image, "--model", "gainer", *TINY]
    calls = {"n": 0}
    loss = train_mod._loss

    def interrupted_loss(*a, **kw):  # Ctrl-C during step 7: the checkpoint of step 5 is what survives
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return loss(*a, **kw)

    monkeypatch.setattr(train_mod, "_loss", interrupted_loss)
    code, _, err = run_cli(capsys, *base, "--steps", 20, "--checkpoint", ck, "--checkpoint-every", 5, "-o", m1)
    assert code == 130 and "interrupted" in err and ck.exists() and not m1.exists()
    monkeypatch.setattr(train_mod, "_loss", loss)
    code, out, _ = run_cli(capsys, "fit", image, "--model", "gainer", "--quiet", "--resume", ck, "-o", m2)
    assert code == 0 and "20 steps" in out
    code, out, _ = run_cli(capsys, *base, "--steps", 20, "-o", m1)
    assert torch.equal(load_gainer(m2).render(), load_gainer(m1).render())
    code, out, _ = run_cli(capsys, "fit", image, "--model", "gainer", "--quiet", "--resume", ck, "--steps", 30,
                           "-o", m2)
    assert code == 0 and "30 steps" in out
    # options of the config cannot change on resume; a checkpoint needs --checkpoint; gaussianimage refuses them
    code, _, err = run_cli(capsys, "fit", image, "--model", "gainer", "--quiet", "--resume", ck, "--k", 4, "-o", m2)
    assert code == EXIT_ERROR and "--k cannot be changed" in one_error_line(err)
    code, _, err = run_cli(capsys, *base, "--checkpoint-every", 5, "-o", m2)
    assert code == EXIT_ERROR and "--checkpoint" in one_error_line(err)
    code, _, err = run_cli(capsys, "fit", image, "--resume", ck, "-o", m2)
    assert code == EXIT_ERROR and "--model gainer --resume" in one_error_line(err)
    code, _, err = run_cli(capsys, "fit", image, "--model", "gainer", "--quiet", "--resume", m1, "-o", m2)
    assert code == EXIT_ERROR and "not a splatpix GaINeR checkpoint" in one_error_line(err)


def test_fit_rgba_separate_mask_model(tmp_path, capsys):
    image = _write_image(tmp_path / "rgba.png", alpha=True)
    model = tmp_path / "m.safetensors"
    code, _, _ = run_cli(capsys, "fit", image, "--model", "gainer", *TINY, "--steps", 20, "--alpha-model", "separate",
                         "-o", model)
    assert code == 0
    f = load_gainer(model)
    assert f.cfg.alpha_model == "separate" and f.render().shape == (4, H, W)
    code, _, _ = run_cli(capsys, "render", model, "-o", tmp_path / "out.png")
    assert code == 0 and load_image(tmp_path / "out.png").shape == (4, H, W)
