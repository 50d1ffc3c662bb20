"""K-nearest-Gaussians search: numba grid vs PyTorch brute force vs a plain loop, edge cases, rebuilds, errors."""

import numpy as np
import pytest
import torch

from splatpix.errors import SplatpixError
from splatpix.gainer.knn import MAX_K, KnnIndex, knn, knn_bruteforce


def _naive(queries, means, radius, k):
    """The definition, one query at a time in numpy float32."""
    q = queries.numpy().astype(np.float32)
    m = means.numpy().astype(np.float32)
    r = radius.numpy().astype(np.float32)
    idx = np.full((q.shape[0], k), -1, dtype=np.int64)
    d2s = np.full((q.shape[0], k), np.inf, dtype=np.float32)
    for p in range(q.shape[0]):
        dx = q[p, 0] - m[:, 0]
        dy = q[p, 1] - m[:, 1]
        d2 = dx * dx + dy * dy
        ok = np.nonzero((d2 <= r * r) & np.isfinite(d2))[0]
        order = ok[np.lexsort((ok, d2[ok]))][:k]
        idx[p, :order.size] = order
        d2s[p, :order.size] = d2[order]
    return torch.from_numpy(idx), torch.from_numpy(d2s)


def _same(a, b):
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


def _data(n, p, seed, radius_kind):
    gen = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=gen) * 1.1 - 0.05  # some slightly outside [0, 1]^2
    queries = torch.rand(p, 2, generator=gen) * 1.3 - 0.15
    if radius_kind == "tiny":
        radius = torch.rand(n, generator=gen) * 2e-3
    elif radius_kind == "mixed":
        radius = torch.exp(torch.randn(n, generator=gen) * 1.5 - 3.5)
        radius[::97] = 0.8  # a few very large ones among small ones
    elif radius_kind == "huge":
        radius = torch.full((n,), 10.0)
    elif radius_kind == "zero":
        radius = torch.zeros(n)
        queries[: p // 4] = means[: p // 4]  # exact hits are accepted at radius 0
    else:
        radius = torch.full((n,), 0.05)
    return queries, means, radius


@pytest.mark.parametrize("radius_kind", ["tiny", "mixed", "huge", "zero", "absolute"])
@pytest.mark.parametrize("k", [1, 4, 16])
def test_grid_equals_bruteforce(radius_kind, k):
    queries, means, radius = _data(700, 500, 1, radius_kind)
    ref = knn_bruteforce(queries, means, radius, k)
    grid = KnnIndex(means, radius).query(queries, k)
    _same(grid, ref)
    _same(knn(queries, means, radius, k), ref)
    if k == 4:
        _same(ref, _naive(queries, means, radius, k))


def test_results_are_sorted_within_radius_and_padded():
    queries, means, radius = _data(400, 300, 2, "mixed")
    idx, d2 = knn(queries, means, radius, 8)
    assert idx.dtype == torch.int64 and d2.dtype == torch.float32 and idx.shape == (300, 8)
    assert bool((d2[:, 1:] >= d2[:, :-1]).all())
    miss = idx < 0
    assert bool(torch.isinf(d2[miss]).all()) and bool(torch.isfinite(d2[~miss]).all())
    assert bool(miss.any()) and bool((~miss).any())
    hit = idx.clamp(min=0)
    dist = (queries[:, None, :] - means[hit]).norm(dim=2)
    assert bool((dist[~miss] <= radius[hit][~miss] * (1 + 1e-6)).all())


def test_clustered_means():
    gen = torch.Generator().manual_seed(3)
    centres = torch.rand(5, 2, generator=gen)
    means = (centres.repeat_interleave(300, 0) + torch.randn(1500, 2, generator=gen) * 0.01).contiguous()
    radius = torch.rand(1500, generator=gen) * 0.02
    radius[:3] = 0.5
    queries = torch.cat((centres + torch.randn(5, 2, generator=gen) * 0.01, torch.rand(400, 2, generator=gen)))
    for k in (3, 32):
        _same(KnnIndex(means, radius).query(queries, k), knn_bruteforce(queries, means, radius, k))


def test_duplicate_means_tie_to_lower_index():
    means = torch.tensor([[0.5, 0.5], [0.2, 0.2], [0.5, 0.5], [0.5, 0.5], [0.6, 0.5]])
    radius = torch.full((5,), 0.3)
    queries = torch.tensor([[0.5, 0.5], [0.55, 0.5]])
    for fn in (knn_bruteforce, knn):
        idx, d2 = fn(queries, means, radius, 4)
        assert idx[0].tolist() == [0, 2, 3, 4]
        assert d2[0, :3].tolist() == [0.0, 0.0, 0.0]
        assert idx[1].tolist()[:3] == [0, 2, 3]  # 4 is equally far in exact arithmetic; float32 decides
    # many exact duplicates: all ties, the K lowest indices win
    means = torch.full((50, 2), 0.25)
    radius = torch.full((50,), 0.1)
    queries = torch.tensor([[0.25, 0.25], [0.3, 0.3], [0.9, 0.9]])
    idx, d2 = knn(queries, means, radius, 7)
    assert idx[0].tolist() == list(range(7)) and idx[1].tolist() == list(range(7))
    assert idx[2].tolist() == [-1] * 7 and bool(torch.isinf(d2[2]).all())
    _same((idx, d2), knn_bruteforce(queries, means, radius, 7))


def test_missing_neighbours_are_minus_one_and_inf():
    means = torch.tensor([[0.1, 0.1], [0.9, 0.9], [0.12, 0.1]])
    radius = torch.tensor([0.05, 0.05, 0.0])
    queries = torch.tensor([[0.1, 0.1], [0.5, 0.5], [0.12, 0.1], [0.88, 0.9]])
    idx, d2 = knn(queries, means, radius, 3)
    assert idx.tolist() == [[0, -1, -1], [-1, -1, -1], [2, 0, -1], [1, -1, -1]]
    assert d2[0, 0] == 0.0 and bool(torch.isinf(d2[1]).all()) and d2[2, 0] == 0.0
    assert abs(d2[2, 1].item() - 0.02 ** 2) < 1e-8 and abs(d2[3, 0].item() - 0.02 ** 2) < 1e-8
    _same((idx, d2), knn_bruteforce(queries, means, radius, 3))


def test_empty_inputs_and_k_larger_than_n():
    queries, means, radius = _data(6, 40, 4, "huge")
    idx, d2 = knn(queries, means, radius, 10)
    assert idx.shape == (40, 10)
    assert bool((idx[:, :6] >= 0).all()) and bool((idx[:, 6:] == -1).all()) and bool(torch.isinf(d2[:, 6:]).all())
    assert sorted(idx[0, :6].tolist()) == list(range(6))
    _same((idx, d2), knn_bruteforce(queries, means, radius, 10))
    for fn in (knn, knn_bruteforce):
        idx, d2 = fn(queries, torch.zeros(0, 2), torch.zeros(0), 3)
        assert idx.shape == (40, 3) and bool((idx == -1).all()) and bool(torch.isinf(d2).all())
        idx, d2 = fn(torch.zeros(0, 2), means, radius, 3)
        assert idx.shape == (0, 3) and d2.shape == (0, 3)
    index = KnnIndex(torch.zeros(0, 2), torch.zeros(0))
    assert index.n == 0 and bool((index.query(queries, 2)[0] == -1).all())


def test_queries_far_outside_and_boundary_distances():
    queries, means, radius = _data(300, 200, 5, "mixed")
    far = torch.tensor([[-3.0, 0.5], [4.0, 4.0], [0.5, -2.0], [1e4, -1e4]])
    queries = torch.cat((queries, far))
    _same(knn(queries, means, radius, 5), knn_bruteforce(queries, means, radius, 5))
    # queries exactly on (or rounding-close to) the circle of their Gaussian: float32 decides, both must agree
    gen = torch.Generator().manual_seed(6)
    means = torch.rand(200, 2, generator=gen)
    radius = torch.rand(200, generator=gen) * 0.05
    ang = torch.rand(200, generator=gen) * 6.2832
    on = means + radius[:, None] * torch.stack((torch.cos(ang), torch.sin(ang)), 1)
    axis = means + torch.stack((radius, torch.zeros(200)), 1)
    for q in (on, axis, means - torch.stack((torch.zeros(200), radius), 1)):
        _same(KnnIndex(means, radius).query(q, 4), knn_bruteforce(q, means, radius, 4))
        _same(knn_bruteforce(q, means, radius, 4), _naive(q, means, radius, 4))


def test_coarsened_grid_is_still_exact():
    queries, means, radius = _data(500, 300, 7, "mixed")
    fine = KnnIndex(means, radius)
    coarse = KnnIndex(means, radius, max_registrations=600)
    assert coarse.n_registrations <= 600 or coarse.grid_shape == (1, 1)
    assert coarse.grid_shape[0] * coarse.grid_shape[1] < fine.grid_shape[0] * fine.grid_shape[1]
    _same(coarse.query(queries, 6), fine.query(queries, 6))
    single = KnnIndex(means, radius, max_registrations=1)
    assert single.grid_shape == (1, 1)
    _same(single.query(queries, 6), knn_bruteforce(queries, means, radius, 6))


def test_rebuild_and_staleness():
    queries, means, radius = _data(300, 200, 8, "absolute")
    index = KnnIndex.build(means, radius)
    assert not index.is_stale(means, radius) and index.version == 1
    moved = means.clone()
    moved[:150] += 0.03
    assert index.is_stale(moved, radius)
    assert index.is_stale(means, radius * 2)
    assert index.is_stale(means[:-1], radius[:-1])
    old = index.query(queries, 5)
    new_ref = knn_bruteforce(queries, moved, radius, 5)
    assert not torch.equal(old[0], new_ref[0])
    index.rebuild(moved, radius)
    assert index.version == 2 and not index.is_stale(moved, radius)
    _same(index.query(queries, 5), new_ref)
    # knn() rebuilds a stale index in place, and reuses a current one
    means.add_(0.01)  # in-place edit of the caller's tensor
    v = index.version
    _same(knn(queries, means, radius, 5, index=index), knn_bruteforce(queries, means, radius, 5))
    assert index.version == v + 1 and not index.is_stale(means, radius)
    knn(queries, means, radius, 5, index=index)
    assert index.version == v + 1


def test_torch_path_equals_grid():
    queries, means, radius = _data(600, 400, 9, "mixed")
    grid = knn(queries, means, radius, 8)  # CPU float32: the numba grid
    torch_path = knn(queries.double(), means.double(), radius.double(), 8)  # float64: the brute force
    _same(grid, torch_path)
    chunked = knn_bruteforce(queries, means, radius, 8, chunk_elements=1000)  # chunks over both axes
    _same(chunked, grid)
    tiny_chunks = knn_bruteforce(queries, means, radius, 8, chunk_elements=7)
    _same(tiny_chunks, grid)


def test_scalar_radius_and_grad_inputs():
    queries, means, radius = _data(200, 100, 10, "absolute")
    _same(knn(queries, means, 0.05, 4), knn_bruteforce(queries, means, radius, 4))
    m = means.clone().requires_grad_()
    idx, d2 = knn(queries, m, radius, 4)
    assert not d2.requires_grad
    _same((idx, d2), knn_bruteforce(queries, means, radius, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bruteforce_equals_grid():
    queries, means, radius = _data(800, 600, 11, "mixed")
    gpu = knn(queries.cuda(), means.cuda(), radius.cuda(), 8)
    assert gpu[0].device.type == "cuda"
    _same((gpu[0].cpu(), gpu[1].cpu()), knn(queries, means, radius, 8))


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.rand(3, 2), torch.rand(4, 2), torch.rand(4), 0), "k must be between"),
        ((torch.rand(3, 2), torch.rand(4, 2), torch.rand(4), MAX_K + 1), "k must be between"),
        ((torch.rand(3, 2), torch.rand(4, 2), torch.rand(4), 2.0), "k must be an integer"),
        ((torch.rand(3, 2), torch.rand(4, 2), torch.rand(4), True), "k must be an integer"),
        ((torch.rand(3, 3), torch.rand(4, 2), torch.rand(4), 2), "queries must have shape"),
        ((torch.rand(3, 2), torch.rand(4), torch.rand(4), 2), "means must have shape"),
        ((torch.rand(3, 2), torch.rand(4, 2), torch.rand(5), 2), "radius must have shape"),
        ((torch.rand(3, 2), torch.rand(4, 2), -torch.rand(4), 2), "non-negative"),
        ((torch.rand(3, 2), torch.tensor([[0.0, float("nan")]]), torch.rand(1), 2), "means must be finite"),
        ((torch.tensor([[float("inf"), 0.0]]), torch.rand(1, 2), torch.rand(1), 2), "queries must be finite"),
        ((torch.rand(3, 2), torch.rand(1, 2), torch.tensor([float("inf")]), 2), "radius must be finite"),
        ((torch.rand(3, 2), torch.rand(1, 2), torch.tensor([1 + 1j]), 2), "real numbers"),
    ],
)
def test_validation(args, match):
    for fn in (knn, knn_bruteforce):
        with pytest.raises(SplatpixError, match=match):
            fn(*args)
    if match in ("radius must have shape", "non-negative", "means must be finite", "radius must be finite"):
        with pytest.raises(SplatpixError, match=match):
            KnnIndex(args[1], args[2])
