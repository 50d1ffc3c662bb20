"""Weighted neighbour aggregation ``out[p] = sum_k w[p, k] * feats[idx[p, k]]`` (GaINeR's feature mixing).

``idx`` ``(P, K)`` int64 with ``-1`` for a missing neighbour (contributes nothing), ``w`` ``(P, K)``, ``feats``
``(N, D)``. Differentiable w.r.t. ``w`` (``grad_w[p, k] = <grad[p], feats[idx[p, k]]>``) and ``feats``
(``grad_feats[n] = sum_{(p, k): idx[p, k] = n} w[p, k] grad[p]``).

Backends: :func:`aggregate_reference` (PyTorch gather + batched matmul, any device, autograd) and numba CPU kernels
(forward parallel over queries; backward: the weight gradient parallel over queries, the feature gradient a serial
scatter-add, which has no races and costs ``P K D`` multiply-adds). The gather's autograd backward in PyTorch is a
scatter through ``index_put_``, several times slower than the kernel on the CPU; :func:`aggregate` picks numba for
float32 CPU tensors.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from ..errors import SplatpixError
from ..jit import NUMBA_CACHE

__all__ = ["aggregate", "aggregate_reference"]

BACKENDS = ("auto", "numba", "reference")


def aggregate_reference(w: Tensor, idx: Tensor, feats: Tensor) -> Tensor:
    """``(P, D)`` weighted sums by PyTorch ops (missing neighbours masked out)."""
    valid = idx >= 0
    ic = idx.clamp(min=0)
    wm = w * valid.to(w.dtype)
    return torch.bmm(wm.unsqueeze(1), feats[ic]).squeeze(1)


@njit(cache=NUMBA_CACHE, parallel=True)
def _forward(w, idx, feats, out):
    p_n, k_n = idx.shape
    d_n = feats.shape[1]
    for p in prange(p_n):
        for k in range(k_n):
            i = idx[p, k]
            if i < 0:
                continue
            wk = w[p, k]
            for d in range(d_n):
                out[p, d] += wk * feats[i, d]


@njit(cache=NUMBA_CACHE, parallel=True)
def _grad_w(g, idx, feats, gw):
    p_n, k_n = idx.shape
    d_n = feats.shape[1]
    for p in prange(p_n):
        for k in range(k_n):
            i = idx[p, k]
            if i < 0:
                continue
            s = np.float32(0.0)
            for d in range(d_n):
                s += g[p, d] * feats[i, d]
            gw[p, k] = s


@njit(cache=NUMBA_CACHE)
def _grad_feats(g, idx, w, gf):
    p_n, k_n = idx.shape
    d_n = gf.shape[1]
    for p in range(p_n):
        for k in range(k_n):
            i = idx[p, k]
            if i < 0:
                continue
            wk = w[p, k]
            for d in range(d_n):
                gf[i, d] += wk * g[p, d]


def _np(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(torch.float32).numpy())


class _NumbaAggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: Tensor, idx: Tensor, feats: Tensor) -> Tensor:
        ctx.save_for_backward(w, idx, feats)
        out = np.zeros((idx.shape[0], feats.shape[1]), dtype=np.float32)
        _forward(_np(w), np.ascontiguousarray(idx.numpy()), _np(feats), out)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad: Tensor):
        w, idx, feats = ctx.saved_tensors
        g = _np(grad)
        ia = np.ascontiguousarray(idx.numpy())
        gw = gf = None
        if ctx.needs_input_grad[0]:
            gw_np = np.zeros(idx.shape, dtype=np.float32)
            _grad_w(g, ia, _np(feats), gw_np)
            gw = torch.from_numpy(gw_np)
        if ctx.needs_input_grad[2]:
            gf_np = np.zeros(feats.shape, dtype=np.float32)
            _grad_feats(g, ia, _np(w), gf_np)
            gf = torch.from_numpy(gf_np)
        return gw, None, gf


def aggregate(w: Tensor, idx: Tensor, feats: Tensor, backend: str = "auto") -> Tensor:
    """``(P, D)`` ``sum_k w[p, k] feats[idx[p, k]]`` over the valid (``>= 0``) indices (module docstring)."""
    if backend not in BACKENDS:
        raise SplatpixError(f"unknown aggregation backend {backend!r}; use one of {BACKENDS}")
    if w.dim() != 2 or idx.shape != w.shape or feats.dim() != 2:
        raise SplatpixError(f"aggregation needs w, idx (P, K) and feats (N, D); got {tuple(w.shape)}, "
                            f"{tuple(idx.shape)}, {tuple(feats.shape)}")
    if idx.numel() and int(idx.max()) >= feats.shape[0]:
        raise SplatpixError(f"aggregation index {int(idx.max())} out of range for {feats.shape[0]} features")
    cpu = w.device.type == "cpu" and feats.device.type == "cpu" and idx.device.type == "cpu"
    f32 = w.dtype == torch.float32 and feats.dtype == torch.float32
    if backend == "auto":
        backend = "numba" if cpu and f32 else "reference"
    if backend == "numba":
        if not cpu:
            raise SplatpixError("the numba aggregation backend needs CPU tensors")
        return _NumbaAggregate.apply(w, idx.to(torch.int64), feats)
    return aggregate_reference(w, idx, feats)
