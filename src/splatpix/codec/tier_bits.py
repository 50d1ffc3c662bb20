"""RD-aware bit depths of method sga's covariance tiers and scalar colour channels (torch; the encoder only). The
tiers themselves and the choice's rationale are in :mod:`.tiers`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .entropy import ideal_code_length_bits
from .tiers import ALPHA

__all__ = ["choose_tier_bits", "rd_bit_search", "tier_ptq"]


def _ptq(x: Tensor, bits: int) -> tuple[Tensor, np.ndarray]:
    """Min/max uniform quantisation of ``x`` ``(M, 3)`` per channel at ``bits``: (dequantised, symbols)."""
    lo = x.min(dim=0).values
    hi = x.max(dim=0).values
    levels = (1 << bits) - 1
    scale = ((hi - lo) / levels).clamp_min(1e-6)
    q = torch.clamp(torch.round((x - lo) / scale), 0, levels)
    return q * scale + lo, q.long().numpy()


def rd_bit_search(
    evaluate: Callable[[list[int]], tuple[float, float]],
    start: Sequence[int],
    candidates: Sequence[Sequence[int]],
    n: int,
    bits_per_gaussian: float,
    alpha: float = ALPHA,
    passes: int = 2,
) -> tuple[list[int], dict[str, float]]:
    """Coordinate descent over the bit depths of several groups (covariance tiers, colour channels) on ``D + lambda
    R``: ``evaluate(bits)`` gives the render's squared error and the groups' bits; ``lambda`` is the slope of a
    curve ``D ~ R^-alpha`` at the start, with ``R = n * bits_per_gaussian``. Returns the bit depths and a summary
    (``lambda``, the SSE and bits before and after)."""
    bits = list(start)
    d0, r0 = evaluate(bits)
    lam = alpha * d0 / (max(n, 1) * max(bits_per_gaussian, 1e-9))
    best_j = d0 + lam * r0
    best = (d0, r0)
    for _ in range(passes):
        changed = False
        for t in range(len(bits)):
            for b in candidates[t]:
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
    info = {"lambda": lam, "sse_start": d0, "bits_start": r0, "sse": best[0], "bits": best[1],
            "psnr_gain_equiv_db": 0.0 if best[0] <= 0 or d0 <= 0 else 10 * math.log10(d0 / best[0])}
    return bits, info


def tier_ptq(chol: Tensor, masks: list[Tensor], bits: Sequence[int]) -> tuple[Tensor, float]:
    """Min/max post-training quantisation of each tier's Cholesky parameters at its bit depth: (dequantised, the
    symbols' ideal code length in bits)."""
    cov = chol.clone()
    rate = 0.0
    for t, m in enumerate(masks):
        if not bool(m.any()):
            continue
        deq, sym = _ptq(chol[m], bits[t])
        cov[m] = deq
        rate += sum(ideal_code_length_bits(sym[:, j], 1 << bits[t]) for j in range(3))
    return cov, rate


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
    masks = [torch.from_numpy(tiers == t) for t in range(n_tiers)]

    def evaluate(bits_: list[int]) -> tuple[float, float]:
        cov, rate = tier_ptq(chol, masks, bits_)
        return sse(cov), rate

    bits, info = rd_bit_search(evaluate, [start] * n_tiers, [candidates] * n_tiers, chol.shape[0],
                               bits_per_gaussian, alpha, passes)
    info["cov_bits_start"] = info.pop("bits_start")
    info["cov_bits"] = info.pop("bits")
    return bits, info
