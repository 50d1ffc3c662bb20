"""The footprint term (the renderer's pairs per pixel): its estimate against the exact count, its gradient, and
that fit / QAT / encode / the CLI use it and it does what it is for (smaller Gaussians, fewer pairs)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import ramp_image, write_png

from splatpix.cli import main
from splatpix.codec.api import decode_bytes, encode
from splatpix.codec.qat import QATConfig, quantization_aware_finetune
from splatpix.errors import SplatpixError
from splatpix.eval.kernel import count_pairs
from splatpix.model.gaussians import Gaussians, conic_from_covariance, params_from_covariance, project
from splatpix.train.footprint import footprint, footprint_penalty
from splatpix.train.loop import FitConfig, fit


def _pairs(g: Gaussians) -> int:
    with torch.no_grad():
        m, cov = project(g, *g.size)
        conic = conic_from_covariance(cov)[0]
    return count_pairs(m.float().contiguous(), conic.float().contiguous(), *g.size)


def _random_interior(n: int, size=(200, 300), seed=0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    means = 0.3 + 0.4 * torch.rand(n, 2, generator=gen)  # 3-sigma ellipses stay inside the image
    l11 = 1.0 + 4.0 * torch.rand(n, generator=gen)
    l22 = 1.0 + 4.0 * torch.rand(n, generator=gen)
    l21 = 3.0 * (torch.rand(n, generator=gen) - 0.5)
    return Gaussians(means, torch.stack((l11, l21, l22), 1), torch.rand(n, 3, generator=gen), "cholesky", size)


def test_footprint_estimates_the_exact_pair_count():
    g = _random_interior(400)
    est = float(footprint(g.cov_params, "cholesky", *g.size)) * g.size[0] * g.size[1]
    exact = _pairs(g)
    # pixel-centre rounding only: measured within 0.5 % on these ellipses (sigma 1 to 5 px)
    assert abs(est - exact) / exact < 0.01


def test_footprint_is_the_same_for_both_parameterisations_and_has_the_right_gradient():
    g = _random_interior(50, seed=1)  # sigma >= 1 px: above the floor
    cov = g.covariance_native().double()
    rs = params_from_covariance(cov, "rs")
    a = footprint(g.cov_params.double(), "cholesky", *g.size)
    b = footprint(rs, "rs", *g.size)
    assert torch.allclose(a, b, rtol=1e-9)
    p = g.cov_params.double().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: footprint(t, "cholesky", 20, 30), (p,))
    # sqrt(det) = |l11 l22|: scaling a Gaussian by s scales its footprint by s^2
    with torch.no_grad():
        f1, f2 = float(footprint(p, "cholesky", 20, 30)), float(footprint(2 * p, "cholesky", 20, 30))
    assert math.isclose(f2, 4 * f1, rel_tol=1e-12)
    with pytest.raises(ValueError, match="parameterisation"):
        footprint(p, "bogus", 20, 30)


def test_penalty_is_relative_to_the_detached_error():
    p = torch.tensor([[2.0, 0.5, 3.0]], requires_grad=True)
    mse = torch.tensor(0.01, requires_grad=True)
    pen = footprint_penalty(mse, p, "cholesky", 10, 10, 0.05)
    assert math.isclose(float(pen.detach()), 0.05 * 0.01 * 9 * math.pi * 6.0 / 100, rel_tol=1e-6)
    pen.backward()
    assert mse.grad is None or float(mse.grad) == 0.0  # the error's scale is not trained through the penalty


@pytest.fixture(scope="module")
def fits():
    img = ramp_image(40, 56, fx=3.0, fy=5.0)
    base = dict(n_gaussians=120, steps=200, optimizer="adam", lr=1e-2, lr_decay_every=150, log_every=100,
                init="structure", colour_solve_init=True)
    return img, {w: fit(img, FitConfig(**base, footprint_weight=w), progress=False) for w in (0.0, 0.1)}


def test_fit_with_footprint_weight_shrinks_the_gaussians(fits):
    img, res = fits
    p0, p1 = _pairs(res[0.0].gaussians), _pairs(res[0.1].gaussians)
    assert p1 < 0.9 * p0  # fewer pixel-Gaussian pairs to render (measured 24530 -> 19955)
    assert res[0.1].psnr > res[0.0].psnr - 3.0  # and still a fit of the image
    assert res[0.1].report()["config"]["footprint_weight"] == 0.1


def test_qat_and_encode_follow_the_fit_weight(fits):
    img, res = fits
    g = res[0.1].gaussians
    q0 = quantization_aware_finetune(g, img, QATConfig(steps=40, optimizer="adam", lr=1e-3), progress=False)
    q1 = quantization_aware_finetune(g, img, QATConfig(steps=40, optimizer="adam", lr=1e-3, footprint_weight=1.0),
                                     progress=False)
    assert _pairs(q1.quantized.dequantize()) < _pairs(q0.quantized.dequantize())
    fc = FitConfig(n_gaussians=80, steps=60, optimizer="adam", lr=1e-2, footprint_weight=0.05)
    r = encode(img, 80, method="sga", fit_config=fc, qat_config=QATConfig(steps=10), progress=False)
    assert r.report["fit_config"]["footprint_weight"] == 0.05
    assert decode_bytes(r.data).n == 80
    with pytest.raises(SplatpixError, match="footprint_weight"):
        QATConfig(footprint_weight=-1.0)
    with pytest.raises(SplatpixError, match="footprint_weight"):
        FitConfig(footprint_weight=float("nan"))


def test_cli_footprint_weight(tmp_path, capsys):
    write_png(tmp_path / "in.png", ramp_image(40, 56, fx=3.0, fy=5.0))
    rep = tmp_path / "r.json"
    assert main(["fit", str(tmp_path / "in.png"), "-o", str(tmp_path / "m.safetensors"), "-n", "50", "--steps", "10",
                 "--footprint-weight", "0.02", "--report", str(rep), "--quiet"]) == 0
    assert json.loads(rep.read_text())["config"]["footprint_weight"] == 0.02
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.spix"), "-n", "50", "--steps", "10",
                 "--qat-steps", "5", "--method", "sga", "--footprint-weight", "0.02", "--report", str(rep),
                 "--colour", "vq", "--vq-codebook", "16", "--quiet"]) == 0
    report = json.loads(rep.read_text())
    assert report["fit_config"]["footprint_weight"] == 0.02 and report["vq_codebook"] == 16
    from splatpix.codec.api import unpack

    assert unpack((tmp_path / "o.spix").read_bytes())[0].codebooks.shape == (2, 16, 3)
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.safetensors"), "-n", "50",
                 "--footprint-weight", "-1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("splatpix: error:") == 1 and "footprint_weight" in err and "Traceback" not in err
    assert not (tmp_path / "x.safetensors").exists()


def test_footprint_stops_at_the_floor():
    """Below sqrt(det) = FOOTPRINT_FLOOR a Gaussian counts the floor and gets no gradient, so the penalty cannot
    drive a Cholesky factor through zero (which made the covariance singular and the loss non-finite)."""
    from splatpix.train.footprint import FOOTPRINT_FLOOR

    p = torch.tensor([[0.1, 0.0, 0.2], [2.0, 0.3, 1.5]], dtype=torch.float64, requires_grad=True)
    f = footprint(p, "cholesky", 10, 10)
    assert math.isclose(float(f.detach()), (FOOTPRINT_FLOOR + 3.0) * 9 * math.pi / 100, rel_tol=1e-12)
    f.backward()
    assert torch.equal(p.grad[0], torch.zeros(3, dtype=torch.float64)) and bool((p.grad[1, [0, 2]] > 0).all())
