"""Exact K-nearest accepted Gaussians by a ring search over a grid of the means (:class:`RingIndex`).

:class:`~splatpix.gainer.knn.KnnIndex` registers every Gaussian's acceptance *disc* in the cells it overlaps and a
query scans its cell's list. After training, relative radii (``3 sigma``) spread widely: a trained Kodak model of
500 000 Gaussians had a median sigma of 3 mean spacings and a largest of 31, so the disc grid held 10 million
registrations in 95 x 98 cells and a native-size render spent 6 s in the KNN. The K nearest, however, lie within a
few spacings of every pixel. :class:`RingIndex` bins the *means* (not the discs) in a uniform grid of about two
means per cell and searches each query's cells ring by ring (Chebyshev rings around its cell), keeping the ``K``
nearest accepted ones (``|x - mu_i|^2 <= r_i^2`` in float32, ordered by ``(dist2, index)``), and stops when the next
ring cannot hold anything nearer than the current ``K``-th (its cells are at least ``ring * cell`` away) or
anything accepted at all (``ring * cell`` past the largest radius). The result equals
:func:`~splatpix.gainer.knn.knn_bruteforce` exactly (tested), as :class:`~splatpix.gainer.knn.KnnIndex`'s does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..jit import njit, prange
from .knn import check_gaussians, check_k, check_points

__all__ = ["RingIndex"]

_INF32 = np.float32(np.inf)


@njit()
def _bin(means, x0, y0, inv, gx, gy):
    n = means.shape[0]
    cell = np.empty(n, dtype=np.int64)
    starts = np.zeros(gx * gy + 1, dtype=np.int64)
    for i in range(n):
        cx = int(math.floor((np.float64(means[i, 0]) - x0) * inv))
        cy = int(math.floor((np.float64(means[i, 1]) - y0) * inv))
        cx = min(max(cx, 0), gx - 1)
        cy = min(max(cy, 0), gy - 1)
        c = cy * gx + cx
        cell[i] = c
        starts[c + 1] += 1
    for c in range(gx * gy):
        starts[c + 1] += starts[c]
    fill = starts[:-1].copy()
    ids = np.empty(n, dtype=np.int32)
    for i in range(n):
        c = cell[i]
        ids[fill[c]] = i
        fill[c] += 1
    return starts, ids


@njit(parallel=True)
def _ring_query(queries, means, radius, starts, ids, x0, y0, inv, gx, gy, cell_size, r_max, out_idx, out_d2):
    k = out_idx.shape[1]
    for p in prange(queries.shape[0]):
        qx = queries[p, 0]
        qy = queries[p, 1]
        cx = int(math.floor((np.float64(qx) - x0) * inv))
        cy = int(math.floor((np.float64(qy) - y0) * inv))
        found = 0
        # the farthest grid cell is this many rings away (the query may lie outside the grid)
        last = max(max(cx, gx - 1 - cx), max(cy, gy - 1 - cy))
        for ring in range(last + 1):
            # every cell of this ring is at least (ring - 1) * cell away from the query (margined for float32)
            bound = (ring - 1) * cell_size * (1.0 - 1e-5) - 1e-6
            if ring > 1 and bound > r_max:
                break
            if ring > 1 and found == k and np.float64(out_d2[p, k - 1]) < bound * bound:
                break
            for yy in range(cy - ring, cy + ring + 1):
                if yy < 0 or yy >= gy:
                    continue
                edge_y = yy == cy - ring or yy == cy + ring
                step = 1 if edge_y else 2 * ring
                xx = cx - ring
                while xx <= cx + ring:
                    if 0 <= xx < gx:
                        c = yy * gx + xx
                        for j in range(starts[c], starts[c + 1]):
                            i = ids[j]
                            dx = qx - means[i, 0]
                            dy = qy - means[i, 1]
                            d2 = dx * dx + dy * dy
                            ri = radius[i]
                            if not (d2 <= ri * ri and d2 < _INF32):
                                continue
                            if found < k:
                                pos = found
                                found += 1
                            elif d2 < out_d2[p, k - 1] or (d2 == out_d2[p, k - 1] and i < out_idx[p, k - 1]):
                                pos = k - 1
                            else:
                                continue
                            while pos > 0 and (out_d2[p, pos - 1] > d2
                                               or (out_d2[p, pos - 1] == d2 and out_idx[p, pos - 1] > i)):
                                out_d2[p, pos] = out_d2[p, pos - 1]
                                out_idx[p, pos] = out_idx[p, pos - 1]
                                pos -= 1
                            out_d2[p, pos] = d2
                            out_idx[p, pos] = i
                    if ring == 0:
                        break
                    xx += step


class RingIndex:
    """A grid of the means for exact K-nearest accepted queries by ring search (module docstring). ``means``
    ``(N, 2)`` and ``radius`` ``(N,)`` (or a scalar) are copied as float32; ``cell_factor`` sets the cell to
    ``sqrt(cell_factor * area / N)`` (about ``cell_factor`` means per cell). The same interface as
    :class:`~splatpix.gainer.knn.KnnIndex` (``query``, ``is_stale``, ``rebuild``, ``version``), so
    :func:`~splatpix.gainer.knn.knn` takes either as ``index``."""

    def __init__(self, means: Tensor, radius: Tensor | float, *, cell_factor: float = 2.0) -> None:
        self.cell_factor = float(cell_factor)
        self.version = 0
        self.rebuild(means, radius)

    def rebuild(self, means: Tensor, radius: Tensor | float) -> None:
        """Re-index ``(means, radius)``; increments :attr:`version`."""
        cell_factor = self.cell_factor
        self.version += 1
        m, r = check_gaussians(means, radius)
        self._means_t = m.cpu().clone().contiguous()
        self._radius_t = r.cpu().clone().contiguous()
        self._means = np.ascontiguousarray(self._means_t.numpy())
        self._radius = np.ascontiguousarray(self._radius_t.numpy())
        n = self._means.shape[0]
        self.r_max = float(self._radius.max()) if n else 0.0
        if n:
            lo = self._means.min(0).astype(np.float64)
            hi = self._means.max(0).astype(np.float64)
        else:
            lo = hi = np.zeros(2)
        w, h = max(float(hi[0] - lo[0]), 1e-9), max(float(hi[1] - lo[1]), 1e-9)
        cell = max(math.sqrt(cell_factor * w * h / max(n, 1)), max(w, h) / 4096.0, 1e-9)
        self._gx = max(1, math.ceil(w / cell))
        self._gy = max(1, math.ceil(h / cell))
        self._x0, self._y0, self._cell = float(lo[0]), float(lo[1]), cell
        self._starts, self._ids = _bin(self._means, self._x0, self._y0, 1.0 / cell, self._gx, self._gy)

    @property
    def n(self) -> int:
        return int(self._means.shape[0])

    def is_stale(self, means: Tensor, radius: Tensor | float) -> bool:
        """Whether ``(means, radius)`` differ from what the index was built from."""
        try:
            m, r = check_gaussians(means, radius)
        except Exception:  # noqa: BLE001 - any invalid input is "stale" (the caller re-validates)
            return True
        if m.shape != self._means_t.shape:
            return True
        return not (torch.equal(m.cpu(), self._means_t) and torch.equal(r.cpu(), self._radius_t))

    def query(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """``(idx, dist2)`` ``(P, k)`` int64 / float32 on ``queries``' device, as :func:`.knn.knn`."""
        k = check_k(k)
        q = check_points(queries, "queries")
        dev = q.device
        qn = np.ascontiguousarray(q.cpu().numpy())
        p = qn.shape[0]
        out_idx = np.full((p, k), -1, dtype=np.int64)
        out_d2 = np.full((p, k), np.inf, dtype=np.float32)
        if p and self.n:
            _ring_query(qn, self._means, self._radius, self._starts, self._ids, self._x0, self._y0, 1.0 / self._cell,
                        self._gx, self._gy, self._cell, self.r_max * (1.0 + 1e-5) + 1e-6, out_idx, out_d2)
        return torch.from_numpy(out_idx).to(dev), torch.from_numpy(out_d2).to(dev)
