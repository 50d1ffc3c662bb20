"""Deformations: analytic forms, identity at zero strength, inverse round trips, autograd vs finite-difference
Jacobians, composition and numerical inverses."""

from __future__ import annotations

import math

import pytest
import torch

from splatpix.edit import (
    Bend,
    Blend,
    Compose,
    Cut,
    DisplacementField,
    Lattice,
    NewtonInverse,
    Rotate,
    Scale,
    Stretch,
    Translate,
    Twist,
    Wave,
    direction,
    jacobian,
    parse_region,
)
from splatpix.errors import SplatpixError

SIZE = (80, 120)  # (H, W)
C = (60.0, 40.0)


def points(n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 2), generator=g, dtype=torch.float64) * torch.tensor([120.0, 80.0])


def fd_jacobian(fn, x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    cols = []
    for e in ((1.0, 0.0), (0.0, 1.0)):
        d = eps * torch.tensor(e, dtype=torch.float64)
        cols.append((fn(x + d) - fn(x - d)) / (2 * eps))
    return torch.stack(cols, 2)


def _field() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn((2, 6, 9), generator=g, dtype=torch.float64) * 2


SMOOTH = [
    Translate((3.5, -2.0)),
    Rotate(30, C),
    Scale(1.5, C),
    Scale((1.2, 0.7), (10, 10)),
    Stretch(1.7, 30, C),
    Bend(0.01, C, 20),
    Bend(-0.02, C, 0),
    Twist(60, C, 40),
    Wave(5, 30, 10, 20, C),
    Wave(3, 40, 0, 0, C, "longitudinal"),
    DisplacementField(_field(), SIZE),
    Lattice(torch.randn((4, 5, 2), generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3, SIZE),
]


@pytest.mark.parametrize("d", SMOOTH, ids=lambda d: type(d).__name__)
def test_jacobian_matches_finite_differences_and_inverse_round_trips(d):
    x = points()
    j = d.jacobian(x)
    assert j.shape == (64, 2, 2)
    torch.testing.assert_close(j, fd_jacobian(d, x), atol=1e-6, rtol=1e-6)
    assert d.invertible
    inv = d.inverse()
    torch.testing.assert_close(inv(d(x)), x, atol=1e-7, rtol=0)
    torch.testing.assert_close(d(inv(x)), x, atol=1e-7, rtol=0)
    # the inverse's Jacobian is the inverse matrix (chain rule)
    y = d(x)
    torch.testing.assert_close(inv.jacobian(y) @ j, torch.eye(2, dtype=torch.float64).expand(64, 2, 2), atol=1e-6,
                               rtol=0)


@pytest.mark.parametrize("d", [
    Translate((0, 0)), Rotate(0, C), Scale(1, C), Stretch(1, 40, C), Bend(0.0, C, 30), Bend(1e-14, C, 30),
    Twist(0, C, 30), Wave(0, 30, 10, 0, C), Wave(0, 30, 10, 0, C, "longitudinal"), Cut(0, C, 30),
    DisplacementField(_field(), SIZE, strength=0.0),
], ids=lambda d: type(d).__name__)
def test_zero_strength_is_the_identity(d):
    x = points()
    torch.testing.assert_close(d(x), x, atol=1e-9, rtol=0)
    torch.testing.assert_close(d.jacobian(x), torch.eye(2, dtype=torch.float64).expand(64, 2, 2), atol=1e-9, rtol=0)


def test_affine_maps_analytic():
    x = points()
    c = torch.tensor(C, dtype=torch.float64)
    a = math.radians(30)
    # counter-clockwise on screen with y down: the point to the right of the centre moves up
    m = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], dtype=torch.float64)
    torch.testing.assert_close(Rotate(30, C)(x), c + (x - c) @ m.T)
    right = torch.tensor([[C[0] + 10, C[1]]], dtype=torch.float64)
    out = Rotate(90, C)(right)
    torch.testing.assert_close(out, torch.tensor([[C[0], C[1] - 10]], dtype=torch.float64))
    torch.testing.assert_close(Rotate(30, C).jacobian(x), m.expand(64, 2, 2))
    torch.testing.assert_close(Scale((2, 3), C)(x), c + (x - c) * torch.tensor([2.0, 3.0], dtype=torch.float64))
    e = torch.tensor(direction(30), dtype=torch.float64)
    s = Stretch(2, 30, C)
    proj = ((x - c) @ e)[:, None] * e
    torch.testing.assert_close(s(x), c + (x - c) + proj)
    assert abs(torch.linalg.det(s.jacobian(x)[0]) - 2) < 1e-12
    torch.testing.assert_close(Translate((1, 2))(x), x + torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert direction(90) == pytest.approx((0.0, -1.0))


def test_twist_keeps_radii_and_rotates_by_the_falloff():
    x = points()
    c = torch.tensor(C, dtype=torch.float64)
    t = Twist(90, C, 30)
    y = t(x)
    torch.testing.assert_close((y - c).norm(dim=1), (x - c).norm(dim=1))
    far = (x - c).norm(dim=1) >= 30
    torch.testing.assert_close(y[far], x[far])
    # at the centre the Jacobian is the rotation by the full angle
    j = t.jacobian(c[None])
    torch.testing.assert_close(j[0], Rotate(90, C).jacobian(c[None])[0], atol=1e-12, rtol=0)
    # a point at r = R/2 turns by 90 (1 - 1/4)^2 degrees
    p = torch.tensor([[C[0] + 15, C[1]]], dtype=torch.float64)
    torch.testing.assert_close(t(p), Rotate(90 * 0.75 ** 2, C)(p))


def test_bend_maps_the_axis_onto_an_arc_keeping_arc_length():
    k = 0.02
    b = Bend(k, C, 0)
    s = torch.linspace(-40, 40, 9, dtype=torch.float64)
    on_axis = torch.stack((C[0] + s, torch.full_like(s, C[1])), 1)
    y = b(on_axis)
    arc_centre = torch.tensor(C, dtype=torch.float64) + torch.tensor(direction(90), dtype=torch.float64) / k
    torch.testing.assert_close((y - arc_centre).norm(dim=1), torch.full_like(s, 1 / k))
    # arc length between consecutive points = the original spacing (chord 2/k sin(k ds / 2))
    chords = (y[1:] - y[:-1]).norm(dim=1)
    torch.testing.assert_close(chords, torch.full_like(chords, 2 / k * math.sin(k * 10 / 2)))
    # the Jacobian is a rotation (times a stretch across the axis only off the axis): det = 1 - k t
    x = points()
    t_off = (x - torch.tensor(C, dtype=torch.float64)) @ torch.tensor(direction(90), dtype=torch.float64)
    torch.testing.assert_close(torch.linalg.det(b.jacobian(x)), 1 - k * t_off)


def test_waves():
    x = points()
    w = Wave(4, 25, 0, 0, (0.0, 0.0))
    y = w(x)
    torch.testing.assert_close(y[:, 0], x[:, 0])  # transverse wave along x displaces along dir(90) = -y
    torch.testing.assert_close(y[:, 1], x[:, 1] - 4 * torch.sin(2 * math.pi * x[:, 0] / 25))
    assert Wave(3, 10, mode="longitudinal").invertible is False  # 2 pi 3 > 10
    with pytest.raises(SplatpixError, match="longitudinal"):
        Wave(3, 10, mode="longitudinal").inverse()
    with pytest.raises(SplatpixError, match="wave mode"):
        Wave(1, 10, mode="sideways")
    with pytest.raises(SplatpixError, match="wavelength"):
        Wave(1, 0)


def test_cut_splits_and_inverts():
    c = Cut(10, C, 90, slide=4)  # a vertical line through the centre
    left = torch.tensor([[C[0] - 5, C[1]]], dtype=torch.float64)
    right = torch.tensor([[C[0] + 5, C[1]]], dtype=torch.float64)
    n = torch.tensor(direction(180), dtype=torch.float64)  # dir(axis + 90) for axis 90 points left (-x)
    e = torch.tensor(direction(90), dtype=torch.float64)
    torch.testing.assert_close(c(left), left + 5 * n + 2 * e)
    torch.testing.assert_close(c(right), right - 5 * n - 2 * e)
    x = points()
    torch.testing.assert_close(c.inverse()(c(x)), x)
    torch.testing.assert_close(c.jacobian(x), torch.eye(2, dtype=torch.float64).expand(64, 2, 2))
    with pytest.raises(SplatpixError, match="negative gap"):
        Cut(-1, C).inverse()


def test_lattice_nodes_move_by_their_displacement():
    d = torch.zeros((3, 4, 2), dtype=torch.float64)
    d[1, 2] = torch.tensor([5.0, -3.0])
    lat = Lattice(d, SIZE)
    node = torch.tensor([[2 * 120 / 3, 1 * 80 / 2]], dtype=torch.float64)
    torch.testing.assert_close(lat(node), node + torch.tensor([[5.0, -3.0]], dtype=torch.float64))
    corner = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(lat(corner), corner)
    with pytest.raises(SplatpixError, match="rows >= 2"):
        Lattice(torch.zeros(1, 4, 2), SIZE)


def test_displacement_field_from_image_constant():
    img = torch.full((3, 5, 7), 0.75)
    f = DisplacementField.from_image(img, SIZE, max_displacement=8)
    x = points()
    torch.testing.assert_close(f(x), x + 4.0)


def test_compose_and_reverse():
    parts = [Rotate(20, C), Translate((5, 1)), Twist(45, C, 30), Scale(1.3, C)]
    comp = Compose(parts)
    x = points()
    y = x
    for p in parts:
        y = p(y)
    torch.testing.assert_close(comp(x), y)
    torch.testing.assert_close(comp.inverse()(comp(x)), x, atol=1e-9, rtol=0)
    torch.testing.assert_close(comp.jacobian(x), fd_jacobian(comp, x), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(Rotate(20, C).then(Translate((1, 1)))(x), Translate((1, 1))(Rotate(20, C)(x)))
    with pytest.raises(SplatpixError, match="has no inverse"):
        Scale(0, C).inverse()


def test_blend_jacobian_includes_the_weight_gradient():
    region = parse_region("box:0.2,0.2,0.8,0.8", feather=15)
    b = Blend(Translate((6, 0)), region, SIZE)
    x = points(200)
    j = b.jacobian(x)
    torch.testing.assert_close(j, fd_jacobian(b, x), atol=1e-5, rtol=1e-5)
    band = (region.weights(x, SIZE) > 0) & (region.weights(x, SIZE) < 1)
    assert bool(band.any())
    # in the feather band the Jacobian of a translation differs from I by (phi - x) grad(w)^T
    assert float((j[band] - torch.eye(2, dtype=torch.float64)).abs().amax()) > 1e-3
    inv = b.inverse()
    assert isinstance(inv, NewtonInverse)
    torch.testing.assert_close(b(inv(x)), x, atol=1e-6, rtol=0)


def test_newton_inverse_reports_folds():
    fold = Blend(Translate((60, 0)), parse_region("box:0.3,0.3,0.7,0.7", feather=2), SIZE)
    y = fold(points(400))
    with pytest.raises(SplatpixError, match="not invertible|singular"):
        fold.inverse()(y)


def test_jacobian_helper_and_bad_points():
    x = points(5)
    torch.testing.assert_close(jacobian(lambda p: 2 * p, x), 2 * torch.eye(2, dtype=torch.float64).expand(5, 2, 2))
    with pytest.raises(SplatpixError, match=r"\(P, 2\)"):
        Rotate(10, C)(torch.zeros(3, 3))
