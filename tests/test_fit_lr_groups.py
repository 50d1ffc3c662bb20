"""Per-parameter learning rates (FitConfig.lr_*_scale) and the sga fitting defaults that use them."""

from __future__ import annotations

import pytest
import torch

from splatpix.cli import build_parser
from splatpix.cli.codec import encode_settings
from splatpix.cli.model import fit_config
from splatpix.codec.api import encode_configs
from splatpix.codec.methods.sga import SGA_FIT_DEFAULTS
from splatpix.errors import SplatpixError
from splatpix.init import random_raw
from splatpix.train.loop import FitConfig, _param_groups, fit


@pytest.mark.parametrize("param", ["cholesky", "rs"])
def test_groups_carry_the_scaled_rates(param):
    raw = random_raw(10, 3, param, 0)
    cfg = FitConfig(lr=0.02, param=param, lr_means_scale=0.5, lr_cov_scale=10.0, lr_colour_scale=0.25)
    rates = {next(n for n, t in raw.items() if t is g["params"][0]): g["lr"] for g in _param_groups(raw, cfg)}
    assert rates["xy"] == pytest.approx(0.01)
    assert rates["features"] == pytest.approx(0.005)
    if param == "cholesky":
        assert rates["cholesky"] == pytest.approx(0.2)
    else:
        assert rates["scaling"] == pytest.approx(0.2)
        assert rates["rotation"] == pytest.approx(0.02)  # the rotation keeps lr
    assert sum(len(g["params"]) for g in _param_groups(raw, cfg)) == len(raw)


@pytest.mark.parametrize("optimizer", ["adam", "adan"])
def test_unit_scales_equal_one_optimiser_group(optimizer):
    """With every scale 1 the per-tensor groups train exactly as GaussianImage's single group."""
    img = torch.rand(3, 16, 20, generator=torch.Generator().manual_seed(1))
    cfg = FitConfig(n_gaussians=30, steps=12, optimizer=optimizer, lr=1e-2, lr_decay_every=5)
    res = fit(img, cfg, progress=False)

    from splatpix.render import render
    from splatpix.train.loop import _build
    from splatpix.train.losses import clamped_mse
    from splatpix.train.optim import Adan

    raw = {k: v.requires_grad_(True) for k, v in random_raw(30, 3, "cholesky", 0).items()}
    params = list(raw.values())
    opt = Adan(params, lr=1e-2) if optimizer == "adan" else torch.optim.Adam(params, lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    for _ in range(12):
        loss = clamped_mse(render(_build(raw, "cholesky", (16, 20)), 16, 20), img)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    ref = _build({k: v.detach() for k, v in raw.items()}, "cholesky", (16, 20))
    assert torch.equal(res.gaussians.means, ref.means)
    assert torch.equal(res.gaussians.cov_params, ref.cov_params)
    assert torch.equal(res.gaussians.colours, ref.colours)


def test_cov_scale_changes_only_the_covariance_rate():
    img = torch.rand(3, 16, 20, generator=torch.Generator().manual_seed(2))
    base = dict(n_gaussians=30, steps=8, optimizer="adam", lr=1e-2)
    a = fit(img, FitConfig(**base), progress=False)
    b = fit(img, FitConfig(**base, lr_cov_scale=10.0), progress=False)
    assert not b.diverged
    # Adam's first step moves each parameter by about its rate: the covariances move ~10x as far
    start = fit(img, FitConfig(**{**base, "steps": 0}), progress=False).gaussians.cov_params
    step_a = a.gaussians.cov_params - start
    step_b = b.gaussians.cov_params - start
    assert float(step_b.abs().mean()) > 3.0 * float(step_a.abs().mean())


@pytest.mark.parametrize("name", ["lr_means_scale", "lr_cov_scale", "lr_colour_scale"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), True, "2"])
def test_bad_scale(name, value):
    with pytest.raises(SplatpixError, match=name):
        FitConfig(**{name: value})


def test_cli_fit_and_sga_defaults():
    args = build_parser().parse_args(["fit", "x.png", "-o", "m.safetensors", "--lr-cov-scale", "4",
                                      "--lr-means-scale", "0.5", "--lr-colour-scale", "2"])
    c = fit_config(args, (512, 768))
    assert (c.lr_cov_scale, c.lr_means_scale, c.lr_colour_scale) == (4.0, 0.5, 2.0)
    d = fit_config(build_parser().parse_args(["fit", "x.png", "-o", "m.safetensors"]), (512, 768))
    for k, v in SGA_FIT_DEFAULTS.items():  # plain fit: the balanced preset, the same recipe as sga's fit
        assert getattr(d, k) == v
    assert (d.n_gaussians, d.steps, d.optimizer, d.lr, d.lr_decay_every) == (12288, 2000, "adam", 0.01, 1000)
    g = fit_config(build_parser().parse_args(["fit", "x.png", "-o", "m.safetensors", "--preset",
                                              "gaussianimage-paper"]), (512, 768))
    assert (g.init, g.relocate_every, g.lr_cov_scale, g.optimizer, g.n_gaussians, g.steps) == (
        "random", 0, 1.0, "adan", 70_000, 50_000)  # GaussianImage's own schedule
    for name, n in (("fast", 6144), ("quality", 32768)):
        assert fit_config(build_parser().parse_args(["fit", "x.png", "-o", "m", "--preset", name]),
                          (512, 768)).n_gaussians == n
    e = encode_settings(build_parser().parse_args(["encode", "x.png", "-o", "x.spix", "--method", "sga"]))[0]
    for k, v in SGA_FIT_DEFAULTS.items():
        assert getattr(e, k) == v
    assert (e.relocate_every, e.relocate_fraction) == (250, 0.05)  # -0.6 % BD-rate at the codec's schedule
    f = encode_settings(build_parser().parse_args(["encode", "x.png", "-o", "x.spix", "--method", "sga",
                                                   "--relocate-every", "0", "--lr-cov-scale", "1"]))[0]
    assert (f.relocate_every, f.lr_cov_scale) == (0, 1.0)  # the user's values win over the method's


def test_eval_rd_passes_the_new_fit_options():
    fc, _, _ = encode_configs("sga", options={"relocate_every": 0, "relocate_fraction": 0.1, "lr_cov_scale": 1.0})
    assert (fc.relocate_every, fc.relocate_fraction, fc.lr_cov_scale) == (0, 0.1, 1.0)  # the harness passes them on
    args = build_parser().parse_args(["eval", "rd", "--images", "d", "--method", "sga", "--out", "o",
                                      "--relocate-every", "0", "--lr-cov-scale", "1"])
    assert (args.relocate_every, args.lr_cov_scale) == (0, 1.0)


def test_means_rate_follows_the_spacing_above_ref_n():
    from splatpix.train.loop import means_density_factor

    assert means_density_factor(5000, 0) == 1.0  # off
    assert means_density_factor(9000, 9000) == 1.0  # at or below the reference: unchanged
    assert means_density_factor(800, 9000) == 1.0
    assert means_density_factor(36000, 9000) == pytest.approx(0.5)
    raw = random_raw(40, 3, "cholesky", 0)
    cfg = FitConfig(lr=0.02, lr_means_scale=0.5, lr_cov_scale=10.0, lr_means_ref_n=10)
    rates = {next(n for n, t in raw.items() if t is g["params"][0]): g["lr"] for g in _param_groups(raw, cfg)}
    assert rates["xy"] == pytest.approx(0.02 * 0.5 * 0.5)  # N = 40 = 4 x 10: half the spacing, half the rate
    assert rates["cholesky"] == pytest.approx(0.2)  # the others keep theirs
    assert rates["features"] == pytest.approx(0.02)


@pytest.mark.parametrize("value", [-1, 1.5, True, "9000", None])
def test_bad_ref_n(value):
    with pytest.raises(SplatpixError, match="lr_means_ref_n"):
        FitConfig(lr_means_ref_n=value)


def test_cli_ref_n():
    args = build_parser().parse_args(["fit", "x.png", "-o", "m.safetensors", "--lr-means-ref-n", "5000"])
    assert fit_config(args, (64, 64)).lr_means_ref_n == 5000
    plain = fit_config(build_parser().parse_args(["fit", "x.png", "-o", "m.safetensors", "--preset",
                                                  "gaussianimage-paper"]), (64, 64))
    assert plain.lr_means_ref_n == 0
    e = encode_settings(build_parser().parse_args(["encode", "x.png", "-o", "x.spix", "--method", "sga"]))[0]
    assert e.lr_means_ref_n == SGA_FIT_DEFAULTS["lr_means_ref_n"] > 0
    assert encode_configs("sga", options={"lr_means_ref_n": 0})[0].lr_means_ref_n == 0
    r = build_parser().parse_args(["eval", "rd", "--images", "d", "--method", "sga", "--out", "o",
                                   "--lr-means-ref-n", "0"])
    assert r.lr_means_ref_n == 0
