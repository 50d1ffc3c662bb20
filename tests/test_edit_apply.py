"""apply_edit on both model kinds: means, covariance push-forward (vs finite differences and the deformed density),
units, regions, predicates, order, no mutation, GaINeR baking, degenerate edits, reversibility."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import gainer_config, gainer_image, tiny_field

from splatpix.edit import (
    BoxRegion,
    EditStep,
    PredicateRegion,
    Rotate,
    Scale,
    Stretch,
    Translate,
    Twist,
    apply_edit,
    edit_points,
    gaussian_geometry,
    parse_region,
)
from splatpix.errors import SplatpixError
from splatpix.gainer import GainerField
from splatpix.model.gaussians import Gaussians, params_from_covariance

H, W = 40, 60
C = (30.0, 20.0)


def make_gaussians(n: int = 50, param: str = "cholesky", seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = 0.1 + 0.8 * torch.rand((n, 2), generator=g)
    a = 1 + 3 * torch.rand(n, generator=g)
    cov = torch.stack((a, 0.3 * torch.rand(n, generator=g), 2 + torch.rand(n, generator=g)), 1)
    return Gaussians(means, params_from_covariance(cov, param), torch.rand((n, 3), generator=g), param, (H, W))


def mat(c3: torch.Tensor) -> torch.Tensor:
    return torch.stack((torch.stack((c3[:, 0], c3[:, 1]), -1), torch.stack((c3[:, 1], c3[:, 2]), -1)), -2)


@pytest.mark.parametrize("param", ["cholesky", "rs"])
def test_gaussians_rotate_moves_means_and_rotates_covariances(param):
    g = make_gaussians(param=param)
    before = (g.means.clone(), g.cov_params.clone(), g.colours.clone())
    e = apply_edit(g, Rotate(90, C))
    assert isinstance(e, Gaussians) and e.param == param and e.size == g.size
    # input untouched
    for a, b in zip(before, (g.means, g.cov_params, g.colours), strict=True):
        assert torch.equal(a, b)
    px = g.means.double() * torch.tensor([W, H], dtype=torch.float64)
    expect = Rotate(90, C)(px) / torch.tensor([W, H], dtype=torch.float64)
    torch.testing.assert_close(e.means.double(), expect, atol=1e-6, rtol=0)
    r = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    s = mat(g.covariance_native().double())
    torch.testing.assert_close(mat(e.covariance_native().double()), r @ s @ r.T, atol=1e-4, rtol=1e-4)
    assert torch.equal(e.colours, g.colours)


def test_gaussians_scale_and_no_cov_transform():
    g = make_gaussians()
    e = apply_edit(g, Scale(2, C))
    torch.testing.assert_close(e.covariance_native(), 4 * g.covariance_native(), atol=1e-4, rtol=1e-5)
    e2 = apply_edit(g, Scale(2, C), transform_covariance=False)
    assert torch.equal(e2.cov_params, g.cov_params)
    torch.testing.assert_close(e2.means, e.means)


def test_covariance_in_pixels_on_a_non_square_image():
    """A stretch along 45 degrees in pixels is not the same as in normalised units: check J Sigma J^T in pixels."""
    g = make_gaussians()
    st = Stretch(1.8, 45, C)
    e = apply_edit(g, st)
    j = st.jacobian(torch.zeros(1, 2, dtype=torch.float64))[0]
    s = mat(g.covariance_native().double())
    torch.testing.assert_close(mat(e.covariance_native().double()), j @ s @ j.T, atol=1e-4, rtol=1e-4)


def _density_errors(scale: float) -> dict[bool, float]:
    """Max |G(phi^-1(y)) - G'(y)| over y within 4 sigma of the new mean, with and without the covariance transform,
    for a Gaussian whose covariance is scaled by ``scale^2``."""
    tw = Twist(70, C, 25)
    mu = torch.tensor([[36.0, 22.0]], dtype=torch.float64)
    c3 = torch.tensor([[1.2, 0.5, 0.9]], dtype=torch.float64) * scale * scale
    sigma = mat(c3)[0]
    px = torch.tensor([W, H], dtype=torch.float64)
    g = Gaussians(mu / px, params_from_covariance(c3, "cholesky"), torch.ones(1, 3, dtype=torch.float64), "cholesky",
                  (H, W))
    grid = torch.linspace(-4, 4, 41, dtype=torch.float64) * scale
    offsets = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
    errs = {}
    for tcov in (True, False):
        e = apply_edit(g, tw, transform_covariance=tcov)
        mu2 = e.means * px
        s2 = mat(e.covariance_native())[0]
        y = mu2 + offsets
        d = tw.inverse()(y) - mu
        truth = torch.exp(-0.5 * (d @ torch.linalg.inv(sigma) * d).sum(1))
        approx = torch.exp(-0.5 * (offsets @ torch.linalg.inv(s2) * offsets).sum(1))
        errs[tcov] = float((truth - approx).abs().max())
    return errs


def test_pushed_forward_gaussian_matches_the_deformed_density_to_first_order():
    """J Sigma J^T is the first-order approximation of the deformed density G(phi^-1(y)): the error halves with
    sigma, while keeping Sigma leaves an O(1) error."""
    big, small = _density_errors(1.0), _density_errors(0.5)
    assert big[True] < big[False] / 4
    assert small[True] < 0.6 * big[True]
    assert small[False] > 0.8 * big[False]


def test_edit_map_jacobian_matches_finite_differences_with_regions():
    region = parse_region("ellipse:0.5,0.5,0.35,0.4", feather=8)
    steps = [EditStep(Rotate(25, C), BoxRegion(0.1, 0.1, 0.8, 0.9, feather=5)), Twist(40, C, 20)]
    g = torch.Generator().manual_seed(4)
    x = torch.rand((300, 2), generator=g, dtype=torch.float64) * torch.tensor([W, H], dtype=torch.float64)
    y, j = edit_points(x, steps, (H, W), region, with_jacobian=True)
    eps = 1e-6
    cols = [(edit_points(x + eps * torch.tensor(e, dtype=torch.float64), steps, (H, W), region)
             - edit_points(x - eps * torch.tensor(e, dtype=torch.float64), steps, (H, W), region)) / (2 * eps)
            for e in ((1.0, 0.0), (0.0, 1.0))]
    torch.testing.assert_close(j, torch.stack(cols, 2), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, edit_points(x, steps, (H, W), region))


def test_region_moves_only_the_selection_and_keeps_order():
    g = make_gaussians(200)
    r = BoxRegion(0.0, 0.0, 0.5, 1.0)
    e = apply_edit(g, Translate((4.0, 0.0)), r)
    left = g.means[:, 0] < 0.5
    torch.testing.assert_close((e.means[:, 0] - g.means[:, 0])[left], torch.full((int(left.sum()),), 4.0 / W))
    assert torch.equal(e.means[~left], g.means[~left])
    assert torch.equal(e.colours, g.colours)


def test_predicate_region_selects_by_identity():
    g = make_gaussians(100)
    pick = PredicateRegion(lambda m, c, col: col[:, 0] > 0.5)
    e = apply_edit(g, Translate((0.0, 3.0)), pick)
    sel = g.colours[:, 0] > 0.5
    torch.testing.assert_close((e.means[:, 1] - g.means[:, 1])[sel], torch.full((int(sel.sum()),), 3.0 / H))
    assert torch.equal(e.means[~sel], g.means[~sel])


def test_composed_edit_reverses():
    g = make_gaussians()
    edits = [Rotate(35, C), Translate((3, -2)), Twist(50, C, 25), Scale(1.4, C)]
    e = apply_edit(g, edits)
    back = apply_edit(e, [d.inverse() for d in reversed(edits)])
    torch.testing.assert_close(back.means, g.means, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.covariance_native(), g.covariance_native(), atol=1e-3, rtol=1e-4)


def test_degenerate_edit_raises():
    g = make_gaussians()
    with pytest.raises(SplatpixError, match="degenerate"):
        apply_edit(g, Scale((0.0, 1.0), C))
    with pytest.raises(SplatpixError, match="not a Deformation"):
        apply_edit(g, ["rotate"])
    with pytest.raises(SplatpixError, match="cannot edit"):
        apply_edit("model", Rotate(1, C))


def test_gainer_edit_units_and_features_stay_attached():
    f = tiny_field(80, (H, W), baked=False)
    feats = f.grid(f.means.detach()).detach()
    means0, cov0 = f.means.detach().clone(), f.cov_params.detach().clone()
    e = apply_edit(f, Rotate(30, C))
    assert isinstance(e, GainerField) and e.baked and not f.baked  # the copy is baked, the input is not
    assert torch.equal(f.means.detach(), means0) and torch.equal(f.cov_params.detach(), cov0)
    torch.testing.assert_close(e.baked_features, feats)  # features of the ORIGINAL positions
    m_px, s_px, colours = gaussian_geometry(f)
    assert colours is None
    torch.testing.assert_close(e.means.detach().double() * torch.tensor([W, H], dtype=torch.float64),
                               Rotate(30, C)(m_px), atol=1e-4, rtol=0)
    j = Rotate(30, C).jacobian(m_px[:1])[0]
    m2, s2, _ = gaussian_geometry(e)
    torch.testing.assert_close(s2, j @ s_px @ j.T, atol=1e-8, rtol=1e-4)
    for a, b in zip(e.mlp.state_dict().values(), f.mlp.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # no covariance transform: only the means move
    e2 = apply_edit(f, Rotate(30, C), transform_covariance=False)
    assert torch.equal(e2.cov_params.detach(), cov0)
    # the edited field renders (its KNN index is its own)
    img = e.render(8, 12)
    assert img.shape == (3, 8, 12) and bool(torch.isfinite(img).all())


def test_gainer_translate_moves_the_render():
    f = tiny_field(200, (H, W), baked=True)
    e = apply_edit(f, Translate((W / 4, 0.0)), transform_covariance=True)
    a = f.render(H, W)
    b = e.render(H, W)
    torch.testing.assert_close(b[:, :, 20:40], a[:, :, 5:25], atol=1e-5, rtol=0)
    assert math.isclose(float(e.cov_params.detach().sub(f.cov_params.detach()).abs().max()), 0.0, abs_tol=1e-6)


def test_gainer_separate_mask_model_survives_edits_and_subsets():
    from splatpix.edit import Translate, apply_edit
    from splatpix.edit.composite import colour_and_alpha
    from splatpix.gainer import GainerTrainConfig, fit_gainer

    img = gainer_image(4, 16, 16)
    cfg = GainerTrainConfig(model=gainer_config(n_gaussians=96, alpha_model="separate"), steps=20, batch=0)
    field = fit_gainer(img, cfg, progress=False).field.bake()
    same = apply_edit(field, Translate((0.0, 0.0)))
    assert same.mask_mlp is not None and torch.allclose(same.render(), field.render(), atol=1e-6)
    colour, alpha = colour_and_alpha(field)[:2]
    assert colour.shape[0] == 3 and alpha.shape[0] == 1 and bool(torch.isfinite(alpha).all())
