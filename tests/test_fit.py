"""Tests for the Adan optimiser and GaussianImage-style fitting (small images, few steps)."""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch
from helpers import nan_after, nan_param_on_step, wave_image

from splatpix.errors import SplatpixError
from splatpix.model.gaussians import Gaussians
from splatpix.train.loop import FitConfig, FitResult, fit
from splatpix.train.optim import Adan

fit_mod = importlib.import_module("splatpix.train.loop")  # the module (splatpix.train.loop is also the function)

# ------------------------------------------------------------------------------------------------- Adan


def test_adan_converges_on_convex_quadratic() -> None:
    a = torch.linspace(0.5, 5.0, 10, dtype=torch.float64)
    b = torch.linspace(-1.0, 2.0, 10, dtype=torch.float64)
    x = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    opt = Adan([x], lr=0.05)
    f0 = float(0.5 * (a * b * b).sum())
    for _ in range(1500):
        opt.zero_grad()
        f = 0.5 * (a * (x - b) ** 2).sum()
        f.backward()
        opt.step()
    assert float(f.detach()) < 1e-8 * f0
    assert float((x.detach() - b).abs().max()) < 1e-4


@pytest.mark.parametrize("wd", [0.0, 0.3])
def test_adan_first_two_steps_by_hand(wd: float) -> None:
    lr, eps = 0.1, 1e-8
    b1, b2, b3 = 0.98, 0.92, 0.99
    p = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = Adan([p], lr=lr, weight_decay=wd)

    def grad_at(x: float) -> float:  # loss 1.5 x^2
        return 3.0 * x

    # by hand, from the documented equations
    x0 = 1.0
    g1 = grad_at(x0)
    d1 = 0.0  # g_0 := g_1
    m1 = (1 - b1) * g1
    v1 = (1 - b2) * d1
    n1 = (1 - b3) * (g1 + b2 * d1) ** 2
    u1 = (m1 / (1 - b1) + b2 * v1 / (1 - b2)) / (math.sqrt(n1 / (1 - b3)) + eps)
    x1 = (x0 - lr * u1) / (1 + lr * wd)
    g2 = grad_at(x1)
    d2 = g2 - g1
    m2 = b1 * m1 + (1 - b1) * g2
    v2 = b2 * v1 + (1 - b2) * d2
    n2 = b3 * n1 + (1 - b3) * (g2 + b2 * d2) ** 2
    u2 = (m2 / (1 - b1**2) + b2 * v2 / (1 - b2**2)) / (math.sqrt(n2 / (1 - b3**2)) + eps)
    x2 = (x1 - lr * u2) / (1 + lr * wd)

    for expected in (x1, x2):
        opt.zero_grad()
        (1.5 * p**2).sum().backward()
        opt.step()
        assert float(p.detach()) == pytest.approx(expected, rel=1e-12, abs=1e-14)
    # the second step is not just a sign step: the difference term matters
    assert abs((x1 - x2) - lr) > 1e-4


# ---------------------------------------------------------------------------------------------- helpers


def small_cfg(**kw) -> FitConfig:
    base = dict(n_gaussians=120, steps=20, lr=1e-2, log_every=5)
    base.update(kw)
    return FitConfig(**base)


def assert_finite_model(g: Gaussians) -> None:
    for t in (g.means, g.cov_params, g.colours):
        assert bool(torch.isfinite(t).all())


# ---------------------------------------------------------------------------------------------- fitting


def test_fit_psnr_increases_substantially() -> None:
    img = wave_image(48, 48)
    res = fit(img, FitConfig(n_gaussians=300, steps=150, lr=1e-2, log_every=50), progress=False)
    assert not res.diverged
    assert res.steps == 150
    assert [h["step"] for h in res.history] == [0, 50, 100, 150]
    start, end = res.history[0]["psnr"], res.psnr
    # measured: 7.5 dB -> 23.8 dB (Adan, lr 1e-2, 48x48, N=300, 150 steps)
    assert start < 12.0
    assert end > 20.0
    assert end > start + 10.0
    ps = [h["psnr"] for h in res.history]
    assert all(b > a for a, b in zip(ps, ps[1:], strict=False))
    assert res.psnr_float > end - 0.5
    assert res.ms_ssim is None  # image too small
    g = res.gaussians
    assert g.size == (48, 48) and g.n == 300 and g.channels == 3 and g.param == "cholesky"
    assert not g.means.requires_grad
    assert float(g.means.min()) >= 0.0 and float(g.means.max()) <= 1.0


@pytest.mark.parametrize("param", ["cholesky", "rs"])
def test_params_and_effective_values(param: str) -> None:
    img = wave_image(32, 32)
    res0 = fit(img, small_cfg(param=param, steps=0), progress=False)
    g0 = res0.gaussians
    assert res0.steps == 0 and g0.param == param
    if param == "cholesky":  # U(0,1) + (0.5, 0, 0.5)
        assert float(g0.cov_params[:, [0, 2]].min()) >= 0.5 and float(g0.cov_params[:, [0, 2]].max()) <= 1.5
        assert float(g0.cov_params[:, 1].min()) >= 0.0 and float(g0.cov_params[:, 1].max()) <= 1.0
    else:  # |U(0,1) + 0.5|, sigmoid(U(0,1)) 2 pi
        assert float(g0.cov_params[:, :2].min()) >= 0.5 and float(g0.cov_params[:, :2].max()) <= 1.5
        lo, hi = 0.5 * 2 * math.pi, 1 / (1 + math.exp(-1)) * 2 * math.pi
        assert lo - 1e-5 <= float(g0.cov_params[:, 2].min()) and float(g0.cov_params[:, 2].max()) <= hi + 1e-5
    assert float(g0.colours.min()) >= 0.0 and float(g0.colours.max()) <= 1.0
    res = fit(img, small_cfg(param=param, steps=40), progress=False)
    assert res.psnr > res0.psnr + 3.0
    assert_finite_model(res.gaussians)


@pytest.mark.parametrize("channels", [1, 4])
def test_channels(channels: int) -> None:
    img = wave_image(32, 32, channels)
    res = fit(img, small_cfg(steps=30), progress=False)
    assert res.gaussians.channels == channels
    assert res.psnr > res.history[0]["psnr"] + 3.0


def test_adam_option_and_progress_bar() -> None:
    res = fit(wave_image(32, 32), small_cfg(optimizer="adam", steps=10), progress=True)
    assert res.steps == 10 and res.psnr > res.history[0]["psnr"]


def test_seed_reproducible() -> None:
    img = wave_image(32, 32)
    a = fit(img, small_cfg(seed=3), progress=False).gaussians
    b = fit(img, small_cfg(seed=3), progress=False).gaussians
    c = fit(img, small_cfg(seed=4), progress=False).gaussians
    for x, y in ((a.means, b.means), (a.cov_params, b.cov_params), (a.colours, b.colours)):
        assert torch.equal(x, y)
    assert not torch.equal(a.means, c.means)


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_gaussians=0),
        dict(steps=-1),
        dict(lr=0.0),
        dict(lr=float("nan")),
        dict(optimizer="sgd"),
        dict(param="quat"),
        dict(log_every=0),
        dict(lr_decay_every=0),
        dict(lr_decay=0.0),
        dict(backend="cuda-magic"),
    ],
)
def test_config_validation(kw: dict) -> None:
    with pytest.raises(SplatpixError, match="invalid fit config"):
        FitConfig(**kw)


def test_dense_model_warns() -> None:
    with pytest.warns(UserWarning, match="saturated"):
        fit(wave_image(8, 8), small_cfg(n_gaussians=100, steps=1), progress=False)


def test_bad_images() -> None:
    cfg = small_cfg(steps=1)
    with pytest.raises(SplatpixError):
        fit(torch.rand(2, 8, 8), cfg, progress=False)
    with pytest.raises(SplatpixError):
        fit(torch.rand(8, 8), cfg, progress=False)
    with pytest.raises(SplatpixError):
        fit((torch.rand(3, 8, 8) * 255).to(torch.uint8), cfg, progress=False)
    with pytest.raises(SplatpixError):
        fit(torch.rand(3, 8, 8) * 2, cfg, progress=False)


# ---------------------------------------------------------------------------------------------- NaN guard


def _same_model(a: Gaussians, b: Gaussians) -> bool:
    return all(torch.equal(x, y) for x, y in ((a.means, b.means), (a.cov_params, b.cov_params),
                                               (a.colours, b.colours)))


def test_nan_loss_restores_last_good(monkeypatch: pytest.MonkeyPatch) -> None:
    img = wave_image(32, 32)
    real_render = fit_mod.render
    # the 8th training render only (params after 7 steps) turns to NaN
    monkeypatch.setattr(fit_mod, "render", nan_after(real_render, 7, once=True))
    res = fit(img, small_cfg(steps=20), progress=False)
    monkeypatch.setattr(fit_mod, "render", real_render)
    assert res.diverged and "non-finite loss" in res.message
    assert res.steps == 6
    assert_finite_model(res.gaussians)
    assert math.isfinite(res.psnr)
    assert _same_model(res.gaussians, fit(img, small_cfg(steps=6), progress=False).gaussians)
    json.dumps(res.report())


def test_nan_params_restores_last_good(monkeypatch: pytest.MonkeyPatch) -> None:
    img = wave_image(32, 32)
    real_step = Adan.step
    # after the 5th step a NaN in the Cholesky factors (group 1, tensor 0: one group each)
    monkeypatch.setattr(Adan, "step", nan_param_on_step(real_step, 5, group=1, index=0))
    res = fit(img, small_cfg(steps=20), progress=False)
    monkeypatch.setattr(Adan, "step", real_step)
    assert res.diverged and "non-finite parameters" in res.message
    assert res.steps == 4
    assert_finite_model(res.gaussians)
    assert _same_model(res.gaussians, fit(img, small_cfg(steps=4), progress=False).gaussians)


def test_callback_and_report() -> None:
    seen: list[tuple[int, dict]] = []

    def cb(step: int, info: dict) -> bool:
        seen.append((step, info))
        return step >= 10  # ask to stop

    res = fit(wave_image(32, 32), small_cfg(steps=30, log_every=5), progress=False, callback=cb)
    assert [s for s, _ in seen] == [0, 5, 10]
    assert all({"step", "seconds", "psnr", "loss", "lr"} <= set(i) for _, i in seen)
    assert res.steps == 10 and not res.diverged and "callback" in res.message
    assert isinstance(res, FitResult)
    rep = res.report()
    keys = ("psnr", "ms_ssim", "seconds", "steps", "n_gaussians", "config", "history", "diverged", "message")
    assert set(keys) <= set(rep)
    assert rep["config"]["n_gaussians"] == 120 and rep["steps"] == 10
    assert rep["history"][-1]["step"] == 10
    assert json.loads(json.dumps(rep, allow_nan=False))["n_gaussians"] == 120
