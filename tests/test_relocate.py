"""Error-guided placement (splatpix.relocate)."""

from __future__ import annotations

import pytest
import torch

from splatpix import FitConfig, fit
from splatpix.errors import SplatpixError
from splatpix.init import random_raw
from splatpix.model.raw import build_model
from splatpix.render import render
from splatpix.train.relocate import importance, relocate


@pytest.mark.parametrize("param", ["cholesky", "rs"])
def test_relocate_moves_least_important_to_the_error(param):
    h, w, n = 24, 32, 60
    raw = random_raw(n, 3, param, seed=1)
    raw["features"][:10] *= 1e-3  # the 10 least important Gaussians
    target = torch.zeros(3, h, w)
    target[:, 4:8, 20:26] = 1.0  # all the error sits in this block
    g = build_model(raw, param, (h, w))
    with torch.no_grad():
        out = render(g, h, w)
    target = (out + (target - out) * (target > 0)).detach()  # error only inside the block
    opt = torch.optim.Adam([t.requires_grad_(True) for t in raw.values()], lr=1e-2)
    loss = sum((t * t).sum() for t in raw.values())
    loss.backward()
    opt.step()
    before = {k: v.detach().clone() for k, v in raw.items()}
    idx = relocate(raw, param, (h, w), target, out, 10 / n, seed=3, optimizer=opt)
    assert sorted(idx.tolist()) == list(range(10))
    g2 = build_model({k: v.detach() for k, v in raw.items()}, param, (h, w))
    px = g2.means[idx] * torch.tensor([w, h])
    assert bool(((px[:, 0] > 19.5) & (px[:, 0] < 26.5) & (px[:, 1] > 3.5) & (px[:, 1] < 8.5)).all()), px
    others = torch.ones(n, dtype=torch.bool)
    others[idx] = False
    for k in raw:
        assert torch.equal(raw[k][others], before[k][others])
    # optimiser rows reset: first moments zero, second moments the median of the others
    st = opt.state[raw["features"]]
    assert bool((st["exp_avg"][idx] == 0).all())
    assert torch.allclose(st["exp_avg_sq"][idx[0]], st["exp_avg_sq"][others].median(0).values)
    assert importance(raw, param, (h, w)).shape == (n,)


def test_fit_with_relocation_is_deterministic_and_finite():
    img = torch.rand(3, 20, 28, generator=torch.Generator().manual_seed(0))
    cfg = FitConfig(n_gaussians=80, steps=40, optimizer="adam", lr=1e-2, relocate_every=10, relocate_fraction=0.1,
                    relocate_until=0.8)
    a, b = fit(img, cfg, progress=False), fit(img, cfg, progress=False)
    assert torch.equal(a.gaussians.means, b.gaussians.means) and a.psnr == b.psnr and not a.diverged
    off = fit(img, FitConfig(n_gaussians=80, steps=40, optimizer="adam", lr=1e-2), progress=False)
    assert not torch.equal(a.gaussians.means, off.gaussians.means)


@pytest.mark.parametrize("kw", [{"relocate_every": -1}, {"relocate_fraction": 1.5}, {"relocate_scale": 0}])
def test_bad_relocation_config(kw):
    with pytest.raises(SplatpixError, match="relocate"):
        FitConfig(**kw)


@pytest.mark.parametrize("clamp", [True, False])
def test_fit_relocates_against_the_render_the_loss_sees(monkeypatch, clamp):
    """A saturated region (render > 1 where the target is 1) has no clamped error: relocation must not target it."""
    import importlib

    fit_module = importlib.import_module("splatpix.train.loop")
    seen = []
    real = fit_module.relocate

    def spy(raw, param, size, target, render_out, fraction, **kw):
        seen.append(render_out.detach().clone())
        return real(raw, param, size, target, render_out, fraction, **kw)

    monkeypatch.setattr(fit_module, "relocate", spy)
    img = torch.ones(3, 16, 20)
    img[:, :, :6] = torch.rand(3, 16, 6, generator=torch.Generator().manual_seed(2))
    cfg = FitConfig(n_gaussians=40, steps=3, optimizer="adam", lr=1e-2, relocate_every=1, relocate_fraction=0.1,
                    relocate_until=1.0, clamp_output=clamp)
    fit(img, cfg, progress=False)
    assert len(seen) == 2
    in_range = [float(out.min()) >= 0 and float(out.max()) <= 1 for out in seen]
    if clamp:
        assert all(in_range)
    else:  # the same fit overshoots [0, 1] somewhere, and unclamped it is passed as it is
        assert not all(in_range)


def test_relocation_ignores_saturated_pixels():
    """Relocated Gaussians land only where the clamped render differs from the target."""
    h, w, n = 16, 24, 50
    raw = random_raw(n, 3, "cholesky", seed=4)
    raw["features"][:8] *= 1e-3
    target = torch.ones(3, h, w)
    target[:, :, 18:] = 0.2
    out = torch.full((3, h, w), 3.0)  # heavily saturated everywhere
    out[:, :, 18:] = 0.6  # and wrong on the right
    relocate(raw, "cholesky", (h, w), target, out.clamp(0, 1), 8 / n, seed=1)
    g = build_model({k: v.detach() for k, v in raw.items()}, "cholesky", (h, w))
    assert bool((g.means[:8, 0] * w > 16.9).all()), g.means[:8] * torch.tensor([w, h])
