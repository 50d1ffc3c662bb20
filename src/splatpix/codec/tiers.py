"""Adaptive-bitwidth covariance quantisation (method ``sga``): tiers of Gaussians with their own bit depths.

The structure-guided paper gives "small-scale Gaussians in complex regions" more covariance bits than the rest
(its bit ranges are unpublished). Here a Gaussian's tier is a function of its **local spacing**: the distance
to its ``k``-th nearest neighbour (``k = 4``) among the decoded grid positions. Structure-guided initialisation
puts 6x more Gaussians per area in complex regions than in flat ones and sizes each Gaussian from its spacing,
so the spacing measures both things the paper names (region complexity and scale) at once, and the decoder
computes it from data it already has: the tier of each Gaussian costs **no bits**. What the file signals is the
tier *definition*: ``k``, the thresholds on the squared spacing (in grid units, integers, so encoder and decoder
compare exact integers) and, per tier, the bit depth and the per-channel quantiser scale/offset (each tier's
quantiser covers its own members' value range, so a tier of small Gaussians gets a finer step at the same
bit depth). Tier 0 holds the most densely packed Gaussians.

**Choosing the bit depths (RD-aware).** The thresholds are the spacing quantiles (equal-count tiers). Each
tier's bit depth ``b_t`` is chosen from ``candidates`` by coordinate descent on the Lagrangian
``J = SSE + lambda * R``, where ``SSE`` is the squared error of the render with the covariance quantised
(post-training, min/max quantisers) and ``R`` the entropy-coded size of the covariance symbols (ideal code
length). ``lambda`` is the slope ``-dD/dR`` at the operating point, estimated from the model itself: if the
distortion falls as ``D ~ N^-alpha`` with the number of Gaussians (``alpha = 0.69``, fitted to Kodak models at
N = 1000 ... 9000), spending ``B`` bits per Gaussian gives
``dD/dR = -alpha * D / (N * B)``: a covariance bit is worth what it would buy as more Gaussians. A fixed
allocation (every tier at 6 bits, GaussianImage's depth) is available for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..jit import njit, prange, use_kernels

__all__ = ["ALPHA", "assign_tiers", "spacing_sq", "tier_order", "tier_thresholds"]

ALPHA = 0.69
"""Exponent of ``D ~ N^-alpha`` (MSE against the number of Gaussians; see the module docs)."""
MAX_SPACING_SQ = (1 << 62) - 1
"""Squared spacing given to a Gaussian with fewer than ``k`` neighbours (a model of ``N <= k`` Gaussians)."""


_CELL_TARGET = 2.0  # mean points per cell of the uniform grid
_MAX_CELL_WORK = 64  # sum of squared cell counts per point above which (very clustered input) the k-d tree is used


@njit()
def _bbox(pts: np.ndarray) -> tuple[int, int, int, int]:
    """``(min x, min y, max x, max y)`` of the (non-empty) ``(N, 2)`` points in one pass."""
    x0, y0 = pts[0, 0], pts[0, 1]
    x1, y1 = x0, y0
    for i in range(1, pts.shape[0]):
        x, y = pts[i, 0], pts[i, 1]
        x0, x1 = min(x0, x), max(x1, x)
        y0, y1 = min(y0, y), max(y1, y)
    return x0, y0, x1, y1


@njit()
def _bin_points(pts: np.ndarray, x0: int, y0: int, cell: int, gx: int,
                gy: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counting sort of the points into ``gx * gy`` square cells of side ``cell``: (cell start offsets, ids, the
    points in cell order ``pts[ids]``)."""
    n = pts.shape[0]
    start = np.zeros(gx * gy + 1, dtype=np.int64)
    cid = np.empty(n, dtype=np.int64)
    for i in range(n):
        c = ((pts[i, 1] - y0) // cell) * gx + (pts[i, 0] - x0) // cell
        cid[i] = c
        start[c + 1] += 1
    for c in range(gx * gy):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    ids = np.empty(n, dtype=np.int64)
    spts = np.empty((n, 2), dtype=np.int64)
    for i in range(n):
        f = fill[cid[i]]
        ids[f] = i
        spts[f, 0] = pts[i, 0]
        spts[f, 1] = pts[i, 1]
        fill[cid[i]] = f + 1
    return start, ids, spts


@njit()
def _scan_cell(i: int, px: int, py: int, c: int, spts: np.ndarray, start: np.ndarray, ids: np.ndarray,
               best: np.ndarray) -> int:
    """Insert the squared distances from point ``i`` to the other points of cell ``c`` into the ascending
    ``best`` (length k); return how many points were offered. ``spts`` holds the points in cell order
    (``spts[t] = pts[ids[t]]``), so a cell is one contiguous read."""
    k = best.shape[0]
    offered = 0
    for t in range(start[c], start[c + 1]):
        if ids[t] == i:
            continue
        offered += 1
        dx, dy = spts[t, 0] - px, spts[t, 1] - py
        d = dx * dx + dy * dy
        if d < best[k - 1]:
            m = k - 1
            while m > 0 and best[m - 1] > d:
                best[m] = best[m - 1]
                m -= 1
            best[m] = d
    return offered


@njit(inline="always")
def _tier_of(d: int, th: np.ndarray) -> int:
    """Number of thresholds ``th`` (ascending) below ``d``: ``searchsorted(th, d, side="left")``."""
    t = 0
    while t < th.shape[0] and th[t] < d:
        t += 1
    return t


@njit(parallel=True)
def _grid_search(pts: np.ndarray, spts: np.ndarray, k: int, x0: int, y0: int, cell: int, gx: int, gy: int,
                 start: np.ndarray, ids: np.ndarray, th: np.ndarray, tiers: bool) -> np.ndarray:
    """Per point, the exact squared distance to its ``k``-th nearest other point (``tiers`` False) or its tier,
    ``searchsorted(th, that distance)`` (``tiers`` True), by rings of cells around each point.

    A point outside the box of rings ``0 .. r`` is at least as far, along x or y, as the nearest side of that box
    that has cells beyond it, so after ring ``r`` the k-th distance lies in ``[min(ub, bound^2), ub]`` with ``ub``
    the k-th distance found so far. The exact search stops once that interval is a single value (most points
    stop at ring 1); the tier search once both ends have the same tier, and also as soon as ``ub`` is at most the
    first threshold (tier 0: the densest points, in the most crowded cells, usually stop inside their own cell).
    Each cell is scanned once (ring ``r`` = the cells at Chebyshev distance exactly ``r``); the points are read
    in cell order (``spts = pts[ids]``, :func:`_binned`)."""
    n = pts.shape[0]
    big = np.iinfo(np.int64).max
    out = np.empty(n, dtype=np.int64)
    first = th[0] if th.shape[0] > 0 else -1
    best_all = np.full((n, k), big, dtype=np.int64)
    for i in prange(n):
        best = best_all[i]
        px, py = pts[i, 0], pts[i, 1]
        cx, cy = (px - x0) // cell, (py - y0) // cell
        have = 0
        r = 0
        done = False
        while not done:
            for yy in range(max(cy - r, 0), min(cy + r, gy - 1) + 1):
                side = yy == cy - r or yy == cy + r  # top or bottom side of the ring: the whole clipped row
                step = 1 if side or r == 0 else 2 * r  # else the left and right sides only
                for xx in range(cx - r, cx + r + 1, step):
                    if 0 <= xx < gx:
                        have += _scan_cell(i, px, py, yy * gx + xx, spts, start, ids, best)
                if tiers and have >= k and best[k - 1] <= first:
                    done = True  # tier 0 whatever the rest holds
                    break
            if done:
                break
            ub = best[k - 1] if have >= k else big
            if cx - r <= 0 and cy - r <= 0 and cx + r >= gx - 1 and cy + r >= gy - 1:
                break  # every cell scanned: ub is exact
            # the unscanned points lie outside the box of rings 0..r: at least this far along x or y
            bound = big
            if cx - r > 0:
                bound = min(bound, px - (x0 + (cx - r) * cell) + 1)
            if cx + r < gx - 1:
                bound = min(bound, x0 + (cx + r + 1) * cell - px)
            if cy - r > 0:
                bound = min(bound, py - (y0 + (cy - r) * cell) + 1)
            if cy + r < gy - 1:
                bound = min(bound, y0 + (cy + r + 1) * cell - py)
            lb = min(ub, bound * bound)
            if lb == ub or (tiers and _tier_of(lb, th) == _tier_of(ub, th)):
                break
            r += 1
        out[i] = _tier_of(best[k - 1], th) if tiers else best[k - 1]
    return out


@njit(parallel=True)
def _count_tiers(spts: np.ndarray, ids: np.ndarray, k: int, x0: int, y0: int, cell: int, gx: int,
                 gy: int, start: np.ndarray, th: np.ndarray) -> np.ndarray:
    """Tiers by counting: with ``cell ** 2 >= th[-1]`` every point within ``sqrt(th[-1])`` of a point lies in the
    3 x 3 cells around it, and the point's k-th distance exceeds ``th[j]`` iff fewer than ``k`` others are within
    ``th[j]``. The counts grow with ``j``, so the tier is the first ``j`` with ``k`` others within ``th[j]`` (or the
    number of thresholds); a pass counts two thresholds at once, so three tiers (the default) take one pass.

    The points are visited in cell order (``spts = pts[ids]``, copied to float64 columns ``xs, ys``: squared
    distances below 2^53, i.e. any two points less than 2^26 grid units apart, are exact, which covers every
    threshold of a real image; beyond that encoder and decoder still agree, both running this function), the three
    cells of a row of the block are one contiguous range, and a pass is a branch-free count that compiles to SIMD
    (faster than inserting each candidate into a histogram).
    """
    n = spts.shape[0]
    m = th.shape[0]
    thf = th.astype(np.float64)
    xs = np.empty(n, dtype=np.float64)
    ys = np.empty(n, dtype=np.float64)
    for s in range(n):
        xs[s] = spts[s, 0]
        ys[s] = spts[s, 1]
    out = np.empty(n, dtype=np.int64)
    for s in prange(n):
        px, py = xs[s], ys[s]
        cx, cy = (np.int64(px) - x0) // cell, (np.int64(py) - y0) // cell
        lo_x, hi_x = max(cx - 1, 0), min(cx + 1, gx - 1)
        r0, r1 = max(cy - 1, 0), min(cy + 1, gy - 1)
        # thresholds two at a time (one pass for the default three tiers): the tier is the first j with k others
        # within th[j] (the point itself is counted, at distance 0), or m
        tier = 0
        j = 0
        while j < m:
            ta, tb = thf[j], thf[min(j + 1, m - 1)]
            ca = 0
            cb = 0
            for yy in range(r0, r1 + 1):
                for t in range(start[yy * gx + lo_x], start[yy * gx + hi_x + 1]):
                    dx = xs[t] - px
                    dy = ys[t] - py
                    d = dx * dx + dy * dy
                    ca += d <= ta
                    cb += d <= tb
            if ca > k:
                break
            tier += 1
            if j + 1 >= m or cb > k:
                break
            tier += 1
            j += 2
        out[ids[s]] = tier
    return out


@njit()
def _block_work(start: np.ndarray, gx: int, gy: int) -> int:
    """Sum over cells of (points in the cell) x (points in its 3 x 3 block): the candidate scans of
    :func:`_count_tiers` per threshold pass (one compiled loop; it was nine shifted numpy sums)."""
    work = 0
    for yy in range(gy):
        for xx in range(gx):
            c = start[yy * gx + xx + 1] - start[yy * gx + xx]
            if c:
                lo, hi = max(xx - 1, 0), min(xx + 1, gx - 1)
                block = 0
                for y2 in range(max(yy - 1, 0), min(yy + 1, gy - 1) + 1):
                    block += start[y2 * gx + hi + 1] - start[y2 * gx + lo]
                work += c * block
    return work


@njit()
def _tier_order_kernel(tiers: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(t + 1, dtype=np.int64)
    for i in range(tiers.shape[0]):
        start[tiers[i] + 1] += 1
    for j in range(t):
        start[j + 1] += start[j]
    fill = start[:-1].copy()
    order = np.empty(tiers.shape[0], dtype=np.int64)
    for i in range(tiers.shape[0]):
        order[fill[tiers[i]]] = i
        fill[tiers[i]] += 1
    return order, start


def tier_order(tiers: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """``(argsort(tiers, kind="stable"), start)`` by one counting sort, ``start[j]:start[j + 1]`` the rows of tier
    ``j`` in the sorted order (``start`` has ``t + 1`` entries); ``tiers`` must lie in ``[0, t)``."""
    tiers = np.ascontiguousarray(tiers, dtype=np.int64)
    if tiers.size and (tiers.min() < 0 or tiers.max() >= t):
        raise ValueError("tier outside [0, t)")
    if not use_kernels():
        start = np.zeros(int(t) + 1, dtype=np.int64)
        np.cumsum(np.bincount(tiers, minlength=int(t)), out=start[1:])
        return np.argsort(tiers, kind="stable").astype(np.int64), start
    return _tier_order_kernel(tiers, int(t))


def _binned(pts: np.ndarray, cell_of: Callable[[int, int], int]):
    """Bin ``pts`` into square cells over their bounding box, of side ``cell_of(w, h)``: ``(x0, y0, cell, gx, gy,
    start, ids, spts)`` (:func:`_bin_points`; ``spts = pts[ids]``, the points in cell order), or None when the grid
    would have more than ``4 N + 16`` cells."""
    x0, y0, x1, y1 = (int(v) for v in _bbox(pts))
    w, h = x1 - x0 + 1, y1 - y0 + 1
    cell = cell_of(w, h)
    gx, gy = (w + cell - 1) // cell, (h + cell - 1) // cell
    if gx * gy > 4 * pts.shape[0] + 16:
        return None
    start, ids, spts = _bin_points(pts, x0, y0, cell, gx, gy)
    return x0, y0, cell, gx, gy, start, ids, spts


def _tiers_by_counting(pts: np.ndarray, k: int, th: np.ndarray) -> np.ndarray | None:
    """:func:`_count_tiers` when its grid (cells of side ``ceil(sqrt(th[-1]))``) is small and its scans are
    bounded (at most ``_MAX_CELL_WORK`` points per point over the 3 x 3 blocks); None otherwise."""
    n = pts.shape[0]
    side = math.isqrt(int(th[-1]))
    b = _binned(pts, lambda w, h: max(1, side if side * side >= int(th[-1]) else side + 1))
    if b is None:
        return None
    x0, y0, cell, gx, gy, start, ids, spts = b
    if _block_work(start, gx, gy) > _MAX_CELL_WORK * n + 4096:
        return None
    return _count_tiers(spts, ids, k, x0, y0, cell, gx, gy, start, th)


def _spacing_sq_tree(pts: np.ndarray, k: int) -> np.ndarray:
    """:func:`spacing_sq` with a k-d tree over the *distinct* points, each with its multiplicity: a tree over many
    copies of one point does not split and its queries turn quadratic (a 368-byte file can declare two million
    identical Gaussians), while a copy is a neighbour at distance 0 that needs no search."""
    from scipy.spatial import cKDTree  # the fallback only: the decode path imports no scipy.spatial

    uniq, inv, mult = np.unique(pts, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    q = min(k + 1, uniq.shape[0])  # the point itself and k others: their copies cover the k-th other point
    _, idx = cKDTree(uniq.astype(np.float64)).query(uniq.astype(np.float64), k=q)
    idx = np.asarray(idx).reshape(uniq.shape[0], q)
    d = uniq[idx] - uniq[:, None, :]
    d2 = (d * d).sum(axis=2)  # exact: integer coordinates, re-measured in integers
    order = np.argsort(d2, axis=1, kind="stable")  # self (distance 0) first among the distinct points
    d2 = np.take_along_axis(d2, order, axis=1)
    m = np.take_along_axis(mult[idx], order, axis=1)
    m[:, 0] -= 1  # the point's own copies other than itself
    reached = np.cumsum(m, axis=1) >= k  # the first column whose copies bring the count of other points to k
    return d2[np.arange(uniq.shape[0]), reached.argmax(axis=1)][inv]


def _search(grid: np.ndarray, k: int, th: np.ndarray | None) -> np.ndarray:
    """:func:`spacing_sq` (``th`` None) or the tiers of ``th`` (:func:`assign_tiers`) of ``grid``."""
    pts = np.ascontiguousarray(grid, dtype=np.int64)
    n = pts.shape[0]
    if n <= k or k < 1:
        spacing = np.full(n, MAX_SPACING_SQ, dtype=np.int64)
    else:
        b = _binned(pts, lambda w, h: max(1, math.ceil(math.sqrt(_CELL_TARGET * w * h / n))))
        if b is not None:  # always, up to rounding; guards the allocation anyway
            x0, y0, cell, gx, gy, start, ids, spts = b
            counts = np.diff(start)
            if int((counts * counts).sum()) <= _MAX_CELL_WORK * n + 4096:  # bounds the pair scans at O(n)
                thr = np.zeros(0, dtype=np.int64) if th is None else th
                return _grid_search(pts, spts, k, x0, y0, cell, gx, gy, start, ids, thr, th is not None)
        spacing = _spacing_sq_tree(pts, k)
    return spacing if th is None else np.searchsorted(th, spacing, side="left").astype(np.int64)


def spacing_sq(grid: np.ndarray, k: int) -> np.ndarray:
    """Squared distance, in grid units, from each point of ``grid`` ``(N, 2)`` (integers) to its ``k``-th
    nearest other point; ``int64``, exact. Points with fewer than ``k`` others get :data:`MAX_SPACING_SQ`.

    A numba search over a uniform grid of about two points per cell (exact integer arithmetic). The scans cost
    about the sum over cells of the squared point counts; trained models are clustered (up to ~300 points in one
    cell on Kodak at N = 9000, a sum of ~19 per point, where the grid was still 2.3x faster than the tree), so
    only beyond 64 per point (e.g. a forged file of repeated points) a k-d tree is used instead (exact too:
    squared distances of integer coordinates below 2^26 are exact in float64, and the neighbour found is
    re-measured in integers)."""
    return _search(grid, k, None)


def assign_tiers(grid: np.ndarray, thresholds: Sequence[int], k: int) -> np.ndarray:
    """Tier of each point: the number of ``thresholds`` (ascending integers) that its squared spacing
    exceeds, so tier 0 is the densest. ``int64`` array of shape ``(N,)``.

    Equal to ``searchsorted(thresholds, spacing_sq(grid, k))`` (the tests compare them), but the grid search
    computes only the tiers (the decoder's cost of them): by counting the points within each threshold in the
    3 x 3 cells of side ``sqrt(thresholds[-1])`` around each point, or where that grid would be too large or too
    crowded, by the grid search of :func:`spacing_sq` stopped as soon as a point's tier is known."""
    th = np.asarray(thresholds, dtype=np.int64).reshape(-1)
    pts = np.ascontiguousarray(grid, dtype=np.int64)
    if th.size and pts.shape[0] > k >= 1:
        out = _tiers_by_counting(pts, k, th) if use_kernels() else _tiers_by_counting_np(pts, k, th)
        if out is not None:
            return out
    elif not use_kernels():  # no neighbour search needed
        spacing = np.full(pts.shape[0], MAX_SPACING_SQ, dtype=np.int64) if pts.shape[0] <= k or k < 1 else \
            np.zeros(pts.shape[0], dtype=np.int64)
        return np.searchsorted(th, spacing, side="left").astype(np.int64) if th.size else \
            np.zeros(pts.shape[0], dtype=np.int64)
    return _search(pts, k, th)  # also the numpy engine's fallback for crowded input (it compiles the kernels)


def _tiers_by_counting_np(pts: np.ndarray, k: int, th: np.ndarray) -> np.ndarray | None:
    """:func:`_tiers_by_counting` in numpy (the numpy engine; the tests compare the two): for each point the number
    of thresholds below which fewer than ``k`` other points lie, counted over the pairs of points in neighbouring
    cells of side ``ceil(sqrt(th[-1]))`` (every pair within the largest threshold is among them), with the kernel's
    float64 squared distances and thresholds (exact below 2^53; beyond, the same rounding) and under the kernel's
    conditions: None (the caller's kernel search) where it would return None, a grid of more than ``4 N + 16``
    cells or more than ``_MAX_CELL_WORK`` pairs per point. The cells are keys in a sorted array."""
    n, t = pts.shape[0], th.shape[0]
    side = math.isqrt(int(th[-1]))
    side = max(1, side if side * side >= int(th[-1]) else side + 1)
    lo = pts.min(axis=0)
    span = pts.max(axis=0) - lo + 1
    if int((span[0] + side - 1) // side) * int((span[1] + side - 1) // side) > 4 * n + 16:
        return None
    cx = (pts[:, 0] - lo[0]) // side + 1
    cy = (pts[:, 1] - lo[1]) // side + 1
    gx = int(cx.max()) + 2
    xs, ys, thf = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64), th.astype(np.float64)
    key = cy * gx + cx
    order = np.argsort(key, kind="stable")
    skey = key[order]
    counts = np.zeros(n * t, dtype=np.int64)
    budget = _MAX_CELL_WORK * n + 4096
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            nk = key + oy * gx + ox
            lo = np.searchsorted(skey, nk, side="left")
            cnt = np.searchsorted(skey, nk, side="right") - lo
            total = int(cnt.sum())
            budget -= total
            if budget < 0:
                return None
            if total == 0:
                continue
            i = np.repeat(np.arange(n), cnt)
            j = order[np.arange(total) - np.repeat(np.cumsum(cnt) - cnt - lo, cnt)]
            dx, dy = xs[j] - xs[i], ys[j] - ys[i]
            t0 = np.searchsorted(thf, dx * dx + dy * dy, side="left")  # d <= th[s] for s >= t0, as the kernel
            keep = (j != i) & (t0 < t)
            counts += np.bincount(i[keep] * t + t0[keep], minlength=n * t)
    within = np.cumsum(counts.reshape(n, t), axis=1)  # other points with d^2 <= th[s]
    return (within < k).sum(axis=1).astype(np.int64)


def tier_thresholds(grid: np.ndarray, n_tiers: int, k: int) -> list[int]:
    """Thresholds giving ``n_tiers`` tiers of (about) equal counts: the spacing quantiles."""
    if n_tiers <= 1:
        return []
    s = spacing_sq(grid, k)
    qs = [int(np.quantile(s, t / n_tiers, method="lower")) for t in range(1, n_tiers)]
    return sorted(min(q, MAX_SPACING_SQ - 1) for q in qs)
