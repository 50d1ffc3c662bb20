"""The training loss.

``clamped_mse(out, target)`` is GaussianImage's training loss: the mean squared error of the render clamped to
``[0, 1]``. Written naively in torch it costs four full-image passes forward and more backward (clamp, subtract,
square, mean, then their gradients), which dominates a CPU training step when N is small. The numba path does
the loss and its gradient in one parallel pass and keeps the gradient for backward; the torch expression is
the reference the tests compare against.

The other terms a fit may add live beside it: the geometry-consistent regulariser in :mod:`.geometry`, the
footprint (decode-time) term in :mod:`.footprint`.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from ..jit import NUMBA_CACHE

__all__ = ["clamped_mse", "clamped_mse_reference"]


def clamped_mse_reference(out: Tensor, target: Tensor, clamp: bool = True) -> Tensor:
    pred = out.clamp(0.0, 1.0) if clamp else out
    return torch.mean((pred - target) ** 2)


# no fast-math: a NaN or infinite render must give a NaN loss (the NaN guard relies on it)
@njit(cache=NUMBA_CACHE, parallel=True)
def _clamped_mse(out, target, grad, clamp):
    n = out.shape[0]
    n_chunks = 64
    partial = np.zeros(n_chunks, dtype=np.float64)
    scale = np.float32(2.0 / n)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for k in prange(n_chunks):
        acc = np.float32(0.0)
        for i in range(k * n // n_chunks, (k + 1) * n // n_chunks):
            o = out[i]
            v = min(max(o, zero), one) if clamp else o
            d = v - target[i]
            acc += d * d + (o - o)  # o - o is NaN exactly when o is NaN or infinite
            # zero gradient where the clamp is active (v differs from o); NaN stays NaN
            grad[i] = scale * d if not (v != o) else zero
        partial[k] = acc
    return partial.sum() / n


class _ClampedMSE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out: Tensor, target: Tensor, clamp: bool) -> Tensor:
        o = out.detach().contiguous().view(-1).numpy()
        t = target.detach().contiguous().view(-1).numpy()
        grad = np.empty_like(o)
        loss = _clamped_mse(o, t, grad, clamp)
        ctx.grad = torch.from_numpy(grad).view(out.shape)
        return torch.tensor(loss, dtype=out.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        return ctx.grad * g, None, None


def clamped_mse(out: Tensor, target: Tensor, clamp: bool = True) -> Tensor:
    """``mean((clamp(out, 0, 1) - target)^2)``, differentiable w.r.t. ``out`` (zero gradient where clamped).

    The gradient w.r.t. ``target`` is not computed (it is data). Uses the fused numba kernel for float32 CPU
    tensors, the torch expression otherwise.
    """
    if out.shape != target.shape:
        raise ValueError(f"shape mismatch {tuple(out.shape)} vs {tuple(target.shape)}")
    fast = (out.device.type == "cpu" and out.dtype == torch.float32 and target.dtype == torch.float32
            and not target.requires_grad)
    if fast:
        return _ClampedMSE.apply(out, target, clamp)
    return clamped_mse_reference(out, target, clamp)
