"""Initialisations (random / gradient / structure), the raw-parameter conversion and the complexity map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from splatpix.errors import SplatpixError
from splatpix.init import METHODS, build_model, complexity_map, initial_raw, initialise, raw_from_gaussians
from splatpix.init.common import weighted_sample
from splatpix.init.structure import CLASS_WEIGHTS, allocate_budgets, analyse_structure, structure_init
from splatpix.io import load_image, sample_image_path
from splatpix.model.gaussians import Gaussians, covariance_from_params


def half_textured(h: int = 64, w: int = 96, c: int = 3, seed: int = 0) -> torch.Tensor:
    """Left half flat grey, right half strongly textured (random blocks of 2x2 px)."""
    gen = torch.Generator().manual_seed(seed)
    img = torch.full((c, h, w), 0.5)
    tex = torch.rand(c, h // 2, w // 4, generator=gen).repeat_interleave(2, 1).repeat_interleave(2, 2)
    img[:, :, w // 2:] = 0.1 + 0.8 * tex
    return img


def natural(h: int = 64, w: int = 96) -> torch.Tensor:
    img = load_image(sample_image_path())  # 384x256 kodim23
    return img[:, 96:96 + h, 160:160 + w].contiguous()


def assert_valid_means(g: Gaussians) -> None:
    m = g.means.double()
    assert bool(torch.isfinite(m).all())
    assert float(m.min()) > 0.0 and float(m.max()) < 1.0
    assert torch.unique(m, dim=0).shape[0] == g.n  # no two Gaussians at the same position


# ------------------------------------------------------------------------------------------------ budgets


def test_budgets_follow_6_2_1_and_leftovers_go_to_the_most_complex() -> None:
    area = np.array([100, 100, 100])
    cls = np.array([0, 1, 2], dtype=np.int8)
    cx = np.array([0.0, 1.0, 2.0])
    assert allocate_budgets(90, area, cls, cx).tolist() == [10, 20, 60]
    assert allocate_budgets(91, area, cls, cx).tolist() == [10, 20, 61]
    assert allocate_budgets(92, area, cls, cx).tolist() == [10, 20, 62]  # each region at most +1, by class first
    # a tiny N: the single Gaussian goes to the most complex region
    assert allocate_budgets(1, area, cls, cx).tolist() == [0, 0, 1]


@pytest.mark.parametrize("seed", range(5))
def test_budgets_sum_to_n_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    r = int(rng.integers(1, 60))
    area = rng.integers(1, 2000, size=r)
    cx = rng.random(r)
    cls = rng.integers(0, 3, size=r).astype(np.int8)
    for n in (1, 7, r, 10 * r + 3, 12345):
        b = allocate_budgets(n, area, cls, cx)
        assert int(b.sum()) == n and (b >= 0).all()
        share = n * np.array(CLASS_WEIGHTS)[cls] * area / (np.array(CLASS_WEIGHTS)[cls] * area).sum()
        assert (np.abs(b - share) < 1.0 + 1e-9).all()  # rounding moves each region by less than one


def test_structure_allocates_more_per_area_to_texture() -> None:
    img = half_textured()
    res = structure_init(img, 600, superpixel_area=256)
    an = res.analysis
    assert int(res.budgets.sum()) == 600 and res.gaussians.n == 600
    assert an.labels.shape == (64, 96) and an.class_map.dtype == np.int8
    # regions lying wholly in the flat half are the least complex class
    flat_regions = [r for r in range(an.area.size) if (np.nonzero(an.labels == r)[1] < 46).all()]
    assert flat_regions and all(an.region_class[r] == 0 for r in flat_regions)
    assert (an.region_class == 2).any()
    # budgets per unit area follow the class weights 1:2:6 (up to the rounding of one Gaussian per region)
    dens = res.budgets / an.area
    for k in range(3):
        sel = an.region_class == k
        lo = (res.budgets[sel] - 1) / an.area[sel]
        hi = (res.budgets[sel] + 1) / an.area[sel]
        ratio = 600 * CLASS_WEIGHTS[k] / (np.array(CLASS_WEIGHTS)[an.region_class] * an.area).sum()
        assert (lo <= ratio + 1e-12).all() and (hi >= ratio - 1e-12).all()
    assert dens[an.region_class == 2].mean() > 2.5 * dens[an.region_class == 0].mean()
    # and so do the positions: many more Gaussians per pixel in the textured half
    x = res.gaussians.means[:, 0].numpy()
    assert (x >= 0.5).sum() > 3 * (x < 0.5).sum()
    assert_valid_means(res.gaussians)
    # every Gaussian lies in (or next to) its own region
    px = np.clip((res.gaussians.means.numpy() * [96, 64]).astype(int), 0, [95, 63])
    assert (an.labels[px[:, 1], px[:, 0]] == res.region).mean() > 0.9


def test_complexity_map_public() -> None:
    img = half_textured()
    cmap = complexity_map(img, superpixel_area=256)
    assert cmap.shape == (64, 96) and cmap.dtype == np.int8
    assert set(np.unique(cmap).tolist()) <= {0, 1, 2}
    assert (cmap[:, :30] == 0).all()  # the flat half (SLIC's regions may straddle the edge at x = 48)
    assert (cmap[:, 52:] > 0).mean() > 0.8
    assert np.array_equal(cmap, analyse_structure(img, superpixel_area=256).class_map)


def test_weighted_sample_distinct_and_proportional() -> None:
    rng = np.random.default_rng(0)
    w = np.array([0.0, 1.0, 1.0, 8.0])
    idx = weighted_sample(w, 4, rng)
    assert sorted(idx.tolist()) == [0, 1, 2, 3] and idx[-1] == 0  # the zero weight comes last
    firsts = [int(weighted_sample(w, 1, rng)[0]) for _ in range(2000)]
    assert abs(firsts.count(3) / 2000 - 0.8) < 0.04


# -------------------------------------------------------------------------------------------- initialise


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_initialise_valid_and_deterministic(method: str, channels: int) -> None:
    img = natural(32, 48)
    img = img[:1] if channels == 1 else (torch.cat((img, img[:1]), 0) if channels == 4 else img)
    g = initialise(img, 120, method, seed=3)
    assert g.n == 120 and g.channels == channels and g.size == (32, 48) and g.param == "cholesky"
    assert_valid_means(g)
    for t in (g.cov_params, g.colours):
        assert bool(torch.isfinite(t).all())
    assert float(g.cov_params[:, [0, 2]].min()) >= 0.5 - 1e-6
    again = initialise(img, 120, method, seed=3)
    other = initialise(img, 120, method, seed=4)
    assert all(torch.equal(a, b) for a, b in ((g.means, again.means), (g.cov_params, again.cov_params),
                                               (g.colours, again.colours)))
    assert not torch.equal(g.means, other.means)


@pytest.mark.parametrize("method", ["gradient", "structure"])
def test_tiny_image_more_gaussians_than_pixels(method: str) -> None:
    img = natural(8, 8)
    g = initialise(img, 150, method)  # 150 > 64 pixels: shared pixels, distinct sub-pixel positions
    assert g.n == 150
    assert_valid_means(g)
    assert bool(torch.isfinite(g.colours).all())
    g1 = initialise(natural(8, 8), 1, method)
    assert g1.n == 1 and bool(torch.isfinite(g1.colours).all())
    flat = initialise(torch.full((3, 5, 7), 0.3), 10, method)  # flat and below the Sobel stencil size
    assert_valid_means(flat)


def test_image_driven_inits_start_close_to_the_image() -> None:
    from splatpix.metrics import psnr
    from splatpix.render import render

    img = natural()
    p = {m: psnr(render(initialise(img, 400, m), clamp=True), img) for m in METHODS}
    assert p["structure"] > p["random"] + 8.0 and p["gradient"] > p["random"] + 5.0


@pytest.mark.parametrize("param", ["cholesky", "rs"])
def test_raw_round_trip(param: str) -> None:
    gen = torch.Generator().manual_seed(0)
    n = 50
    means = torch.rand(n, 2, generator=gen) * 0.98 + 0.01
    chol = torch.stack((torch.rand(n, generator=gen) + 0.5, torch.randn(n, generator=gen),
                        torch.rand(n, generator=gen) + 0.5), 1)
    chol[:5, 1] = 0.0
    chol[:5, 2] = chol[:5, 0]  # isotropic ones
    g = Gaussians(means, chol, torch.rand(n, 3, generator=gen), "cholesky", (20, 30))
    raw = raw_from_gaussians(g, param)
    assert set(raw) == ({"xy", "cholesky", "features"} if param == "cholesky"
                        else {"xy", "scaling", "rotation", "features"})
    assert all(t.dtype == torch.float32 for t in raw.values())
    back = build_model(raw, param, (20, 30))
    assert torch.allclose(back.means, means, atol=1e-6)
    assert torch.allclose(back.colours, g.colours)
    assert torch.allclose(covariance_from_params(back.cov_params.double(), param),
                          covariance_from_params(chol.double(), "cholesky"), atol=1e-5)
    if param == "rs":  # the rotation stays off the sigmoid's tails
        assert float(raw["rotation"].abs().max()) <= math.log(3.0) + 1e-5


def test_initialise_errors() -> None:
    img = natural(16, 16)
    with pytest.raises(SplatpixError, match="unknown initialisation"):
        initialise(img, 10, "magic")
    with pytest.raises(SplatpixError, match="unknown option"):
        initialise(img, 10, "structure", colour=1)
    with pytest.raises(SplatpixError, match="no options"):
        initial_raw(img, 10, "random", scale=1.0)
    with pytest.raises(SplatpixError, match=">= 1"):
        initialise(img, 0, "gradient")
    with pytest.raises(SplatpixError, match="scale"):
        initialise(img, 10, "structure", scale=-1.0)
    with pytest.raises(SplatpixError, match="superpixel_area"):
        initialise(img, 10, "structure", superpixel_area=0)
    with pytest.raises(SplatpixError):
        initialise(torch.rand(2, 8, 8), 10, "structure")
    with pytest.raises(SplatpixError, match="uniform_fraction"):
        initialise(img, 10, "gradient", uniform_fraction=1.5)
