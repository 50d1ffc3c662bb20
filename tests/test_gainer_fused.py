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
    per = u // lev  # level l's rows are [l per, (l + 1) per), as the plan numbers them
    rows = (torch.randint(0, per, (n, lev, 4), generator=gen) + per * torch.arange(lev)[:, None]).to(torch.int32)
    cw = torch.rand((n, lev, 4), generator=gen)
    table = torch.randn((u, f), generator=gen).requires_grad_(True)
    ref = compact_grid_reference(rows, cw, table)
    g = torch.randn_like(ref)
    want = torch.autograd.grad(ref, table, g)[0]
    out = compact_grid(rows.numpy(), cw.numpy(), table)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(torch.autograd.grad(out, table, g)[0], want)


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


# ---------------------------------------------------------------------------------------------- training


def _train_cfg(**kw):
    from splatpix.gainer import GainerTrainConfig

    base = {"model": gainer_config(n_gaussians=96), "steps": 12, "batch": 0, "log_every": 3, "knn_every": 1,
            "lr_milestones": (0.5,)}
    base.update(kw)
    return GainerTrainConfig(**base)


@pytest.mark.parametrize("channels", [3, 4])
def test_plan_engine_trains_as_the_field_engine(channels):
    """With the neighbours recomputed every step, the fast path is the general path up to float rounding."""
    from helpers import gainer_image

    from splatpix.gainer import fit_gainer

    img = gainer_image(channels, 12, 14)
    fast = fit_gainer(img, _train_cfg(engine="plan"), progress=False)
    slow = fit_gainer(img, _train_cfg(engine="field"), progress=False)
    pf, ps = dict(fast.field.named_parameters()), dict(slow.field.named_parameters())
    assert pf.keys() == ps.keys()
    for k in pf:
        torch.testing.assert_close(pf[k], ps[k], rtol=1e-3, atol=1e-5, msg=k)
    assert abs(fast.psnr_float - slow.psnr_float) < 1e-2
    assert all("psnr_8bit" in e for e in fast.history)
    assert "seconds_per_step" in fast.history[-1]


def test_plan_engine_resume_equals_uninterrupted(tmp_path):
    from helpers import gainer_image

    from splatpix.gainer import fit_gainer
    from splatpix.gainer.checkpoint import load_checkpoint

    img = gainer_image(3, 12, 14)
    cfg = _train_cfg(engine="plan", knn_every=4, log_every=4)
    full = fit_gainer(img, cfg, progress=False)
    ck = tmp_path / "run.ckpt"
    part = fit_gainer(img, cfg, progress=False, checkpoint_path=ck, callback=lambda s, i: s >= 8)
    assert part.steps == 8 and load_checkpoint(ck).step == 8
    resumed = fit_gainer(img, progress=False, resume=ck)
    for (k, a), (_, b) in zip(full.field.named_parameters(), resumed.field.named_parameters(), strict=True):
        assert torch.equal(a.detach(), b.detach()), k


def test_plan_engine_refuses_what_it_cannot_run():
    from helpers import gainer_image

    from splatpix.errors import SplatpixError
    from splatpix.gainer import fit_gainer

    with pytest.raises(SplatpixError, match="plan engine"):
        fit_gainer(gainer_image(3, 8, 8), _train_cfg(engine="plan", batch=16), progress=False)


def test_batched_mlp_matches_the_module():
    from torch import nn

    from splatpix.errors import SplatpixError
    from splatpix.gainer.batched_mlp import BatchedMLP

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(50, 6, requires_grad=True)
    run = BatchedMLP(mlp)
    g = torch.randn(50, 3)
    for _ in range(2):  # the buffers are reused
        y = run(x)
        ref = torch.sigmoid(mlp(x))
        torch.testing.assert_close(y, ref)
        got = torch.autograd.grad(y, [x, *mlp.parameters()], g)
        want = torch.autograd.grad(ref, [x, *mlp.parameters()], g)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    stale = run(x)
    run(x)
    with pytest.raises(SplatpixError, match="newer forward"):
        stale.sum().backward()


def test_gainer_mlp_arch_saves_and_loads(tmp_path):
    from splatpix.gainer import load_gainer, save_gainer

    f = randomised(mlp_arch="gainer", mlp_hidden=8)
    assert [m.out_features for m in f.mlp if isinstance(m, torch.nn.Linear)] == [8, 15, 8, 8, 3]
    save_gainer(f, tmp_path / "g.safetensors")
    g = load_gainer(tmp_path / "g.safetensors")
    assert g.cfg.mlp_arch == "gainer"
    torch.testing.assert_close(g.render(), f.render())


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_render_fused_forward_equals_the_reference_path(aggregation):
    f = randomised(aggregation=aggregation).bake()
    fast = f.render(10, 14, (0.1, 0.0, 0.9, 0.8))
    f.backend = "reference"
    slow = f.render(10, 14, (0.1, 0.0, 0.9, 0.8))
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ring_index_equals_brute_force(seed):
    from splatpix.gainer.knn import knn_bruteforce
    from splatpix.gainer.knn_rings import RingIndex

    gen = torch.Generator().manual_seed(seed)
    n = 300
    means = torch.rand((n, 2), generator=gen)
    means[:20] = means[20:40]  # duplicates: ties broken by the lower index
    radius = 0.02 + 0.2 * torch.rand(n, generator=gen) ** 4  # mostly small, a few large
    if seed == 2:
        radius[:] = 0.01  # many queries with fewer than k neighbours
    q = torch.rand((500, 2), generator=gen) * 1.4 - 0.2  # some outside the means' box
    q[:20] = means[:20]
    for k in (1, 5, 16):
        got = RingIndex(means, radius).query(q, k)
        want = knn_bruteforce(q, means, radius, k)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
