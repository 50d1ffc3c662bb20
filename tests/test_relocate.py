"""Error-guided placement (splatpix.relocate)."""

from __future__ import annotations

import pytest
import torch

from splatpix import FitConfig, fit
from splatpix.errors import SplatpixError
from splatpix.init import random_raw
from splatpix.init.params import build_model
from splatpix.relocate import importance, relocate
from splatpix.render import render


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
