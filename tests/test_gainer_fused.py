"""GaINeR's frozen-means fast path: the fused kernels against their torch references (values and gradients) and the
plan against the field (small and fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import gainer_config

from splatpix.gainer import GainerField
from splatpix.gainer.fused import (
    compact_grid,
    compact_grid_reference,
    gaussian_aggregate,
    gaussian_aggregate_reference,
)
from splatpix.gainer.hashgrid import hashgrid_reference
from splatpix.gainer.plan import FrozenPlan, _transpose, grid_corners


def pixel_coords(h: int, w: int) -> torch.Tensor:
    us = (torch.arange(w, dtype=torch.float64) + 0.5) / w
    vs = (torch.arange(h, dtype=torch.float64) + 0.5) / h
    return torch.stack(torch.meshgrid(vs, us, indexing="ij")[::-1], -1).reshape(-1, 2).to(torch.float32)


def randomised(seed: int = 0, size: tuple[int, int] = (12, 18), **kw) -> GainerField:
    f = GainerField(gainer_config(**kw), size=size, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        f.grid.table.uniform_(-1.0, 1.0, generator=gen)
        f.cov_params[:, 0] += 0.3 * torch.randn(f.n, generator=gen)
        f.cov_params[:, 1] = 0.05 * torch.randn(f.n, generator=gen)
        f.cov_params[:, 2] += 0.3 * torch.randn(f.n, generator=gen)
    return f


@pytest.mark.parametrize("mean", [False, True])
def test_gaussian_aggregate_matches_reference(mean):
    gen = torch.Generator().manual_seed(3)
    n, p, k, d = 40, 60, 5, 7
    means = torch.rand((n, 2), generator=gen)
    q = torch.rand((p, 2), generator=gen)
    idx = torch.randint(0, n, (p, k), generator=gen)
    idx[torch.rand((p, k), generator=gen) < 0.2] = -1
    idx[0] = -1  # a query with no neighbour: zero features in both modes
    cov = (torch.randn((n, 3), generator=gen) * 0.3 + torch.tensor([-1.5, 0.0, -1.5])).requires_grad_(True)
    feats = torch.randn((n, d), generator=gen).requires_grad_(True)
    idx32 = np.ascontiguousarray(idx.numpy().astype(np.int32))
    starts, pairs = _transpose(idx32, n)
    agg, w = gaussian_aggregate(q.numpy(), idx32, means.numpy(), cov, feats, starts, pairs, mean)
    ref, w_ref = gaussian_aggregate_reference(q, idx, means, cov, feats, mean)
    torch.testing.assert_close(agg, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w, w_ref, rtol=1e-5, atol=1e-7)
    assert float(agg.detach()[0].abs().max()) == 0.0
    g = torch.randn((p, d), generator=gen)
    got = torch.autograd.grad(agg, [cov, feats], g)
    want = torch.autograd.grad(ref, [cov, feats], g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compact_grid_matches_reference():
    gen = torch.Generator().manual_seed(4)
    n, lev, f, u = 30, 3, 2, 50
    rows = torch.randint(0, u, (n, lev, 4), generator=gen).to(torch.int32)
    cw = torch.rand((n, lev, 4), generator=gen)
    table = torch.randn((u, f), generator=gen).requires_grad_(True)
    out = compact_grid(rows.numpy(), cw.numpy(), table)
    ref = compact_grid_reference(rows, cw, table)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, table, g)[0], torch.autograd.grad(ref, table, g)[0])


def test_grid_corners_reproduce_the_hash_grid():
    f = randomised()
    cfg = f.cfg.hashgrid
    pts = f.means.detach()
    slots, weights = grid_corners(pts.numpy(), cfg)
    table = f.grid.table.detach()
    lev = torch.arange(cfg.n_levels)[None, :, None]
    got = (torch.from_numpy(weights)[..., None] * table[lev, torch.from_numpy(slots)]).sum(2).reshape(len(pts), -1)
    torch.testing.assert_close(got, hashgrid_reference(pts, table, cfg), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_plan_forward_and_gradients_equal_the_field(aggregation):
    f = randomised(aggregation=aggregation)
    q = pixel_coords(*f.size)
    plan = FrozenPlan(f, q)
    assert plan.n_rows < f.cfg.hashgrid.n_levels * f.cfg.hashgrid.table_size
    table = plan.gather_table(f.grid.table).requires_grad_(True)
    pred = plan.forward(f, [table])
    ref = f(q)
    torch.testing.assert_close(pred, ref, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(ref)
    got = torch.autograd.grad((pred * g).sum(), [f.cov_params, table, *f.mlp.parameters()])
    want = torch.autograd.grad((ref * g).sum(), [f.cov_params, f.grid.table, *f.mlp.parameters()])
    torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got[1], plan.gather_table(want[1]), rtol=1e-4, atol=1e-6)
    for a, b in zip(got[2:], want[2:], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # the rows outside the compact table get no gradient: scattering the compact gradient gives the full one
    full = torch.zeros_like(want[1])
    plan.scatter_table(got[1], full)
    torch.testing.assert_close(full, want[1], rtol=1e-4, atol=1e-6)
    # features in the plan's order, the field's order through inv_perm
    torch.testing.assert_close(plan.gaussian_features([table])[plan.inv_perm], f.gaussian_features(),
                               rtol=1e-5, atol=1e-6)


def test_plan_with_a_separate_mask_model():
    f = randomised(channels=4, alpha_model="separate")
    q = pixel_coords(*f.size)
    plan = FrozenPlan(f, q)
    tables = [plan.gather_table(f.grid.table), plan.gather_table(f.mask_grid.table)]
    torch.testing.assert_close(plan.forward(f, tables), f(q), rtol=1e-5, atol=1e-6)
