"""Regions: box, polygon, ellipse, mask, predicate, feather (monotone, in [0, 1]), parse_region and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from splatpix.edit import (
    AllRegion,
    BoxRegion,
    EllipseRegion,
    MaskRegion,
    PolygonRegion,
    PredicateRegion,
    parse_region,
)
from splatpix.errors import SplatpixError

SIZE = (40, 80)  # (H, W)


def pts(*xy: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(xy, dtype=torch.float64)


def test_box_hard_and_signed_distance():
    r = parse_region("box:0.25,0.25,0.75,0.75")
    assert isinstance(r, BoxRegion)
    p = pts((40, 20), (20.5, 20), (19.5, 20), (70, 5))  # box = [20, 60] x [10, 30] pixels
    torch.testing.assert_close(r.weights(p, SIZE), torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(r.signed_distance(p[:2], SIZE), torch.tensor([10.0, 0.5], dtype=torch.float64))


def test_polygon_even_odd_and_exact_distance():
    # a triangle in normalised coordinates; in pixels (0, 0), (80, 0), (0, 40)
    r = parse_region("polygon:0,0;1,0;0,1")
    assert isinstance(r, PolygonRegion)
    p = pts((10, 10), (70, 30), (5, 1))
    w = r.weights(p, SIZE)
    torch.testing.assert_close(w, torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(r.signed_distance(pts((5, 1)), SIZE), torch.tensor([1.0], dtype=torch.float64))
    # a concave "C" shape: its notch is outside
    c = PolygonRegion([(0, 0), (1, 0), (1, 0.3), (0.3, 0.3), (0.3, 0.7), (1, 0.7), (1, 1), (0, 1)])
    torch.testing.assert_close(c.weights(pts((60, 20), (10, 20)), SIZE), torch.tensor([0.0, 1.0],
                                                                                         dtype=torch.float64))


def test_ellipse():
    r = parse_region("ellipse:0.5,0.5,0.25,0.25")  # semi-axes 20 x 10 pixels
    assert isinstance(r, EllipseRegion)
    w = r.weights(pts((40, 20), (58, 20), (62, 20), (40, 29), (40, 31.5)), SIZE)
    torch.testing.assert_close(w, torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64))
    # near the border its signed distance agrees with a fine polygon's (exact to first order)
    poly = PolygonRegion([(0.5 + 0.25 * math.cos(t), 0.5 + 0.25 * math.sin(t))
                          for t in torch.linspace(0, 2 * math.pi, 721)[:-1].tolist()])
    x = torch.rand((2000, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * torch.tensor(
        [80.0, 40.0], dtype=torch.float64)
    ref = poly.signed_distance(x, SIZE)
    band = ref.abs() < 2
    assert int(band.sum()) > 20
    torch.testing.assert_close(r.signed_distance(x, SIZE)[band], ref[band], atol=0.15, rtol=0)
    centre = r.signed_distance(pts((40, 20)), SIZE)
    assert float(centre) == 10.0
    circle = EllipseRegion(0.5, 0.5, 0.125, 0.25)  # a circle of radius 10 px on this 80 x 40 image
    torch.testing.assert_close(circle.signed_distance(pts((43, 24)), SIZE), torch.tensor([5.0], dtype=torch.float64))


def test_feather_is_smooth_monotone_in_unit_interval_and_inside_only():
    r = parse_region("polygon:0.1,0.1;0.9,0.15;0.8,0.9;0.2,0.8", feather=6)
    x = torch.linspace(0, 40, 401, dtype=torch.float64)
    ray = torch.stack((x, torch.full_like(x, 20.0)), 1)  # from the left border to the centre
    w = r.weights(ray, SIZE)
    assert bool(((w >= 0) & (w <= 1)).all())
    assert bool((w[1:] >= w[:-1] - 1e-12).all())
    assert float(w[0]) == 0.0 and float(w[-1]) == 1.0
    sd = r.signed_distance(ray, SIZE)
    assert bool((w[sd <= 0] == 0).all()) and bool((w[sd >= 6] == 1).all())
    band = (sd > 0) & (sd < 6)
    assert bool(((w[band] > 0) & (w[band] < 1)).all())
    # differentiable (for the blended Jacobian)
    p = ray[band][:3].clone().requires_grad_(True)
    r.weights(p, SIZE).sum().backward()
    assert bool((p.grad[:, 0] > 0).all())


def test_box_feather_and_all():
    r = BoxRegion(0, 0, 0.5, 1, feather=10)
    w = r.weights(pts((0.0, 20), (5, 20), (10, 20), (35, 20), (41, 20)), SIZE)
    assert w.tolist() == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0])
    assert AllRegion().weights(pts((1e6, -1e6)), SIZE).tolist() == [1.0]
    assert isinstance(parse_region("all"), AllRegion) and isinstance(parse_region("everything"), AllRegion)


def test_mask_region_resampled_with_feather(tmp_path):
    # a 20x10 mask, white on the left half: resampled to the 80x40 model
    m = np.zeros((10, 20), np.uint8)
    m[:, :10] = 255
    path = tmp_path / "mask.png"
    Image.fromarray(m).save(path)
    r = parse_region(f"mask:{path}")
    assert isinstance(r, MaskRegion)
    p = pts((10, 20), (39, 20), (41, 20), (70, 20))
    torch.testing.assert_close(r.weights(p, SIZE), torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(r.signed_distance(pts((30.5, 20)), SIZE), torch.tensor([9.5], dtype=torch.float64))
    soft = parse_region("mask:mask.png", feather=8, base_dir=tmp_path)
    x = torch.linspace(20, 45, 101, dtype=torch.float64)
    w = soft.weights(torch.stack((x, torch.full_like(x, 20.0)), 1), SIZE)
    assert bool((w[1:] <= w[:-1] + 1e-12).all()) and float(w[0]) == 1.0 and float(w[-1]) == 0.0
    assert bool(((w > 0) & (w < 1)).any())
    full = MaskRegion(torch.ones(5, 5))
    assert full.weights(pts((3, 3)), SIZE).tolist() == [1.0]


def test_predicate_region():
    r = PredicateRegion(lambda m, c, col: m[:, 0] < 40)
    means = pts((10, 10), (50, 10))
    w = r.gaussian_weights(means, torch.ones(2, 3, dtype=torch.float64), None, SIZE)
    assert w.tolist() == [1.0, 0.0]
    with pytest.raises(SplatpixError, match="selects Gaussians"):
        r.weights(means, SIZE)
    bad = PredicateRegion(lambda m, c, col: torch.ones(3))
    with pytest.raises(SplatpixError, match="one value per Gaussian"):
        bad.gaussian_weights(means, torch.ones(2, 3), None, SIZE)


@pytest.mark.parametrize("spec, match", [
    ("circle:0.5", "unknown region kind"),
    ("box:0,0,1", "needs 4 numbers"),
    ("box:0.5,0,0.2,1", "u0 < u1"),
    ("box:a,b,c,d", "expected numbers"),
    ("polygon:0,0;1,1", "at least 3"),
    ("polygon:0,0;1;0,1", "2 numbers"),
    ("ellipse:0.5,0.5,0,0.1", "radii > 0"),
    ("mask:", "needs an image path"),
    ("mask:/nonexistent/m.png", "no such file"),
    ("nothing", "unknown region"),
])
def test_parse_region_errors(spec, match):
    with pytest.raises(SplatpixError, match=match):
        parse_region(spec)


def test_bad_feather():
    with pytest.raises(SplatpixError, match="feather"):
        parse_region("all", feather=-1)
