"""Hash-grid tests: numba vs the torch reference (values and gradients), gradcheck, edge cases, config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from splatpix.errors import SplatpixError
from splatpix.gainer import HashGrid, HashGridConfig, hashgrid, hashgrid_reference
from splatpix.gainer.hashgrid import corner_index, init_table

# L=4, T=2^10: resolutions 4, 8, 16, 32 -> (N+1)^2 = 25, 81, 289 (dense) and 1089 > 1024 (hashed)
SMALL = HashGridConfig(n_levels=4, features_per_level=2, log2_table_size=10, base_resolution=4, max_resolution=32)


def random_table(cfg: HashGridConfig, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(cfg.n_levels, cfg.table_size, cfg.features_per_level, generator=gen, dtype=dtype)


def random_points(n: int, seed: int = 1, lo: float = 0.0, hi: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, 2, generator=gen, dtype=dtype)


def both_backends(points, table, cfg, grad_out, chunk_points=1 << 20):
    """Outputs and (grad_points, grad_table) of the numba and reference backends."""
    res = []
    for backend in ("numba", "reference"):
        p = points.clone().requires_grad_(True)
        t = table.clone().requires_grad_(True)
        out = hashgrid(p, t, cfg, backend=backend, chunk_points=chunk_points)
        out.backward(grad_out)
        res.append((out.detach(), p.grad, t.grad))
    return res


def assert_rel_close(a, b, rtol):
    scale = b.abs().max().clamp_min(1e-12)
    err = (a - b).abs().max()
    assert err <= rtol * scale, f"max abs err {float(err):.3g} vs scale {float(scale):.3g}"


def test_config_levels():
    assert SMALL.resolutions == (4, 8, 16, 32)
    assert SMALL.dense_levels == (True, True, True, False)
    assert SMALL.output_dim == 8
    d = HashGridConfig()
    r = d.resolutions
    assert len(r) == 16 and r[0] == 16 and r[-1] == 2048
    b = math.exp((math.log(2048) - math.log(16)) / 15)
    assert r == tuple(math.floor(16 * b**level * (1 + 1e-9)) for level in range(16))
    assert list(r) == sorted(r)
    assert HashGridConfig.from_preset("paper").log2_table_size == 21
    assert HashGridConfig.from_preset("paper", max_resolution=8192).resolutions[-1] == 8192
    assert HashGridConfig(n_levels=1, base_resolution=7, max_resolution=7).resolutions == (7,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_levels": 0},
        {"n_levels": 2.0},
        {"n_levels": True},
        {"features_per_level": 0},
        {"log2_table_size": 0},
        {"log2_table_size": 40},
        {"base_resolution": 0},
        {"base_resolution": 64, "max_resolution": 32},
        {"max_resolution": -5},
        {"max_resolution": 1 << 30},
    ],
)
def test_invalid_config(kwargs):
    with pytest.raises(SplatpixError) as e:
        HashGridConfig(**kwargs)
    assert "\n" not in str(e.value)


def test_bad_inputs():
    table = init_table(SMALL)
    with pytest.raises(SplatpixError):
        hashgrid(torch.zeros(5, 3), table, SMALL)
    with pytest.raises(SplatpixError):
        hashgrid(torch.zeros(5, 2, dtype=torch.int64), table, SMALL)
    with pytest.raises(SplatpixError):
        hashgrid(torch.zeros(5, 2), table[:, :10], SMALL)
    with pytest.raises(SplatpixError):
        hashgrid(torch.zeros(5, 2), table, SMALL, backend="cuda")
    with pytest.raises(SplatpixError):
        HashGridConfig.from_preset("nope")


def test_corner_index_matches_uint32_hash():
    t = 1 << 10
    gen = np.random.default_rng(0)
    xs = gen.integers(0, 33, 200)
    ys = gen.integers(0, 33, 200)
    got = corner_index(torch.from_numpy(xs), torch.from_numpy(ys), 32, t).tolist()
    want = [((int(x) * 1) ^ ((int(y) * 2654435761) % 2**32)) % 2**32 % t for x, y in zip(xs, ys, strict=True)]
    assert got == want
    dense = corner_index(torch.from_numpy(xs % 9), torch.from_numpy(ys % 9), 8, t).tolist()
    assert dense == [int(y % 9) * 9 + int(x % 9) for x, y in zip(xs, ys, strict=True)]


def test_hashed_level_has_collisions():
    n = SMALL.resolutions[3]
    assert not SMALL.dense_levels[3]
    iy, ix = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    idx = corner_index(ix.reshape(-1), iy.reshape(-1), n, SMALL.table_size)
    assert idx.min() >= 0 and idx.max() < SMALL.table_size
    assert idx.unique().numel() < (n + 1) ** 2  # collisions exist
    # two distinct corners sharing a slot get the same feature; numba and reference agree on it
    table = random_table(SMALL)
    pts = random_points(3000, seed=5)
    on, rf = hashgrid(pts, table, SMALL, "numba"), hashgrid(pts, table, SMALL, "reference")
    torch.testing.assert_close(on, rf, atol=1e-5, rtol=0)


def test_dense_level_reproduces_linear_function():
    # a dense level whose slot (cx, cy) holds (cx, cy) interpolates to exactly (x N, y N)
    cfg = HashGridConfig(n_levels=1, features_per_level=2, log2_table_size=10, base_resolution=16,
                         max_resolution=16)
    n = 16
    iy, ix = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    table = torch.zeros(1, cfg.table_size, 2)
    slots = corner_index(ix.reshape(-1), iy.reshape(-1), n, cfg.table_size)
    table[0, slots, 0] = ix.reshape(-1).float()
    table[0, slots, 1] = iy.reshape(-1).float()
    pts = random_points(500, seed=3, lo=-0.2, hi=1.2)
    for backend in ("numba", "reference"):
        out = hashgrid(pts, table, cfg, backend)
        torch.testing.assert_close(out, pts.clamp(0, 1) * n, atol=2e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_numba_matches_reference(seed):
    table = random_table(SMALL, seed)
    pts = random_points(4000, seed=seed + 10, lo=-0.05, hi=1.05)
    gen = torch.Generator().manual_seed(seed + 20)
    grad_out = torch.randn(4000, SMALL.output_dim, generator=gen)
    (on, gpn, gtn), (orf, gpr, gtr) = both_backends(pts, table, SMALL, grad_out, chunk_points=1500)
    assert on.shape == (4000, SMALL.output_dim) and on.dtype == torch.float32
    torch.testing.assert_close(on, orf, atol=1e-5, rtol=0)
    assert_rel_close(gtn, gtr, 1e-4)
    assert_rel_close(gpn, gpr, 1e-4)
    # per level and per point, too (the fine level dominates the global scale)
    for lev in range(SMALL.n_levels):
        assert_rel_close(gtn[lev], gtr[lev], 1e-4)
    torch.testing.assert_close(gpn, gpr, atol=1e-3, rtol=1e-4)


def test_module_auto_backend_and_chunking():
    grid = HashGrid(SMALL, seed=3)
    assert grid.table.shape == (4, 1024, 2) and grid.table.dtype == torch.float32
    assert grid.table.abs().max() <= 1e-4 and grid.table.abs().max() > 0
    torch.testing.assert_close(grid.table.detach(), HashGrid(SMALL, seed=3).table.detach())
    pts = random_points(1000, seed=4)
    out = grid(pts)
    ref = HashGrid(SMALL, seed=3, backend="reference", chunk_points=128)(pts)
    torch.testing.assert_close(out, ref, atol=1e-8, rtol=1e-5)
    out.sum().backward()
    assert grid.table.grad is not None and torch.isfinite(grid.table.grad).all()
    # float64 points go to the reference on "auto"
    out64 = grid(pts.double())
    assert out64.dtype == torch.float64


def test_gradcheck_reference_float64():
    cfg = HashGridConfig(n_levels=2, features_per_level=2, log2_table_size=4, base_resolution=2, max_resolution=8)
    assert cfg.dense_levels == (True, False)
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(2, 16, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    pts = []
    while len(pts) < 6:  # points whose fraction is away from cell boundaries at every level
        p = torch.rand(2, generator=gen, dtype=torch.float64)
        fr = torch.cat([(p * n) % 1.0 for n in cfg.resolutions])
        if ((fr > 0.1) & (fr < 0.9)).all():
            pts.append(p)
    points = torch.stack(pts).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, t: hashgrid_reference(p, t, cfg), (points, table))
    # chunked + checkpointed path
    assert torch.autograd.gradcheck(lambda p, t: hashgrid_reference(p, t, cfg, chunk_points=4), (points, table))


def test_boundaries_and_outside_points():
    table = random_table(SMALL, 7)
    pts = torch.tensor(
        [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.5, 1.0], [-0.5, 2.0], [1.5, -3.0],
         [math.inf, -math.inf], [1e30, 0.25]],
        dtype=torch.float32,
    )
    grad_out = torch.randn(pts.shape[0], SMALL.output_dim, generator=torch.Generator().manual_seed(1))
    (on, gpn, gtn), (orf, gpr, gtr) = both_backends(pts, table, SMALL, grad_out)
    for t in (on, gpn, gtn, orf, gpr, gtr):
        assert torch.isfinite(t).all()
    torch.testing.assert_close(on, orf, atol=1e-5, rtol=0)
    torch.testing.assert_close(on, hashgrid(pts.clamp(0, 1), table, SMALL, "numba"), atol=0, rtol=0)
    assert_rel_close(gtn, gtr, 1e-4)
    torch.testing.assert_close(gpn, gpr, atol=1e-3, rtol=1e-4)
    # outside [0, 1] the clamp has zero derivative; on the closed interval it passes (as torch.clamp)
    outside = (pts < 0) | (pts > 1)
    assert (gpn[outside] == 0).all() and (gpr[outside] == 0).all()
    assert (gpn[~outside] != 0).all()
    # at x = 1 the point sits in the last cell with fraction 1: the encoding is the corner (N, .) value
    for lev, n in enumerate(SMALL.resolutions):
        slot = corner_index(torch.tensor([n]), torch.tensor([n]), n, SMALL.table_size)
        torch.testing.assert_close(on[1, 2 * lev : 2 * lev + 2], table[lev, slot[0]], atol=1e-6, rtol=0)


def test_nan_points_give_nan_features():
    table = random_table(SMALL)
    pts = torch.tensor([[float("nan"), 0.5], [0.3, 0.4]])
    for backend in ("numba", "reference"):
        out = hashgrid(pts, table, SMALL, backend)
        assert torch.isnan(out[0]).all() and torch.isfinite(out[1]).all()


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_empty_points(backend):
    table = random_table(SMALL).requires_grad_(True)
    pts = torch.zeros(0, 2, requires_grad=True)
    out = hashgrid(pts, table, SMALL, backend)
    assert out.shape == (0, SMALL.output_dim)
    out.sum().backward()
    assert pts.grad.shape == (0, 2)
    assert table.grad is not None and (table.grad == 0).all()


def brute_force(points: np.ndarray, table: np.ndarray, cfg: HashGridConfig) -> np.ndarray:
    """Independent float64 evaluation with Python integers (uint32 hash written out)."""
    big_l, t, f = table.shape
    out = np.zeros((points.shape[0], big_l * f))
    for p, (x, y) in enumerate(points.astype(np.float64)):
        x, y = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
        for lev, n in enumerate(cfg.resolutions):
            cx, cy = min(int(math.floor(x * n)), n - 1), min(int(math.floor(y * n)), n - 1)
            tx, ty = x * n - cx, y * n - cy
            for dx in (0, 1):
                for dy in (0, 1):
                    gx, gy = cx + dx, cy + dy
                    if (n + 1) ** 2 <= t:
                        slot = gy * (n + 1) + gx
                    else:
                        slot = ((gx * 1) ^ ((gy * 2654435761) & 0xFFFFFFFF)) % t
                    w = (tx if dx else 1 - tx) * (ty if dy else 1 - ty)
                    out[p, lev * f : (lev + 1) * f] += w * table[lev, slot]
    return out


def test_matches_brute_force():
    table = random_table(SMALL, 11)
    pts = random_points(200, seed=12, lo=-0.1, hi=1.1)
    want = torch.from_numpy(brute_force(pts.numpy(), table.numpy(), SMALL)).float()
    for backend in ("numba", "reference"):
        torch.testing.assert_close(hashgrid(pts, table, SMALL, backend), want, atol=2e-5, rtol=0)
