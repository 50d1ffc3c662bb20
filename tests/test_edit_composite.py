"""Compositing: the coverage formulas, background everywhere no Gaussian reaches (both model kinds), selections,
RGBA alpha, backgrounds."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_gainer_config

from splatpix.edit import (
    BoxRegion,
    Translate,
    apply_edit,
    colour_and_alpha,
    composite,
    gaussian_selection,
    parse_colour,
    render_model,
    resolve_background,
)
from splatpix.edit.composite import gainer_coverage, prepare_background
from splatpix.errors import SplatpixError
from splatpix.gainer import GainerField
from splatpix.model.gaussians import Gaussians, params_from_covariance
from splatpix.render import render

H, W = 24, 32


def blob_model(channels: int = 3) -> Gaussians:
    """Two Gaussians in the left half of the image (sigma 2 px)."""
    means = torch.tensor([[0.2, 0.5], [0.3, 0.5]])
    cov = params_from_covariance(torch.tensor([[4.0, 0.0, 4.0]] * 2), "cholesky")
    colours = torch.tensor([[0.9, 0.2, 0.1, 1.0], [0.8, 0.3, 0.2, 1.0]])[:, :channels]
    return Gaussians(means, cov, colours, "cholesky", (H, W))


def test_gaussians_coverage_formula_and_background_where_nothing_reaches():
    g = blob_model()
    out = composite(g, "#0000ff")
    o = render(g, clamp=True)
    a = render(Gaussians(g.means, g.cov_params, torch.ones(2, 1), "cholesky", (H, W))).clamp(0, 1)
    blue = torch.tensor([0.0, 0.0, 1.0]).reshape(3, 1, 1)
    torch.testing.assert_close(out, (o + (1 - a) * blue).clamp(0, 1))
    torch.testing.assert_close(out[:, :, 20:], blue.expand(3, H, 12))  # the right side: background exactly


def test_selection_restricts_to_the_region_gaussians():
    g = blob_model()
    sel = gaussian_selection(g, BoxRegion(0.0, 0.0, 0.25, 1.0))
    assert sel.tolist() == [1.0, 0.0]
    out = composite(g, (0.0, 0.0, 0.0), sel)
    only = Gaussians(g.means[:1], g.cov_params[:1], g.colours[:1], "cholesky", (H, W))
    torch.testing.assert_close(out, render(only, clamp=True), atol=1e-6, rtol=0)


def test_rgba_model_uses_its_alpha():
    g = blob_model(channels=4)
    colour, alpha, premultiplied = colour_and_alpha(g)
    assert colour.shape == (3, H, W) and alpha.shape == (1, H, W) and not premultiplied
    torch.testing.assert_close(alpha, render(g)[3:].clamp(0, 1))
    out = composite(g, "#ffffff")
    assert out.shape == (3, H, W)
    torch.testing.assert_close(out[:, :, 24:], torch.ones(3, H, 8))


def test_grey_model_and_backgrounds():
    g = Gaussians(torch.tensor([[0.5, 0.5]]), params_from_covariance(torch.tensor([[4.0, 0.0, 4.0]]), "cholesky"),
                  torch.tensor([[0.5]]), "cholesky", (H, W))
    out = composite(g, "#ffffff")
    assert out.shape == (1, H, W) and float(out[0, 0, 0]) == pytest.approx(1.0)
    img = torch.rand(4, 12, 16)
    bg = prepare_background(img, 3, H, W)
    assert bg.shape == (3, H, W)
    assert parse_colour("#f00") == (1.0, 0.0, 0.0)
    with pytest.raises(SplatpixError, match="invalid colour"):
        parse_colour("red")
    with pytest.raises(SplatpixError, match="1 or 3 values"):
        prepare_background((2.0,), 3, H, W)
    orig = resolve_background("original", g, H, W)
    torch.testing.assert_close(orig, render_model(g))


def field(n: int = 30) -> GainerField:
    means = torch.rand((n, 2), generator=torch.Generator().manual_seed(0)) * 0.4  # the top-left corner only
    f = GainerField(tiny_gainer_config(n), means, size=(H, W), seed=1)
    with torch.no_grad():
        f.cov_params[:, 0] = -3.5  # sigma ~ 0.03
        f.cov_params[:, 2] = -3.5
    return f.bake()


def test_gainer_pixels_without_neighbours_show_the_background():
    f = field()
    cover = gainer_coverage(f, H, W)
    assert cover.shape == (1, H, W)
    assert float(cover[0, -1, -1]) == 0.0 and float(cover.max()) > 0.5
    out = composite(f, "#00ff00")
    green = torch.tensor([0.0, 1.0, 0.0]).reshape(3, 1, 1).expand(3, H, W)
    none = cover[0] == 0
    assert bool(none.any())
    torch.testing.assert_close(out[:, none], green[:, none])
    colour = f.render(H, W).clamp(0, 1)
    torch.testing.assert_close(out, (cover * colour + (1 - cover) * green).clamp(0, 1))


def test_gainer_selection_and_edit():
    f = field()
    sel = gaussian_selection(f, BoxRegion(0.0, 0.0, 0.2, 0.2))
    assert 0 < int(sel.sum()) < f.n
    moved = apply_edit(f, Translate((16.0, 8.0)), BoxRegion(0.0, 0.0, 0.2, 0.2))
    out = composite(moved, "#000000", sel)
    assert out.shape == (3, H, W) and bool(torch.isfinite(out).all())
    empty = composite(f, "#ff0000", torch.zeros(f.n))
    torch.testing.assert_close(empty, torch.tensor([1.0, 0.0, 0.0]).reshape(3, 1, 1).expand(3, H, W))
