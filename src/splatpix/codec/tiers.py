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


def spacing_sq(grid: np.ndarray, k: int) -> np.ndarray:
    """Squared distance, in grid units, from each point of ``grid`` ``(N, 2)`` (integers) to its ``k``-th
    nearest other point; ``int64``, exact (squared distances of integer coordinates below 2^26 are exact in
    float64, and rounding recovers them from the tree's square roots). Points with fewer than ``k`` others get
    :data:`MAX_SPACING_SQ`."""
    pts = np.asarray(grid, dtype=np.int64)
    n = pts.shape[0]
    out = np.full(n, MAX_SPACING_SQ, dtype=np.int64)
    if n <= k or k < 1:
        return out
    tree = cKDTree(pts.astype(np.float64))
    dist, idx = tree.query(pts.astype(np.float64), k=k + 1)
    # the k-th neighbour other than the point itself; with duplicates the "self" may be any copy at distance 0,
    # but the (k+1)-th smallest distance including self is the same number either way
    far = idx[:, k]
    d = pts[far] - pts
    return (d * d).sum(axis=1)


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
