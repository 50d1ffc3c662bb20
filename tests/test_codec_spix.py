"""The GaussianImage codec end to end: encode -> .spix -> decode, rate accounting, malformed files, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from helpers import check_spix_corruptions, ramp_image, write_png
from PIL import Image

from splatpix.cli import main
from splatpix.codec.api import decode_bytes, encode, unpack
from splatpix.codec.qat import QATConfig
from splatpix.render import render
from splatpix.train.loop import FitConfig

FIT = FitConfig(steps=150, optimizer="adam", lr=1e-2, lr_decay_every=100, log_every=50)
QAT = QATConfig(steps=60, optimizer="adam", lr=1e-3, log_every=30)


@pytest.fixture(scope="module")
def encoded():
    img = ramp_image()
    return img, {fl: encode(img, 150, fit_config=FIT, qat_config=QAT, fixed_length=fl, progress=False)
                 for fl in (False, True)}


@pytest.mark.parametrize("fixed", [False, True])
def test_round_trip_is_exact(encoded, fixed):
    img, res = encoded
    r = res[fixed]
    g = decode_bytes(r.data)
    a = render(g, clamp=True)
    b = render(r.quantized.dequantize(), clamp=True)
    assert torch.equal(a, b)
    q, meta = unpack(r.data)
    for name in ("position_symbols", "cov_symbols", "colour_indices", "codebooks", "cov_scale", "cov_offset"):
        assert np.array_equal(getattr(q, name), getattr(r.quantized, name))
    assert meta["fixed_length"] is fixed
    assert r.report["bpp"] == len(r.data) * 8 / (48 * 64)
    assert r.report["psnr"] > 20


def test_adaptive_coding_never_loses_to_fixed_length(encoded):
    from splatpix.codec import bitstream as bs

    _, res = encoded
    sizes = {}
    for fixed, r in res.items():
        _, sections = bs.read_spix(r.data)
        sizes[fixed] = len(sections[bs.COVARIANCE]) + len(sections[bs.COLOUR_INDICES])
    assert sizes[False] <= sizes[True]


def test_malformed_files_raise_clean_errors(encoded):
    _, res = encoded
    check_spix_corruptions(res[False].data, cuts=(0, 1, 4, 24, 25))


def test_cli_encode_decode_info(tmp_path, capsys):
    write_png(tmp_path / "in.png", ramp_image())
    spix, rep = tmp_path / "o.spix", tmp_path / "r.json"
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(spix), "-n", "120", "--steps", "100",
                 "--qat-steps", "40", "--quiet", "--report", str(rep)]) == 0
    report = json.loads(rep.read_text())
    for key in ("bpp", "bytes", "psnr", "ms_ssim", "encode_seconds", "n_gaussians"):
        assert key in report
    assert report["bytes"] == os.path.getsize(spix)
    assert report["bpp"] == pytest.approx(os.path.getsize(spix) * 8 / (48 * 64))
    assert main(["decode", str(spix), "-o", str(tmp_path / "d.png")]) == 0
    assert Image.open(tmp_path / "d.png").size == (64, 48)
    assert main(["decode", str(spix), "-o", str(tmp_path / "d2.png"), "--size", "100x75"]) == 0
    assert Image.open(tmp_path / "d2.png").size == (100, 75)
    capsys.readouterr()
    assert main(["info", str(spix)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_gaussians"] == 120 and info["bytes"] == os.path.getsize(spix)
    (tmp_path / "bad.spix").write_bytes(spix.read_bytes()[:100])
    assert main(["decode", str(tmp_path / "bad.spix"), "-o", str(tmp_path / "x.png")]) == 2
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "y.spix")]) == 2  # neither -n nor --bpp
    err = capsys.readouterr().err
    assert err.count("splatpix: error:") == 2 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.spix").exists()


def test_python_api_encode_save_decode(tmp_path):
    import splatpix

    img = ramp_image()
    res = splatpix.encode(img, 100, fit_config=FIT, qat_config=QAT, progress=False)
    res.save(tmp_path / "a.spix")
    g = splatpix.decode(tmp_path / "a.spix")
    assert torch.equal(splatpix.render(g, clamp=True), render(res.quantized.dequantize(), clamp=True))
    assert res.report["bytes_fixed_length"] >= res.report["bytes"] - 2  # metadata differs by a byte or two
    assert splatpix.render(g, scale=2.0).shape == (3, 96, 128)
