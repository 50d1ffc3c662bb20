"""Covariance tiers of the sga codec: spacing, tier assignment, RD-aware bit depths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from splatpix.codec.tier_bits import choose_tier_bits
from splatpix.codec.tiers import MAX_SPACING_SQ, assign_tiers, spacing_sq, tier_thresholds


def _brute_spacing(pts: np.ndarray, k: int) -> np.ndarray:
    d = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.iinfo(np.int64).max)
    return np.sort(d, axis=1)[:, k - 1]


def test_spacing_matches_brute_force_with_duplicates():
    rng = np.random.default_rng(0)
    for k in (1, 2, 4, 7):
        pts = rng.integers(0, 60, size=(300, 2))
        pts[:20] = pts[20:40]  # duplicates: distance 0 neighbours
        np.testing.assert_array_equal(spacing_sq(pts, k), _brute_spacing(pts, k))


def test_spacing_few_points_and_large_coordinates():
    assert spacing_sq(np.zeros((0, 2), dtype=np.int64), 4).shape == (0,)
    assert (spacing_sq(np.array([[1, 2], [3, 4]]), 4) == MAX_SPACING_SQ).all()
    big = np.array([[0, 0], [2 ** 25, 2 ** 25 - 1], [2 ** 25 - 3, 7]], dtype=np.int64)
    np.testing.assert_array_equal(spacing_sq(big, 1), _brute_spacing(big, 1))


def test_tiers_follow_density():
    rng = np.random.default_rng(1)
    dense = rng.integers(0, 100, size=(600, 2))  # 600 points in 100x100
    sparse = rng.integers(0, 100, size=(100, 2)) + np.array([200, 0])  # 100 points in 100x100
    pts = np.concatenate([dense, sparse])
    th = tier_thresholds(pts, 3, 4)
    assert th == sorted(th) and len(th) == 2
    t = assign_tiers(pts, th, 4)
    assert set(np.unique(t)) <= {0, 1, 2}
    counts = np.bincount(t, minlength=3)
    assert counts.min() > 150  # quantile thresholds: about a third each
    assert t[600:].mean() > t[:600].mean() + 1.0  # sparse region: the highest tier
    # one tier: everything in tier 0
    assert (assign_tiers(pts, [], 4) == 0).all()


def test_rd_choice_follows_lambda():
    """lambda = alpha D / (N B): when a bit is worth little distortion (large B) the most bits win, when it is
    worth a lot (tiny B) the fewest."""
    gen = torch.Generator().manual_seed(0)
    chol = torch.rand(400, 3, generator=gen) * 5
    tiers = np.repeat(np.arange(2), 200)

    def sse(cov):
        return 1.0 + float(((cov - chol) ** 2).sum())

    hi, info_hi = choose_tier_bits(chol, tiers, 2, sse, bits_per_gaussian=1e6)
    lo, info_lo = choose_tier_bits(chol, tiers, 2, sse, bits_per_gaussian=1e-3)
    assert hi == [8, 8] and lo == [3, 3]
    assert info_hi["sse"] <= info_hi["sse_start"] and info_lo["cov_bits"] <= info_lo["cov_bits_start"]
    # distortion only in tier 1: tier 0 drops to the fewest bits, tier 1 gets more than tier 0
    mixed, _ = choose_tier_bits(chol, tiers, 2, lambda cov: 1.0 + float(((cov - chol)[200:] ** 2).sum()),
                                bits_per_gaussian=300.0)
    assert mixed[0] == 3 and mixed[1] > 3


def test_grid_spacing_matches_tree_and_brute_force():
    """The numba grid search is exact: equal to brute force on uniform, clustered-but-gridded, duplicated and
    line-shaped inputs, and to the k-d tree path (the fallback for very clustered input)."""
    from splatpix.codec.tiers import _spacing_sq_tree

    rng = np.random.default_rng(3)
    cases = [
        rng.integers(0, 3073, size=(2000, 2)),  # uniform, Kodak-size grid at subdiv 4
        np.concatenate([rng.integers(0, 200, size=(500, 2)), rng.integers(0, 3000, size=(300, 2))]),  # dense+sparse
        np.repeat(rng.integers(0, 500, size=(150, 2)), 3, axis=0),  # every point three times
        np.stack([rng.integers(0, 5000, size=400), np.full(400, 7)], axis=1),  # a horizontal line
        np.array([[0, 0], [0, 1], [1, 0], [10 ** 6, 10 ** 6], [10 ** 6 - 1, 10 ** 6]]),  # far apart groups
        rng.integers(0, 300, size=(700, 2)) + np.array([1234, 777]),  # offset origin (the box bounds use it)
    ]
    for pts in cases:
        pts = pts.astype(np.int64)
        for k in (k for k in (1, 4, 7) if k < len(pts)):
            want = _brute_spacing(pts, k)
            np.testing.assert_array_equal(spacing_sq(pts, k), want)
            np.testing.assert_array_equal(_spacing_sq_tree(pts, k), want)


def test_clustered_input_falls_back_to_tree():
    """10 000 copies of one point (a forged file): no quadratic scan, the answer is 0 for everyone."""
    pts = np.concatenate([np.zeros((10_000, 2), dtype=np.int64), np.array([[3000, 2000]])])
    out = spacing_sq(pts, 4)
    assert (out[:-1] == 0).all() and out[-1] == 3000 ** 2 + 2000 ** 2


def test_moderately_clustered_input_uses_the_grid(monkeypatch):
    """A trained model's clustering (a few hundred points in one cell) stays on the exact grid search."""
    from splatpix.codec import tiers

    rng = np.random.default_rng(5)
    pts = np.concatenate([rng.integers(0, 3073, size=(3000, 2)), rng.integers(1500, 1530, size=(250, 2))])

    def no_tree(*a):
        raise AssertionError("fell back to the k-d tree")

    monkeypatch.setattr(tiers, "_spacing_sq_tree", no_tree)
    np.testing.assert_array_equal(spacing_sq(pts, 4), _brute_spacing(pts, 4))


@pytest.mark.parametrize("counting", [True, False])
def test_early_stopping_tiers_equal_searchsorted_of_exact_spacing(monkeypatch, counting):
    """assign_tiers stops each point's search once its tier is known: it must still equal the tiers of the exact
    spacing, for thresholds at, between and beyond the spacings (ties included), on uniform, clustered,
    duplicated and line-shaped inputs, on the grid path and on the tree path."""
    from splatpix.codec import tiers

    if not counting:  # the stopped grid search alone
        monkeypatch.setattr(tiers, "_tiers_by_counting", lambda *a: None)
    rng = np.random.default_rng(11)
    cases = [
        rng.integers(0, 3073, size=(1500, 2)),
        np.concatenate([rng.integers(0, 3073, size=(1200, 2)), rng.integers(1500, 1530, size=(250, 2))]),
        np.repeat(rng.integers(0, 500, size=(150, 2)), 3, axis=0),
        np.stack([rng.integers(0, 5000, size=400), np.full(400, 7)], axis=1),
        np.array([[0, 0], [0, 1], [1, 0], [10 ** 6, 10 ** 6], [10 ** 6 - 1, 10 ** 6], [5, 5]]),
    ]
    for pts in cases:
        pts = pts.astype(np.int64)
        for k in (k for k in (1, 4, 7) if k < len(pts)):
            exact = _brute_spacing(pts, k)
            qs = np.quantile(exact, [0.1, 0.33, 0.5, 0.66, 0.9], method="lower").astype(np.int64)
            sets = [[], [0], [int(qs[2])], sorted({int(q) for q in qs[[1, 3]]}), sorted({int(q) for q in qs}),
                    [int(exact.max())], [int(exact.max()) + 1, MAX_SPACING_SQ - 1],
                    sorted(int(v) for v in rng.integers(0, int(exact.max()) + 2, size=3))]
            for th in sets:
                want = np.searchsorted(np.asarray(th, dtype=np.int64), exact, side="left")
                np.testing.assert_array_equal(assign_tiers(pts, th, k), want, err_msg=f"k={k} th={th}")
    # the tree path (very clustered input) gives the same tiers
    pts = np.concatenate([np.zeros((5000, 2), dtype=np.int64), rng.integers(0, 400, size=(50, 2))])
    exact = _brute_spacing(pts, 4)
    th = [0, int(np.quantile(exact, 0.995, method="lower"))]
    np.testing.assert_array_equal(assign_tiers(pts, th, 4), np.searchsorted(th, exact, side="left"))
    # few points: the highest tier (MAX_SPACING_SQ exceeds every threshold)
    assert (assign_tiers(np.array([[1, 2], [3, 4]]), [5, 9], 4) == 2).all()
    monkeypatch.setattr(tiers, "_spacing_sq_tree", lambda *a: (_ for _ in ()).throw(AssertionError("tree")))
    np.testing.assert_array_equal(assign_tiers(cases[1].astype(np.int64), [100, 900], 4),
                                  np.searchsorted([100, 900], _brute_spacing(cases[1].astype(np.int64), 4)))


def test_block_work_matches_numpy():
    """The compiled scan bound of the counting path equals the numpy sum over cells of count x 3 x 3 block count."""
    from splatpix.codec import tiers

    rng = np.random.default_rng(2)
    for _ in range(40):
        n = int(rng.integers(5, 2000))
        pts = rng.integers(0, int(rng.integers(10, 3000)), size=(n, 2)).astype(np.int64)
        cell = int(rng.integers(1, 60))
        b = tiers._binned(pts, lambda w, h, c=cell: c)
        if b is None:
            continue
        _, _, _, gx, gy, start, _, _ = b
        counts = np.pad(np.diff(start).reshape(gy, gx), 1)
        block = sum(counts[1 + a:gy + 1 + a, 1 + c:gx + 1 + c] for a in (-1, 0, 1) for c in (-1, 0, 1))
        assert tiers._block_work(start, gx, gy) == int((counts[1:-1, 1:-1] * block).sum())


def test_tier_order_is_a_stable_argsort():
    """The counting sort the covariance parser uses equals numpy's stable argsort, with the tier boundaries."""
    from splatpix.codec.tiers import tier_order

    rng = np.random.default_rng(5)
    for _ in range(30):
        t = int(rng.integers(1, 9))
        tiers = rng.integers(0, t, size=int(rng.integers(0, 3000)))
        order, start = tier_order(tiers, t)
        np.testing.assert_array_equal(order, np.argsort(tiers, kind="stable"))
        np.testing.assert_array_equal(start, np.concatenate(([0], np.cumsum(np.bincount(tiers, minlength=t)))))
    with pytest.raises(ValueError):
        tier_order(np.array([0, 3]), 3)


def test_binned_points_are_in_cell_order():
    """_binned's compiled bounding box and gather: ``spts == pts[ids]``, cells ascending, the box is the min/max."""
    from splatpix.codec import tiers

    rng = np.random.default_rng(6)
    for _ in range(30):
        n = int(rng.integers(1, 2000))
        pts = rng.integers(0, int(rng.integers(1, 3000)), size=(n, 2)).astype(np.int64)
        assert tuple(tiers._bbox(pts)) == (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
        cell = int(rng.integers(1, 60))
        b = tiers._binned(pts, lambda w, h, c=cell: c)
        if b is None:
            continue
        x0, y0, cell, gx, gy, start, ids, spts = b
        np.testing.assert_array_equal(spts, pts[ids])
        cid = ((spts[:, 1] - y0) // cell) * gx + (spts[:, 0] - x0) // cell
        assert (np.diff(cid) >= 0).all() and np.array_equal(np.searchsorted(cid, np.arange(gx * gy + 1)), start)
