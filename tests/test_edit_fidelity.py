"""The edit-fidelity benchmark: warping, masked metrics, and covariance transformation beating plain mean moves on a
small fitted GaussianImage model (plus a smoke run of the benchmark script)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

import splatpix
from splatpix.edit import Translate
from splatpix.eval.edit_fidelity import (
    QUICK_SUITE,
    edit_fidelity,
    masked_psnr,
    masked_ssim,
    run_suite,
    suite_deformations,
    warp_image,
)
from splatpix.metrics import psnr, to_8bit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fitted():
    img = splatpix.load_image(splatpix.sample_image_path())
    small = F.interpolate(img[None], size=(32, 48), mode="bilinear", antialias=True, align_corners=False)[0]
    res = splatpix.fit(small, splatpix.FitConfig(n_gaussians=300, steps=50, optimizer="adam", lr=0.01),
                       progress=False)
    return res.gaussians, small.clamp(0, 1)


def test_masked_metrics_match_the_unmasked_ones():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand((3, 20, 24), generator=g), torch.rand((3, 20, 24), generator=g)
    full = torch.ones(20, 24, dtype=torch.bool)
    assert masked_psnr(a, b, full) == pytest.approx(psnr(a, b))
    assert masked_ssim(a, b, full) == pytest.approx(float(ssim(to_8bit(a)[None], to_8bit(b)[None], data_range=255)),
                                                    abs=1e-5)
    assert masked_ssim(a[:, :8], b[:, :8], full[:8]) is None
    assert math.isnan(masked_psnr(a, b, ~full))


def test_integer_translation_warp_is_exact():
    img = torch.rand((3, 16, 20), generator=torch.Generator().manual_seed(1))
    d = Translate((3.0, 2.0))
    out, inside = warp_image(img, d.inverse())
    torch.testing.assert_close(out[:, 2:, 3:], img[:, :-2, :-3], atol=1e-6, rtol=0)
    assert bool(inside[2:, 3:].all()) and not bool(inside[:, :3].any())


def test_covariance_transform_beats_moving_means_only(fitted):
    g, img = fitted
    edits = dict(((op, label), d) for op, label, d in suite_deformations(g.size))
    for key in (("scale", "1.5"), ("stretch", "1.5"), ("twist", "90")):
        with_cov = edit_fidelity(g, img, edits[key], transform_covariance=True)
        without = edit_fidelity(g, img, edits[key], transform_covariance=False)
        assert with_cov["pixels"] > 0
        assert with_cov["psnr"] >= without["psnr"], key
        assert with_cov["ssim"] >= without["ssim"], key
    # a translation moves nothing but the means: both agree
    t = edits[("translate", "0.1")]
    plain = edit_fidelity(g, img, t, transform_covariance=False)["psnr"]
    assert edit_fidelity(g, img, t)["psnr"] == pytest.approx(plain)


def test_run_suite_rows(fitted):
    g, img = fitted
    rows = run_suite(g, img, QUICK_SUITE[:1])
    assert rows[0]["op"] == "identity" and len(rows) == 1 + 2
    assert all(math.isfinite(r["psnr"]) for r in rows)


def test_benchmark_script_smoke(fitted, tmp_path, monkeypatch):
    g, img = fitted
    model, image = tmp_path / "m.safetensors", tmp_path / "m.png"
    splatpix.save_model(g, model)
    splatpix.save_image(img, image)
    out = tmp_path / "out"
    script = ROOT / "benchmarks" / "edit" / "edit_fidelity.py"
    spec = importlib.util.spec_from_file_location("edit_fidelity_bench", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["edit_fidelity.py", "--pair", str(model), str(image), "--out", str(out), "--quick", "--limit-ops", "2",
            "--examples", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    data = json.loads((out / "edit_fidelity.json").read_text())
    assert data["results"][0]["kind"] == "gaussians"
    assert (out / "edit_fidelity.md").read_text().startswith("# Edit fidelity")
    assert list((out / "examples").glob("*.png"))
