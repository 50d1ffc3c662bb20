"""Rasteriser tests: numba vs the torch reference, gradchecks, edge cases, resolution independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from splatpix.eval.kernel import random_pixel_gaussians
from splatpix.model.gaussians import (
    Gaussians,
    conic_from_covariance,
    covariance_from_params,
    params_from_covariance,
    project,
)
from splatpix.render import rasterize, render
from splatpix.render.reference import rasterize_reference


def brute_force(means, conic, colours, height, width):
    """Independent float64 evaluation of the sum over every (pixel, Gaussian) pair."""
    m = means.detach().double().numpy()
    q = conic.detach().double().numpy()
    c = colours.detach().double().numpy()
    ys, xs = np.mgrid[0:height, 0:width]
    px = xs + 0.5
    py = ys + 0.5
    out = np.zeros((c.shape[1], height, width))
    for i in range(m.shape[0]):
        a, b, cc = q[i]
        if not (a * cc - b * b > 0 and a > 0):
            continue
        dx = px - m[i, 0]
        dy = py - m[i, 1]
        p = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
        w = np.where(p <= 4.5, np.exp(-p), 0.0)
        out += w[None] * c[i][:, None, None]
    return torch.from_numpy(out)


def random_case(n, height, width, smin=0.5, smax=6.0, channels=3, seed=0, margin=0.2):
    """Random pixel-space Gaussians, some of them off the image (margin), in float64."""
    gen = torch.Generator().manual_seed(seed)
    lo = torch.tensor([-margin * width, -margin * height], dtype=torch.float64)
    span = torch.tensor([(1 + 2 * margin) * width, (1 + 2 * margin) * height], dtype=torch.float64)
    means = lo + span * torch.rand(n, 2, generator=gen, dtype=torch.float64)
    s = smin + (smax - smin) * torch.rand(n, 2, generator=gen, dtype=torch.float64)
    th = torch.rand(n, generator=gen, dtype=torch.float64) * 2 * math.pi
    cov = covariance_from_params(torch.stack((s[:, 0], s[:, 1], th), 1), "rs")
    conic, _ = conic_from_covariance(cov)
    colours = torch.rand(n, channels, generator=gen, dtype=torch.float64) * 2 - 0.5
    return means, conic, colours


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_reference_matches_brute_force(channels):
    m, q, c = random_case(60, 37, 53, channels=channels, seed=channels)
    ref = rasterize_reference(m, q, c, 37, 53)
    assert torch.allclose(ref, brute_force(m, q, c, 37, 53), atol=1e-12)


@pytest.mark.parametrize("seed,channels,size", [(0, 3, (64, 80)), (1, 1, (33, 47)), (2, 4, (50, 29)),
                                                # narrow images, around one 8-lane SIMD vector: spans wider than
                                                # the image, clipped at both edges
                                                (3, 3, (9, 5)), (4, 3, (21, 13)), (5, 1, (12, 7)), (6, 2, (8, 8))])
def test_numba_matches_reference_values_and_gradients(seed, channels, size):
    h, w = size
    m, q, c = random_case(400, h, w, channels=channels, seed=seed)
    # both backends see the same (float32-representable) inputs, so only arithmetic precision differs
    m, q, c = (t.float().double() for t in (m, q, c))
    m64, q64, c64 = (t.clone().requires_grad_() for t in (m, q, c))
    m32, q32, c32 = (t.float().requires_grad_() for t in (m, q, c))
    ref = rasterize(m64, q64, c64, h, w, backend="reference")
    out = rasterize(m32, q32, c32, h, w, backend="numba")
    assert out.dtype == torch.float32 and out.shape == (channels, h, w)
    # float32 sums: the error grows with the value (400 Gaussians on a 9 x 5 image sum to ~70)
    assert (out.double() - ref).abs().max() < 1e-5 * ref.abs().max().clamp_min(1.0)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed + 10), dtype=torch.float64)
    gr = torch.autograd.grad((ref * g).sum(), (m64, q64, c64))
    gn = torch.autograd.grad((out * g.float()).sum(), (m32, q32, c32))
    for a, b in zip(gr, gn, strict=True):
        scale = a.abs().max().clamp_min(1.0)
        assert ((a - b.double()).abs().max() / scale) < 2e-5


def test_auto_backend_uses_numba_for_float32_cpu():
    m, q, c = random_case(50, 20, 30, seed=3)
    a = rasterize(m.float(), q.float(), c.float(), 20, 30, backend="auto")
    assert a.grad_fn is None or "Numba" in type(a.grad_fn).__name__
    m32 = m.float().requires_grad_()
    b = rasterize(m32, q.float(), c.float(), 20, 30, backend="auto")
    assert "Numba" in type(b.grad_fn).__name__
    d = rasterize(m.requires_grad_(), q, c, 20, 30, backend="auto")  # float64 -> reference
    assert "Numba" not in type(d.grad_fn).__name__


def test_gradcheck_reference_float64():
    m, q, c = random_case(5, 9, 11, smin=1.0, smax=3.0, seed=4, margin=0.0)
    inputs = tuple(t.clone().requires_grad_() for t in (m, q, c))
    assert torch.autograd.gradcheck(lambda a, b, d: rasterize_reference(a, b, d, 9, 11), inputs,
                                    eps=1e-6, atol=1e-6)


def test_gradcheck_through_both_parameterisations():
    for param in ("cholesky", "rs"):
        gen = torch.Generator().manual_seed(5)
        means = torch.rand(4, 2, generator=gen, dtype=torch.float64) * 0.6 + 0.2
        cov = torch.tensor([[2.0, 0.3, 1.5], [1.0, -0.2, 2.0], [3.0, 0.0, 1.0], [1.5, 0.5, 1.5]],
                           dtype=torch.float64)
        params = params_from_covariance(cov, param)
        colours = torch.rand(4, 3, generator=gen, dtype=torch.float64)

        def f(mm, pp, cc, param=param):
            return render(Gaussians(mm, pp, cc, param, (10, 12)), backend="reference")

        inputs = tuple(t.clone().requires_grad_() for t in (means, params, colours))
        assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


def test_parameterisations_round_trip_and_agree():
    gen = torch.Generator().manual_seed(6)
    s = 0.5 + 3 * torch.rand(20, 2, generator=gen, dtype=torch.float64)
    th = torch.rand(20, generator=gen, dtype=torch.float64) * math.pi
    cov = covariance_from_params(torch.stack((s[:, 0], s[:, 1], th), 1), "rs")
    for param in ("cholesky", "rs"):
        back = covariance_from_params(params_from_covariance(cov, param), param)
        assert torch.allclose(back, cov, atol=1e-10)
    means = torch.rand(20, 2, generator=gen, dtype=torch.float64)
    colours = torch.rand(20, 3, generator=gen, dtype=torch.float64)
    a = render(Gaussians(means, params_from_covariance(cov, "cholesky"), colours, "cholesky", (30, 40)))
    b = render(Gaussians(means, params_from_covariance(cov, "rs"), colours, "rs", (30, 40)))
    assert torch.allclose(a, b, atol=1e-9)


def test_no_cap_per_tile():
    """600 Gaussians on one 16x16 tile: all of them count (GaussianImage keeps only 256)."""
    n = 600
    gen = torch.Generator().manual_seed(7)
    means = 4 + 8 * torch.rand(n, 2, generator=gen)
    conic, _ = conic_from_covariance(torch.tensor([[9.0, 0.0, 9.0]]).repeat(n, 1))
    colours = torch.full((n, 1), 1.0 / n)
    expected = brute_force(means, conic, colours, 16, 16)
    for backend in ("numba", "reference"):
        out = rasterize(means, conic, colours, 16, 16, backend=backend)
        assert torch.allclose(out.double(), expected, atol=1e-5)
    # the centre pixel is covered by every Gaussian
    single = brute_force(means[:256], conic[:256], colours[:256], 16, 16)
    assert expected[0, 8, 8] > single[0, 8, 8] * 2.0


def test_off_image_and_degenerate_gaussians():
    means = torch.tensor([[-50.0, 10.0], [10.0, 500.0], [-2.0, 5.0], [30.0, 12.0], [8.0, 8.0], [5.0, 5.0]])
    cov = torch.tensor([
        [4.0, 0.0, 4.0],       # far left: invisible
        [4.0, 0.0, 4.0],       # far below: invisible
        [9.0, 0.0, 9.0],       # partly off the left edge
        [9.0, 2.0, 4.0],       # partly off the right edge
        [1.0, 1.0, 1.0],       # singular (det = 0): skipped
        [4.0, 2.0 - 1e-7, 1.0],  # near-singular: finite
    ])
    conic, valid = conic_from_covariance(cov)
    assert not bool(valid[4])
    assert bool(torch.isfinite(conic).all())
    colours = torch.ones(6, 3)
    for backend in ("numba", "reference"):
        m = means.clone().requires_grad_()
        q = conic.clone().requires_grad_()
        c = colours.clone().requires_grad_()
        out = rasterize(m, q, c, 24, 32, backend=backend)
        assert torch.isfinite(out).all()
        out.sum().backward()
        for t in (m, q, c):
            assert torch.isfinite(t.grad).all()
        assert c.grad[0].abs().sum() == 0 and c.grad[1].abs().sum() == 0
        assert c.grad[2, 0] > 0 and c.grad[3, 0] > 0
    ref = rasterize(means.double(), conic.double(), colours.double(), 24, 32, backend="reference")
    num = rasterize(means, conic, colours, 24, 32, backend="numba")
    assert (ref - num.double()).abs().max() < 1e-5


def test_empty_and_tiny_outputs():
    for backend in ("numba", "reference"):
        empty = rasterize(torch.zeros(0, 2), torch.zeros(0, 3), torch.zeros(0, 3), 7, 5, backend=backend)
        assert empty.shape == (3, 7, 5) and empty.abs().sum() == 0
        m = torch.tensor([[0.5, 0.5]], requires_grad=True)
        q = torch.tensor([[1.0, 0.0, 1.0]], requires_grad=True)
        c = torch.tensor([[0.7, 0.2, 0.1]], requires_grad=True)
        one = rasterize(m, q, c, 1, 1, backend=backend)
        assert one.shape == (3, 1, 1)
        assert torch.allclose(one.flatten(), torch.tensor([0.7, 0.2, 0.1]), atol=1e-6)
        one.sum().backward()
        assert torch.allclose(c.grad, torch.ones(1, 3), atol=1e-6)
    with pytest.raises(ValueError):
        rasterize(torch.zeros(0, 2), torch.zeros(0, 3), torch.zeros(0, 3), 0, 5)


def test_reference_chunking_is_exact_and_bounded():
    m, q, c = random_case(300, 70, 90, seed=8)
    whole = rasterize_reference(m, q, c, 70, 90, chunk_elements=1 << 30)
    chunked = rasterize_reference(m, q, c, 70, 90, chunk_elements=1024)
    assert torch.allclose(whole, chunked, atol=1e-12)
    # gradients through checkpointed chunks equal the unchunked ones
    ins1 = [t.clone().requires_grad_() for t in (m, q, c)]
    ins2 = [t.clone().requires_grad_() for t in (m, q, c)]
    g1 = torch.autograd.grad(rasterize_reference(*ins1, 70, 90, chunk_elements=1 << 30).sum(), ins1)
    g2 = torch.autograd.grad(rasterize_reference(*ins2, 70, 90, chunk_elements=1024).sum(), ins2)
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_large_output_few_gaussians():
    """A 2048x3072 render of a handful of Gaussians: cost scales with the covered pixels, not the image."""
    means = torch.tensor([[10.0, 10.0], [3000.0, 2000.0], [1500.0, 1000.0]])
    conic, _ = conic_from_covariance(torch.tensor([[25.0, 0.0, 25.0]]).repeat(3, 1))
    colours = torch.ones(3, 3)
    for backend in ("numba", "reference"):
        out = rasterize(means, conic, colours, 2048, 3072, backend=backend)
        assert out.shape == (3, 2048, 3072)
        assert abs(float(out[0, 999, 1499]) - math.exp(-0.5 * 0.5 / 25)) < 1e-5
        assert int((out[0] > 0).sum()) < 3 * 4 * 16 * 16


def _model(seed=9, n=80, size=(40, 60), param="cholesky"):
    gen = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    s = 0.8 + 3 * torch.rand(n, 2, generator=gen, dtype=torch.float64)
    th = torch.rand(n, generator=gen, dtype=torch.float64) * math.pi
    cov = covariance_from_params(torch.stack((s[:, 0], s[:, 1], th), 1), "rs")
    colours = torch.rand(n, 3, generator=gen, dtype=torch.float64)
    return Gaussians(means, params_from_covariance(cov, param), colours, param, size)


def test_resolution_independence_scale_and_crop():
    g = _model()
    h0, w0 = g.size
    # 2x: the continuous image evaluated at the 2x pixel centres
    m2, c2 = project(g, 2 * h0, 2 * w0)
    q2, _ = conic_from_covariance(c2)
    big = render(g, scale=2.0)
    assert big.shape == (3, 2 * h0, 2 * w0)
    assert torch.allclose(big, brute_force(m2, q2, g.colours, 2 * h0, 2 * w0), atol=1e-10)
    # a crop aligned to native pixels equals that block of the native render
    full = render(g)
    crop = render(g, 10, 20, window=(15 / w0, 5 / h0, 35 / w0, 15 / h0))
    assert torch.allclose(crop, full[:, 5:15, 15:35], atol=1e-10)
    # 2x of a crop equals the crop of the 2x render
    crop2 = render(g, 20, 40, window=(15 / w0, 5 / h0, 35 / w0, 15 / h0))
    assert torch.allclose(crop2, big[:, 10:30, 30:70], atol=1e-10)
    # covariances scale with the output: same normalised footprint at any size
    _, cov1 = project(g, h0, w0)
    _, cov2 = project(g, 2 * h0, 3 * w0)
    assert torch.allclose(cov2[:, 0], 9 * cov1[:, 0]) and torch.allclose(cov2[:, 2], 4 * cov1[:, 2])
    # float32 numba path agrees with the float64 reference at another size
    g32 = g.to(dtype=torch.float32)
    num = render(g32, 57, 33)
    assert (num.double() - render(g32.to(dtype=torch.float64), 57, 33)).abs().max() < 1e-5


def test_render_clamp_and_errors():
    g = _model()
    g.colours.mul_(5)
    assert render(g, clamp=True).max() <= 1.0
    assert render(g).max() > 1.0
    with pytest.raises(ValueError):
        render(g, 10, 10, scale=2.0)
    with pytest.raises(ValueError):
        render(g, window=(0.5, 0.0, 0.5, 1.0))
    with pytest.raises(ValueError):
        Gaussians(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError):
        Gaussians(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(3, 3), param="affine")


def test_numba_backward_matches_on_benchmark_workload():
    """The benchmark's workload (sigma in [0.7, 3] px) on a smaller canvas: values and gradients."""
    m, q, c = random_pixel_gaussians(3000, 96, 128, seed=11)
    ins32 = [t.clone().requires_grad_() for t in (m, q, c)]
    ins64 = [t.double().requires_grad_() for t in (m, q, c)]
    out = rasterize(*ins32, 96, 128, backend="numba")
    ref = rasterize(*ins64, 96, 128, backend="reference")
    assert (out.double() - ref).abs().max() < 1e-5
    g = torch.rand(ref.shape, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    gn = torch.autograd.grad((out * g.float()).sum(), ins32)
    gr = torch.autograd.grad((ref * g).sum(), ins64)
    for a, b in zip(gr, gn, strict=True):
        assert ((a - b.double()).abs().max() / a.abs().max().clamp_min(1.0)) < 2e-5


_BIG_SCRIPT = """
import resource, sys, torch
from splatpix.model.gaussians import conic_from_covariance
from splatpix.render import rasterize
H, W = 4320, 7680
n = int(sys.argv[2])
gen = torch.Generator().manual_seed(0)
means = torch.rand(n, 2, generator=gen) * torch.tensor([W, H])
conic, _ = conic_from_covariance(torch.tensor([[100.0 ** 2, 0.0, 60.0 ** 2]]).repeat(n, 1))
colours = torch.rand(n, 3, generator=gen)
ins = [t.clone().requires_grad_() for t in (means, conic, colours)]
out = rasterize(*ins, H, W, backend=sys.argv[1])
out.sum().backward()
print(float(out.detach().double().sum()), float(ins[0].grad.abs().sum()),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _big(backend: str, n: int) -> tuple[float, float, int]:
    import os
    import subprocess
    import sys

    # A fixed mmap threshold: glibc otherwise raises it after the first large free, so later image-sized buffers
    # come from the heap and peak RSS then depends on fragmentation (seen: 2.2-3.1 GB for the same run). With it
    # fixed, big buffers are mmapped and returned on free, and peak RSS is repeatable to a few MB.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    run = subprocess.run([sys.executable, "-c", _BIG_SCRIPT, backend, str(n)], capture_output=True, text=True,
                         check=True, env=env)
    total, gsum, rss_mb = run.stdout.split()
    return float(total), float(gsum), int(rss_mb)


def test_8k_output_memory_is_bounded():
    """8K (7680x4320) renders of 200 and 600 large Gaussians (~34M and ~100M pixel-Gaussian pairs), forward +
    backward, each in a fresh process. Peak memory is a handful of image-sized buffers and does not grow with
    the number of pairs (an unchunked pair list would need several GB more per 100M pairs); backends agree."""
    _, _, rss_small = _big("reference", 200)
    ref_total, ref_g, rss_large = _big("reference", 600)
    assert rss_large < 3000, f"reference: peak RSS {rss_large} MB"
    assert rss_large < rss_small + 300, f"reference peak RSS grew {rss_small} -> {rss_large} MB"
    num_total, num_g, rss_numba = _big("numba", 600)
    assert rss_numba < 2500, f"numba: peak RSS {rss_numba} MB"
    assert abs(num_total - ref_total) < 1e-5 * abs(ref_total)
    assert abs(num_g - ref_g) < 1e-3 * abs(ref_g)


def test_clamp_without_gradient_matches_torch_clamp():
    """render(clamp=True) clips on numba's threads when no gradient is needed (cpu.clamp01_): the same values as
    torch's clamp, NaN kept; with a gradient the differentiable torch clamp is used."""
    from splatpix.render import cpu

    m, q, c = random_case(300, 40, 56, seed=5)
    arr = rasterize(m.float(), q.float(), c.float() * 3.0, 40, 56)  # colours x3: values well outside [0, 1]
    assert float(arr.min()) < 0.0 and float(arr.max()) > 1.0
    arr[0, 3, 4] = float("nan")
    ref = arr.clamp(0.0, 1.0)
    got = arr.clone()
    cpu.clamp01_(got.numpy())
    assert torch.equal(torch.isnan(got), torch.isnan(ref))
    assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(ref))
    g = _model()
    g.colours.mul_(5)
    with torch.no_grad():
        fast = render(g, clamp=True)
    assert torch.equal(fast, render(g).detach().clamp(0.0, 1.0))
    g.colours.requires_grad_(True)
    slow = render(g, clamp=True)
    assert slow.requires_grad and torch.equal(slow.detach(), fast)


def test_needle_gaussians_are_not_drawn():
    """A needle (conic ~1e6 whose float32 determinant is mostly rounding; taken from a QAT render of kodim23 at
    N = 9000 that produced inf) is outside both rasterisers' support (a c > MAX_CONDITION det): finite, zero output and
    gradients; a Gaussian just inside the bound is drawn by both, and they agree."""
    from splatpix.render import cpu, reference

    assert cpu.MAX_CONDITION == reference.MAX_CONDITION
    m = torch.tensor([[189.0, 232.75]], requires_grad=True)
    q = torch.tensor([[1.1507456e6, 9.1476769e5, 7.2718062e5]], requires_grad=True)
    c = torch.tensor([[0.18, 0.176, 0.13]], requires_grad=True)
    for backend in ("numba", "reference"):
        out = rasterize(m, q, c, 512, 768, backend=backend)
        assert bool(torch.isfinite(out).all()) and float(out.detach().abs().max()) == 0.0
        out.sum().backward()
        assert all(bool(torch.isfinite(t.grad).all()) for t in (m, q, c))
    # an elongated Gaussian inside the bound (a c / det = 0.9e6): drawn, and the kernels agree with the oracle
    a, cc = 1.0, 4.0
    b = -math.sqrt(a * cc * (1 - 1 / 0.9e6))
    q2 = torch.tensor([[a, b, cc]], dtype=torch.float64)
    m2 = torch.tensor([[40.3, 30.6]], dtype=torch.float64)
    c2 = torch.tensor([[0.5, -0.2, 0.1]], dtype=torch.float64)
    ref = rasterize(m2, q2, c2, 64, 80, backend="reference")
    got = rasterize(m2.float(), q2.float(), c2.float(), 64, 80, backend="numba")
    assert float(ref.abs().max()) > 0.1
    assert float((got.double() - ref).abs().max()) < 1e-2
