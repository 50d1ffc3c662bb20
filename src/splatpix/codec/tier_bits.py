"""RD-aware bit depths of method sga's covariance tiers (torch; the encoder only). The tiers themselves and the
choice's rationale are in :mod:`.tiers`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .entropy import ideal_code_length_bits
from .tiers import ALPHA

__all__ = ["choose_tier_bits"]


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
