"""The least-squares colour solve against a dense solution, and its guarantee of never increasing the error."""

from __future__ import annotations

import pytest
import torch

from splatpix.errors import SplatpixError
from splatpix.init import initialise
from splatpix.io import load_image, sample_image_path
from splatpix.model.gaussians import Gaussians
from splatpix.render import render
from splatpix.train.colour_solve import LinearRender, solve_colours


def natural(h: int, w: int) -> torch.Tensor:
    return load_image(sample_image_path())[:, 100:100 + h, 150:150 + w].contiguous()


def with_colours(g: Gaussians, c: torch.Tensor) -> Gaussians:
    return Gaussians(g.means, g.cov_params, c, g.param, g.size)


def dense_matrix(g: Gaussians) -> torch.Tensor:
    """``A`` (pixels x N, float64): column i is Gaussian i's weight ``exp(-0.5 d^T Sigma^-1 d)`` at each pixel centre,
    zero outside its 3-sigma ellipse (written out directly from the render's definition)."""
    h, w = g.size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5,
                            indexing="ij")
    gd = g.to(dtype=torch.float64)
    sxx, sxy, syy = gd.covariance_native().unbind(1)
    det = sxx * syy - sxy * sxy
    a, b, c = syy / det, -sxy / det, sxx / det
    dx = xs.flatten()[:, None] - gd.means[:, 0] * w
    dy = ys.flatten()[:, None] - gd.means[:, 1] * h
    power = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    return torch.where(power <= 4.5, torch.exp(-power), torch.zeros_like(power))


def unclamped_sse(g: Gaussians, colours: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    out = render(with_colours(g, colours).to(dtype=torch.float64), backend="reference")
    return ((out - image.double()) ** 2).flatten(1).sum(1)


@pytest.mark.parametrize("method", ["structure", "random"])
def test_matches_dense_damped_least_squares(method: str) -> None:
    img = natural(10, 12)
    g = initialise(img, 16, method, seed=1)
    a = dense_matrix(g)
    # the oracle matrix is the reference renderer's map: A x == render(x)
    x = torch.rand(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = render(with_colours(g.to(dtype=torch.float64), x), backend="reference")
    assert torch.allclose((a @ x).t().reshape(3, 10, 12), ref, atol=1e-12)
    b = img.double().flatten(1).t()  # (pixels, C)
    lam = 1e-4 * LinearRender(g).mean_diagonal()
    c0 = g.colours.double()
    eye = torch.eye(g.n, dtype=torch.float64)
    exact = torch.linalg.solve(a.t() @ a + lam * eye, a.t() @ b + lam * c0)
    scale = max(1.0, float(exact.abs().max()))
    # float64 + reference backend: CG converges to the dense solution
    x64 = solve_colours(g.to(dtype=torch.float64), img.double(), iters=60, tol=1e-12, backend="reference")
    assert x64.dtype == torch.float64
    assert float((x64 - exact).abs().max()) < 1e-7 * scale
    # the default float32 path (numba kernels, approximate exp) to float32 accuracy
    x32 = solve_colours(g, img, iters=60, tol=1e-7)
    assert x32.dtype == torch.float32
    assert float((x32.double() - exact).abs().max()) < 1e-3 * scale
    # damping 0 gives the plain least-squares solution
    x0 = solve_colours(g, img, iters=60, tol=1e-7, damping=0.0)
    lstsq = torch.linalg.lstsq(a, b).solution
    assert float((x0.double() - lstsq).abs().max()) < 1e-3 * max(1.0, float(lstsq.abs().max()))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iters", [1, 3, 20])
def test_never_increases_unclamped_error(seed: int, iters: int) -> None:
    img = natural(24, 32)
    method = ("random", "gradient", "structure", "random")[seed]
    g = initialise(img, 60, method, seed=seed)
    before = unclamped_sse(g, g.colours, img)
    x = solve_colours(g, img, iters=iters)
    after = unclamped_sse(g, x, img)
    assert (after <= before * (1 + 1e-6)).all()
    if method != "random" and iters >= 20:  # with image-derived geometry the solve helps a lot
        assert float(after.sum()) < 0.7 * float(before.sum())
    # more iterations: no worse (CG decreases the damped objective monotonically)
    assert (unclamped_sse(g, solve_colours(g, img, iters=iters + 5), img) <= after * (1 + 1e-4) + 1e-9).all()


@pytest.mark.parametrize("channels", [1, 4])
def test_channels(channels: int) -> None:
    img = natural(16, 20)
    img = img[:1] if channels == 1 else torch.cat((img, img[:1]), 0)
    g = initialise(img, 30, "structure")
    x = solve_colours(g, img, iters=10)
    assert x.shape == (30, channels)
    assert (unclamped_sse(g, x, img) <= unclamped_sse(g, g.colours, img) * (1 + 1e-6)).all()


def test_invisible_gaussian_keeps_its_colour_and_iters_zero() -> None:
    img = natural(8, 8)
    means = torch.tensor([[0.3, 0.4], [0.6, 0.6], [0.375, 0.375]])  # last: on a pixel corner
    cov = torch.tensor([[2.0, 0.0, 2.0], [1.5, 0.3, 1.0], [0.02, 0.0, 0.02]])  # last: touches no pixel centre
    g = Gaussians(means, cov, torch.full((3, 3), 0.25), "cholesky", (8, 8))
    x = solve_colours(g, img, iters=10)
    assert torch.equal(x[2], g.colours[2])
    assert not torch.equal(x[0], g.colours[0])
    assert torch.equal(solve_colours(g, img, iters=0), g.colours)


def test_errors() -> None:
    img = natural(8, 8)
    g = initialise(img, 5, "random")
    with pytest.raises(SplatpixError, match="shape"):
        solve_colours(g, img[:, :4])
    with pytest.raises(SplatpixError, match="iterations"):
        solve_colours(g, img, iters=-1)
    with pytest.raises(SplatpixError, match="damping"):
        solve_colours(g, img, damping=float("nan"))
    with pytest.raises(SplatpixError, match="backend"):
        solve_colours(g, img, backend="gpu-magic")


def test_linear_render_adjoint() -> None:
    img = natural(10, 12)
    g = initialise(img, 15, "structure").to(dtype=torch.float64)
    op = LinearRender(g, backend="reference")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(15, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 10, 12, generator=gen, dtype=torch.float64)
    # <A x, y> = <x, A^T y>
    assert torch.allclose((op.forward(x) * y).sum(), (x * op.adjoint(y)).sum(), rtol=1e-10)
    ax, atax = op.normal(x)
    assert torch.allclose(atax, op.adjoint(ax), rtol=1e-10, atol=1e-12)
