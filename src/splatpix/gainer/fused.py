"""Fused kernels of GaINeR's training step with frozen means (numba, float32), each beside its PyTorch reference.

With frozen means, the neighbour list of every pixel and the hash-grid corners of every mean never change, so
:class:`~splatpix.gainer.plan.FrozenPlan` computes them once and the step only evaluates what depends on the
trained parameters:

* :func:`gaussian_aggregate`: for each query ``p`` and its neighbours ``i = idx[p, k]`` (``-1`` = none), the
  Gaussian weight ``w = exp(-1/2 |z|^2)``, ``z = L_i^-1 (x_p - mu_i)`` with ``L = [[exp(a), 0], [c, exp(b)]]``
  (``cov_params = (a, c, b)``, as :class:`~splatpix.gainer.field.GainerField`), and the aggregate
  ``S_p = sum_k w f_i`` (``"sum"``) or ``S_p / max(sum_k w, 1e-12)`` (``"mean"``). One forward pass parallel over
  queries; the backward is one pass parallel over **Gaussians** through the transposed neighbour lists (the pairs
  of each Gaussian, precomputed), so the feature and covariance gradients are written without races or atomics.
* :func:`compact_grid`: the hash grid at the (frozen) means as a fixed sparse map from a *compact* table (only the
  rows some mean touches, :mod:`.plan`): ``feats[n, l F + f] = sum_c cw[n, l, c] table[rows[n, l, c], f]``. Forward
  parallel over means; backward parallel over chunks of levels (each level owns a disjoint range of rows; a
  transposed, row-parallel form was measured 3x slower: its reads of the gradient are scattered).

Both have a torch reference (:func:`gaussian_aggregate_reference`, :func:`compact_grid_reference`: plain autograd)
that the tests compare values and gradients against.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import SplatpixError
from ..jit import njit, prange

__all__ = ["aggregate_forward", "compact_grid", "covariance_terms", "compact_grid_reference", "gaussian_aggregate",
           "gaussian_aggregate_reference"]

MEAN_EPS = 1e-12
_F = np.float32


# ------------------------------------------------------------------------------------------ torch references


def gaussian_aggregate_reference(q: Tensor, idx: Tensor, means: Tensor, cov_params: Tensor, feats: Tensor,
                                 mean: bool = False) -> tuple[Tensor, Tensor]:
    """``(agg (P, D), w (P, K))`` by PyTorch ops (differentiable w.r.t. ``cov_params`` and ``feats``)."""
    valid = idx >= 0
    ic = idx.clamp(min=0).long()
    geo = torch.cat((means.detach(), cov_params), 1)[ic]  # (P, K, 5)
    d0 = q[:, None, 0] - geo[..., 0]
    d1 = q[:, None, 1] - geo[..., 1]
    z1 = d0 * torch.exp(-geo[..., 2])
    z2 = (d1 - geo[..., 3] * z1) * torch.exp(-geo[..., 4])
    w = torch.exp(-0.5 * (z1 * z1 + z2 * z2)) * valid.to(z1.dtype)
    agg = torch.bmm(w.unsqueeze(1), feats[ic]).squeeze(1)
    if mean:
        agg = agg / w.sum(1, keepdim=True).clamp_min(MEAN_EPS)
    return agg, w


def compact_grid_reference(rows: Tensor, cw: Tensor, table: Tensor) -> Tensor:
    """``(N, L * F)`` features from ``rows`` / ``cw`` ``(N, L, 4)`` and a compact ``(U, F)`` table (autograd)."""
    n, lev, _ = rows.shape
    vals = table[rows.long()]  # (N, L, 4, F)
    return (cw.unsqueeze(-1) * vals).sum(2).reshape(n, lev * table.shape[1])


# ------------------------------------------------------------------------------------------ aggregation kernels


@njit(parallel=True)
def _agg_forward(q, idx, means, geo, feats, mean, w_out, wsum_out, out):
    p_n, k_n = idx.shape
    d_n = feats.shape[1]
    for p in prange(p_n):
        qx = q[p, 0]
        qy = q[p, 1]
        for d in range(d_n):
            out[p, d] = _F(0.0)
        ws = _F(0.0)
        for k in range(k_n):
            i = idx[p, k]
            if i < 0:
                w_out[p, k] = _F(0.0)
                continue
            z1 = (qx - means[i, 0]) * geo[i, 0]
            z2 = ((qy - means[i, 1]) - geo[i, 1] * z1) * geo[i, 2]
            w = np.exp(_F(-0.5) * (z1 * z1 + z2 * z2))
            w_out[p, k] = w
            ws += w
            for d in range(d_n):
                out[p, d] += w * feats[i, d]
        wsum_out[p] = ws
        if mean:
            inv = _F(1.0) / max(ws, _F(MEAN_EPS))
            for d in range(d_n):
                out[p, d] *= inv


@njit(parallel=True)
def _agg_prepare_mean(g, out, wsum, gs, gwsum):
    """Mean mode: ``gs = g / max(W, eps)``, ``gwsum = -<g, out> / W`` (0 where the floor is active)."""
    p_n, d_n = g.shape
    for p in prange(p_n):
        ws = wsum[p]
        den = max(ws, _F(MEAN_EPS))
        inv = _F(1.0) / den
        s = _F(0.0)
        for d in range(d_n):
            gs[p, d] = g[p, d] * inv
            s += g[p, d] * out[p, d]
        gwsum[p] = -s * inv if ws > _F(MEAN_EPS) else _F(0.0)


@njit(parallel=True)
def _agg_backward(q, starts, pairs, k_n, means, geo, feats, w, gs, gwsum, mean, g_feats, g_cov):
    """Parallel over Gaussians: each Gaussian's pairs ``pairs[starts[i]:starts[i + 1]]`` (``p * K + k``)."""
    n_n = starts.shape[0] - 1
    d_n = feats.shape[1]
    for i in prange(n_n):
        mx = means[i, 0]
        my = means[i, 1]
        ia = geo[i, 0]
        c = geo[i, 1]
        ib = geo[i, 2]
        ga = _F(0.0)
        gc = _F(0.0)
        gb = _F(0.0)
        for d in range(d_n):
            g_feats[i, d] = _F(0.0)
        for j in range(starts[i], starts[i + 1]):
            pk = pairs[j]
            p = pk // k_n
            wk = w[p, pk - p * k_n]
            gw = _F(0.0)
            for d in range(d_n):
                gp = gs[p, d]
                gw += gp * feats[i, d]
                g_feats[i, d] += wk * gp
            if mean:
                gw += gwsum[p]
            z1 = (q[p, 0] - mx) * ia
            z2 = ((q[p, 1] - my) - c * z1) * ib
            t = gw * wk
            ga += t * (z1 * z1 - c * ib * z1 * z2)
            gc += t * (z1 * z2 * ib)
            gb += t * (z2 * z2)
        g_cov[i, 0] = ga
        g_cov[i, 1] = gc
        g_cov[i, 2] = gb


def _geo(cov_params: np.ndarray) -> np.ndarray:
    """``(N, 3)`` ``(exp(-a), c, exp(-b))``, what the kernels use of each Gaussian's covariance."""
    g = np.empty_like(cov_params)
    g[:, 0] = np.exp(-cov_params[:, 0])
    g[:, 1] = cov_params[:, 1]
    g[:, 2] = np.exp(-cov_params[:, 2])
    return g


def _f32(t: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return np.ascontiguousarray(t, dtype=np.float32)
    return np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)


def covariance_terms(cov_params: Tensor) -> np.ndarray:
    """``(N, 3)`` float32 ``(exp(-a), c, exp(-b))`` of ``(N, 3)`` covariance parameters (what the kernels read)."""
    return _geo(_f32(cov_params))


class _GaussianAggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cov_params: Tensor, feats: Tensor, q: np.ndarray, idx: np.ndarray, means: np.ndarray,
                starts: np.ndarray, pairs: np.ndarray, mean: bool, perm: np.ndarray | None) -> tuple[Tensor, Tensor]:
        cov = _f32(cov_params)
        geo = _geo(cov if perm is None else cov[perm])
        f = _f32(feats)
        p_n, k_n = idx.shape
        w = np.empty((p_n, k_n), dtype=np.float32)
        wsum = np.empty(p_n, dtype=np.float32)
        out = np.empty((p_n, f.shape[1]), dtype=np.float32)
        if p_n:
            _agg_forward(q, idx, means, geo, f, mean, w, wsum, out)
        ctx.arrays = (q, idx, means, starts, pairs, geo, f, w, wsum, out)
        ctx.mean = mean
        ctx.perm = perm
        wt = torch.from_numpy(w)
        ctx.mark_non_differentiable(wt)
        return torch.from_numpy(out), wt

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_w: Tensor):
        q, idx, means, starts, pairs, geo, f, w, wsum, out = ctx.arrays
        g = _f32(grad)
        if ctx.mean:
            gs = np.empty_like(g)
            gwsum = np.empty(g.shape[0], dtype=np.float32)
            _agg_prepare_mean(g, out, wsum, gs, gwsum)
        else:
            gs, gwsum = g, np.zeros(1, dtype=np.float32)
        g_feats = np.empty_like(f)
        g_cov = np.empty((f.shape[0], 3), dtype=np.float32)
        _agg_backward(q, starts, pairs, idx.shape[1], means, geo, f, w, gs, gwsum, ctx.mean, g_feats, g_cov)
        if ctx.perm is not None:  # back to the caller's order of the covariances
            g_field = np.empty_like(g_cov)
            g_field[ctx.perm] = g_cov
            g_cov = g_field
        return torch.from_numpy(g_cov), torch.from_numpy(g_feats), None, None, None, None, None, None, None


def gaussian_aggregate(q: np.ndarray, idx: np.ndarray, means: np.ndarray, cov_params: Tensor, feats: Tensor,
                       starts: np.ndarray, pairs: np.ndarray, mean: bool = False,
                       perm: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
    """``(agg (P, D), w (P, K))`` of the module docstring by the numba kernels; differentiable w.r.t.
    ``cov_params`` ``(N, 3)`` and ``feats`` ``(N, D)`` (float32 CPU tensors). ``q`` ``(P, 2)`` float32, ``idx``
    ``(P, K)`` int32, ``means`` ``(N, 2)`` float32 and the transposed lists ``starts`` ``(N + 1,)`` / ``pairs``
    (``p * K + k``, ascending ``p`` within a Gaussian) are the frozen plan's numpy arrays. With ``perm``, the
    Gaussian ``i`` of the other arrays has the covariance ``cov_params[perm[i]]`` (and its gradient goes there)."""
    if feats.shape[0] != means.shape[0] or tuple(cov_params.shape) != (means.shape[0], 3):
        raise SplatpixError(f"aggregation needs (N, 3) cov_params and (N, D) feats for {means.shape[0]} means")
    return _GaussianAggregate.apply(cov_params, feats, q, idx, means, starts, pairs, bool(mean), perm)


def aggregate_forward(q: Tensor, idx: Tensor, means: Tensor | np.ndarray, cov_params: Tensor | np.ndarray,
                      feats: Tensor | np.ndarray, mean: bool = False, *, geo: np.ndarray | None = None) -> Tensor:
    """``(P, D)`` aggregate of :func:`gaussian_aggregate` without gradients (rendering): float32 CPU tensors or
    arrays, ``idx`` ``(P, K)`` of any integer type (``-1`` = none); ``geo`` (:func:`covariance_terms` of
    ``cov_params``) saves recomputing it for every chunk of a render."""
    qn = _f32(q)
    ia = np.ascontiguousarray(idx.numpy(), dtype=np.int32)
    f = _f32(feats)
    p_n, k_n = ia.shape
    out = np.empty((p_n, f.shape[1]), dtype=np.float32)
    if p_n:
        w = np.empty((p_n, k_n), dtype=np.float32)
        wsum = np.empty(p_n, dtype=np.float32)
        g = _geo(_f32(cov_params)) if geo is None else geo
        _agg_forward(qn, ia, _f32(means), g, f, bool(mean), w, wsum, out)
    return torch.from_numpy(out)


# ------------------------------------------------------------------------------------------ compact hash grid


@njit(parallel=True)
def _grid_forward(rows, cw, table, out):
    n_n, l_n, _ = rows.shape
    f_n = table.shape[1]
    for n in prange(n_n):
        for lev in range(l_n):
            r0 = rows[n, lev, 0]
            r1 = rows[n, lev, 1]
            r2 = rows[n, lev, 2]
            r3 = rows[n, lev, 3]
            w0 = cw[n, lev, 0]
            w1 = cw[n, lev, 1]
            w2 = cw[n, lev, 2]
            w3 = cw[n, lev, 3]
            o = lev * f_n
            for f in range(f_n):
                out[n, o + f] = w0 * table[r0, f] + w1 * table[r1, f] + w2 * table[r2, f] + w3 * table[r3, f]


@njit(parallel=True)
def _grid_backward(rows, cw, grad, n_chunks, g_table):
    # parallel over chunks of levels: level l's rows are its own (the plan numbers them level by level), so no
    # races; each chunk walks the means once and reads only its levels' slice of each mean's corners
    n_n, l_n, _ = rows.shape
    f_n = g_table.shape[1]
    for t in prange(n_chunks):
        l0 = (t * l_n) // n_chunks
        l1 = ((t + 1) * l_n) // n_chunks
        for n in range(n_n):
            for lev in range(l0, l1):
                o = lev * f_n
                for c in range(4):
                    r = rows[n, lev, c]
                    wc = cw[n, lev, c]
                    for f in range(f_n):
                        g_table[r, f] += wc * grad[n, o + f]


class _CompactGrid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table: Tensor, rows: np.ndarray, cw: np.ndarray) -> Tensor:
        t = _f32(table)
        out = np.empty((rows.shape[0], rows.shape[1] * t.shape[1]), dtype=np.float32)
        if rows.shape[0]:
            _grid_forward(rows, cw, t, out)
        ctx.arrays = (rows, cw, t.shape)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad: Tensor):
        rows, cw, shape = ctx.arrays
        g_table = np.zeros(shape, dtype=np.float32)
        if rows.shape[0]:
            from numba import get_num_threads  # loaded by the forward's kernel

            _grid_backward(rows, cw, _f32(grad), min(rows.shape[1], get_num_threads()), g_table)
        return torch.from_numpy(g_table), None, None


def compact_grid(rows: np.ndarray, cw: np.ndarray, table: Tensor) -> Tensor:
    """``(N, L * F)`` features of the means from the compact ``(U, F)`` table (numba; differentiable w.r.t.
    ``table``). ``rows`` ``(N, L, 4)`` int32 (level ``l``'s rows in a range of their own), ``cw`` ``(N, L, 4)``
    float32 (the bilinear weights); the rows are trusted to be in range (the plan builds them)."""
    if table.dim() != 2 or rows.ndim != 3 or cw.shape != rows.shape:
        raise SplatpixError(f"compact grid needs (N, L, 4) rows and weights and a (U, F) table, got "
                            f"{rows.shape}, {cw.shape}, {tuple(table.shape)}")
    return _CompactGrid.apply(table, rows, cw)
