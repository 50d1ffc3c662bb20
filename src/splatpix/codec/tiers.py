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
distortion falls as ``D ~ N^-alpha`` with the number of Gaussians (``alpha = 0.69``, measured from our fits
of Kodak images at N = 1000 ... 9000, docs/benchmarks.md), spending ``B`` bits per Gaussian gives
``dD/dR = -alpha * D / (N * B)``: a covariance bit is worth what it would buy as more Gaussians. A fixed
allocation (every tier at 6 bits, GaussianImage's depth) is available for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numba
import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from .entropy import ideal_code_length_bits

__all__ = ["ALPHA", "assign_tiers", "choose_tier_bits", "spacing_sq", "tier_thresholds"]

ALPHA = 0.69
"""Exponent of ``D ~ N^-alpha`` (MSE against the number of Gaussians; see the module docs)."""
MAX_SPACING_SQ = (1 << 62) - 1
"""Squared spacing given to a Gaussian with fewer than ``k`` neighbours (a model of ``N <= k`` Gaussians)."""


_CELL_TARGET = 2.0  # mean points per cell of the uniform grid
_MAX_CELL_WORK = 64  # sum of squared cell counts per point above which (very clustered input) the k-d tree is used


@numba.njit(cache=True)
def _bin_points(pts: np.ndarray, x0: int, y0: int, cell: int, gx: int, gy: int) -> tuple[np.ndarray, np.ndarray]:
    """Counting sort of the points into ``gx * gy`` square cells of side ``cell``: (cell start offsets, ids)."""
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
    for i in range(n):
        ids[fill[cid[i]]] = i
        fill[cid[i]] += 1
    return start, ids


@numba.njit(cache=True)
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


@numba.njit(cache=True, parallel=True)
def _kth_spacing_grid(pts: np.ndarray, k: int, x0: int, y0: int, cell: int, gx: int, gy: int,
                      start: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Exact squared distance to the ``k``-th nearest other point, by rings of cells around each point.

    A point outside the box of rings ``0 .. r`` is at least as far, along x or y, as the nearest side of that box
    that has cells beyond it, so the search stops after ring ``r`` once ``k`` distances are known and the ``k``-th
    is at most that distance squared (most points stop at ring 1). Each cell is scanned once (ring ``r`` = the
    cells at Chebyshev distance exactly ``r``); the points are read in cell order."""
    n = pts.shape[0]
    out = np.empty(n, dtype=np.int64)
    spts = np.empty_like(pts)
    for t in range(n):
        spts[t, 0] = pts[ids[t], 0]
        spts[t, 1] = pts[ids[t], 1]
    best_all = np.full((n, k), np.iinfo(np.int64).max, dtype=np.int64)
    for i in numba.prange(n):
        best = best_all[i]
        px, py = pts[i, 0], pts[i, 1]
        cx, cy = (px - x0) // cell, (py - y0) // cell
        have = 0
        r = 0
        while True:
            for yy in range(max(cy - r, 0), min(cy + r, gy - 1) + 1):
                if yy == cy - r or yy == cy + r:  # top or bottom side of the ring: the whole clipped row
                    for xx in range(max(cx - r, 0), min(cx + r, gx - 1) + 1):
                        have += _scan_cell(i, px, py, yy * gx + xx, spts, start, ids, best)
                else:  # the left and right sides only
                    if cx - r >= 0:
                        have += _scan_cell(i, px, py, yy * gx + cx - r, spts, start, ids, best)
                    if cx + r <= gx - 1:
                        have += _scan_cell(i, px, py, yy * gx + cx + r, spts, start, ids, best)
            if cx - r <= 0 and cy - r <= 0 and cx + r >= gx - 1 and cy + r >= gy - 1:
                break  # every cell scanned
            # the unscanned points lie outside the box of rings 0..r: at least this far along x or y
            bound = np.iinfo(np.int64).max
            if cx - r > 0:
                bound = min(bound, px - (x0 + (cx - r) * cell) + 1)
            if cx + r < gx - 1:
                bound = min(bound, x0 + (cx + r + 1) * cell - px)
            if cy - r > 0:
                bound = min(bound, py - (y0 + (cy - r) * cell) + 1)
            if cy + r < gy - 1:
                bound = min(bound, y0 + (cy + r + 1) * cell - py)
            if have >= k and best[k - 1] <= bound * bound:
                break
            r += 1
        out[i] = best[k - 1]
    return out


def _spacing_sq_tree(pts: np.ndarray, k: int) -> np.ndarray:
    tree = cKDTree(pts.astype(np.float64))
    _, idx = tree.query(pts.astype(np.float64), k=k + 1)
    # the k-th neighbour other than the point itself; with duplicates the "self" may be any copy at distance 0,
    # but the (k+1)-th smallest distance including self is the same number either way
    d = pts[idx[:, k]] - pts
    return (d * d).sum(axis=1)


def spacing_sq(grid: np.ndarray, k: int) -> np.ndarray:
    """Squared distance, in grid units, from each point of ``grid`` ``(N, 2)`` (integers) to its ``k``-th
    nearest other point; ``int64``, exact. Points with fewer than ``k`` others get :data:`MAX_SPACING_SQ`.

    A numba search over a uniform grid of about two points per cell (exact integer arithmetic). The scans cost
    about the sum over cells of the squared point counts; trained models are clustered (up to ~300 points in one
    cell on Kodak at N = 9000, a sum of ~19 per point, where the grid was still 2.3x faster than the tree), so
    only beyond 64 per point (e.g. a forged file of repeated points) a k-d tree is used instead (exact too:
    squared distances of integer coordinates below 2^26 are exact in float64, and the neighbour found is
    re-measured in integers)."""
    pts = np.ascontiguousarray(grid, dtype=np.int64)
    n = pts.shape[0]
    out = np.full(n, MAX_SPACING_SQ, dtype=np.int64)
    if n <= k or k < 1:
        return out
    x0, y0 = int(pts[:, 0].min()), int(pts[:, 1].min())
    w, h = int(pts[:, 0].max()) - x0 + 1, int(pts[:, 1].max()) - y0 + 1
    cell = max(1, math.ceil(math.sqrt(_CELL_TARGET * w * h / n)))
    gx, gy = (w + cell - 1) // cell, (h + cell - 1) // cell
    if gx * gy <= 4 * n + 16:  # always true up to rounding; guards the allocation anyway
        start, ids = _bin_points(pts, x0, y0, cell, gx, gy)
        counts = np.diff(start)
        if int((counts * counts).sum()) <= _MAX_CELL_WORK * n + 4096:  # bounds the pair scans at O(n)
            return _kth_spacing_grid(pts, k, x0, y0, cell, gx, gy, start, ids)
    return _spacing_sq_tree(pts, k)


def assign_tiers(grid: np.ndarray, thresholds: Sequence[int], k: int) -> np.ndarray:
    """Tier of each point: the number of ``thresholds`` (ascending integers) that its squared spacing
    exceeds, so tier 0 is the densest. ``int64`` array of shape ``(N,)``."""
    th = np.asarray(thresholds, dtype=np.int64)
    return np.searchsorted(th, spacing_sq(grid, k), side="left").astype(np.int64)


def tier_thresholds(grid: np.ndarray, n_tiers: int, k: int) -> list[int]:
    """Thresholds giving ``n_tiers`` tiers of (about) equal counts: the spacing quantiles."""
    if n_tiers <= 1:
        return []
    s = spacing_sq(grid, k)
    qs = [int(np.quantile(s, t / n_tiers, method="lower")) for t in range(1, n_tiers)]
    return sorted(min(q, MAX_SPACING_SQ - 1) for q in qs)


def _ptq(x: Tensor, bits: int) -> tuple[Tensor, np.ndarray]:
    """Min/max uniform quantisation of ``x`` ``(M, 3)`` per channel at ``bits``: (dequantised, symbols)."""
    lo = x.min(dim=0).values
    hi = x.max(dim=0).values
    levels = (1 << bits) - 1
    scale = ((hi - lo) / levels).clamp_min(1e-6)
    q = torch.clamp(torch.round((x - lo) / scale), 0, levels)
    return q * scale + lo, q.long().numpy()


def choose_tier_bits(
    chol: Tensor,
    tiers: np.ndarray,
    n_tiers: int,
    sse: Callable[[Tensor], float],
    bits_per_gaussian: float,
    candidates: Sequence[int] = (3, 4, 5, 6, 7, 8),
    start: int = 6,
    alpha: float = ALPHA,
    passes: int = 2,
) -> tuple[list[int], dict[str, float]]:
    """RD-aware bit depth per tier (see the module docs).

    ``chol``: ``(N, 3)`` Cholesky parameters; ``tiers``: their tiers; ``sse(cov)``: squared error of the render
    with covariance ``cov``; ``bits_per_gaussian``: the current rate per Gaussian (for ``lambda``). Returns the
    bit depths and a summary (``lambda``, the SSE and covariance bits before and after).
    """
    chol = chol.detach().cpu().float()
    n = chol.shape[0]
    masks = [torch.from_numpy(tiers == t) for t in range(n_tiers)]
    bits = [start] * n_tiers

    def evaluate(bits_: list[int]) -> tuple[float, float]:
        cov = chol.clone()
        rate = 0.0
        for t, m in enumerate(masks):
            if not bool(m.any()):
                continue
            deq, sym = _ptq(chol[m], bits_[t])
            cov[m] = deq
            rate += sum(ideal_code_length_bits(sym[:, j], 1 << bits_[t]) for j in range(3))
        return sse(cov), rate

    d0, r0 = evaluate(bits)
    lam = alpha * d0 / (max(n, 1) * max(bits_per_gaussian, 1e-9))
    best_j = d0 + lam * r0
    best = (d0, r0)
    for _ in range(passes):
        changed = False
        for t in range(n_tiers):
            for b in candidates:
                if b == bits[t]:
                    continue
                trial = bits.copy()
                trial[t] = b
                d, r = evaluate(trial)
                j = d + lam * r
                if j < best_j - 1e-12 * abs(best_j):
                    best_j, bits, best, changed = j, trial, (d, r), True
        if not changed:
            break
    info = {"lambda": lam, "sse_start": d0, "cov_bits_start": r0, "sse": best[0], "cov_bits": best[1],
            "psnr_gain_equiv_db": 0.0 if best[0] <= 0 or d0 <= 0 else 10 * math.log10(d0 / best[0])}
    return bits, info
