"""K nearest Gaussians of query points, within each Gaussian's own radius (GaINeR's neighbour search).

Acceptance rule: Gaussian ``i`` (mean ``mu_i``, radius ``r_i >= 0``) is a candidate neighbour of the query ``x``
iff ``||x - mu_i|| <= r_i``, evaluated in float32 exactly as

    dx = x_0 - mu_i0,  dy = x_1 - mu_i1,  d2 = dx * dx + dy * dy,  accepted iff d2 <= r_i * r_i and d2 < inf

(every operation a float32 IEEE operation, no fused multiply-add). The per-Gaussian radius is GaINeR's
``r_i = sqrt(0.1) * sigma_max_i``; an absolute radius is the same with all ``r_i`` equal (a scalar is accepted).

Result, for ``P`` queries: ``idx`` ``(P, K)`` int64 and ``dist2`` ``(P, K)`` float32 (the ``d2`` above), the ``K``
accepted Gaussians of smallest ``d2`` sorted ascending by ``(d2, index)``, so ties go to the lower index. When
fewer than ``K`` Gaussians are accepted the remaining slots hold index ``-1`` and distance ``+inf`` (GaINeR's
public code pads with index 0, which silently points at a real Gaussian; here a missing neighbour is explicit).
Results are not differentiable; recompute distances from ``idx`` where gradients are needed.

Two implementations with identical results (bit for bit):

* :func:`knn_bruteforce`: pure PyTorch, any device, chunked over queries and Gaussians so memory stays bounded;
  the test oracle and the path for non-CPU tensors.
* :class:`KnnIndex`: a uniform grid over the plane with numba kernels. Every Gaussian is registered (counting
  sort: cell start offsets + Gaussian ids) in every cell its disc ``[mu - r, mu + r]^2`` overlaps (with a small
  safety margin against rounding), so a query only scans the list of its own cell and the answer is exact.
  Queries run in parallel, each keeping a sorted top-K buffer. The grid is coarsened when the number of
  registrations would exceed ``max_registrations``.

:func:`knn` picks the grid for CPU float32 tensors and the brute force otherwise. An index is reusable while the
means and radii do not change: :meth:`KnnIndex.is_stale` compares them with the ones it was built from, and
:func:`knn` rebuilds a stale index it is given.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from ..errors import SplatpixError
from ..jit import NUMBA_CACHE

__all__ = ["MAX_K", "KnnIndex", "check_gaussians", "check_k", "check_points", "knn", "knn_bruteforce"]

MAX_K = 256
DEFAULT_CHUNK_ELEMENTS = 1 << 22  # query-Gaussian pairs per brute-force chunk
MAX_REGISTRATIONS = 1 << 26  # (cell, Gaussian) entries of the grid before it is coarsened
MAX_CELLS = 1 << 22
# Registration margin: a Gaussian is listed in the cells of [mu - e, mu + e] with
# e = r (1 + _REL) + _ABS (1 + |mu|); float32 rounding of the acceptance test can accept points up to
# r (1 + 3 * 2^-24) + 1e-22 away, and the float64 extents are exact to ~1e-16 |mu|, so the margin covers both.
_REL = 1e-5
_ABS = 1e-6

_INF32 = np.float32(np.inf)


# ------------------------------------------------------------------------------------------------ validation

def _as_tensor(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as e:
            raise SplatpixError(f"{name} must be a tensor of real numbers") from e
    if x.dtype == torch.bool or x.is_complex():
        raise SplatpixError(f"{name} must hold real numbers, got dtype {x.dtype}")
    return x.detach()


def check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise SplatpixError(f"k must be an integer, got {k!r}")
    k = int(k)
    if not 1 <= k <= MAX_K:
        raise SplatpixError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


def check_points(x, name: str) -> Tensor:
    x = _as_tensor(x, name)
    if x.dim() != 2 or x.shape[1] != 2:
        raise SplatpixError(f"{name} must have shape (M, 2), got {tuple(x.shape)}")
    x = x.to(torch.float32)
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise SplatpixError(f"{name} must be finite")
    return x


def check_gaussians(means, radius) -> tuple[Tensor, Tensor]:
    means = check_points(means, "means")
    radius = _as_tensor(radius, "radius")
    if radius.dim() == 0:
        radius = radius.expand(means.shape[0])
    if radius.dim() != 1 or radius.shape[0] != means.shape[0]:
        raise SplatpixError(f"radius must have shape ({means.shape[0]},) or be a scalar, got {tuple(radius.shape)}")
    if radius.device != means.device:
        raise SplatpixError(f"radius is on {radius.device} but means are on {means.device}")
    radius = radius.to(torch.float32)
    if radius.numel():
        if not bool(torch.isfinite(radius).all()):
            raise SplatpixError("radius must be finite")
        if bool((radius < 0).any()):
            raise SplatpixError("radius must be non-negative")
    return means, radius


# ----------------------------------------------------------------------------------------------- brute force

def knn_bruteforce(
    queries: Tensor, means: Tensor, radius: Tensor | float, k: int, *, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> tuple[Tensor, Tensor]:
    """K nearest accepted Gaussians of each query by exhaustive search (pure PyTorch, any device).

    Accepts Gaussian ``i`` for query ``x`` iff ``d2 = |x - mu_i|^2 <= r_i^2`` in float32 (see the module
    docstring); returns ``idx`` ``(P, k)`` int64 and ``dist2`` ``(P, k)`` float32 on the inputs' device, sorted by
    ``(dist2, index)`` (ties to the lower index), missing neighbours as ``-1`` / ``+inf``. Inputs are converted
    to float32. At most ``chunk_elements`` query-Gaussian pairs are materialised at once.
    """
    k = check_k(k)
    means, radius = check_gaussians(means, radius)
    queries = check_points(queries, "queries")
    if queries.device != means.device:
        raise SplatpixError(f"queries are on {queries.device} but means are on {means.device}")
    dev = means.device
    n, p = means.shape[0], queries.shape[0]
    out_idx = torch.full((p, k), -1, dtype=torch.int64, device=dev)
    out_d2 = torch.full((p, k), math.inf, dtype=torch.float32, device=dev)
    if n == 0 or p == 0:
        return out_idx, out_d2
    chunk_elements = max(int(chunk_elements), 1)
    n_chunk = min(n, chunk_elements)
    p_chunk = max(1, chunk_elements // n_chunk)
    r2 = radius * radius
    mx, my = means[:, 0], means[:, 1]
    ids = torch.arange(n, dtype=torch.int64, device=dev)
    for p0 in range(0, p, p_chunk):
        qx = queries[p0:p0 + p_chunk, 0:1]
        qy = queries[p0:p0 + p_chunk, 1:2]
        best = None
        for n0 in range(0, n, n_chunk):
            sl = slice(n0, n0 + n_chunk)
            dx = qx - mx[sl]
            dy = qy - my[sl]
            d2 = dx * dx + dy * dy
            ok = (d2 <= r2[sl]) & (d2 < math.inf)
            d2 = d2.masked_fill(~ok, math.inf)
            # d2 >= 0, so its float32 bit pattern orders like the value: (bits << 32) | index sorts by (d2, index)
            key = (d2.view(torch.int32).to(torch.int64) << 32) | ids[sl]
            key = torch.topk(key, min(k, key.shape[1]), dim=1, largest=False, sorted=True).values
            if best is not None:
                key = torch.cat((best, key), 1)
                key = torch.topk(key, min(k, key.shape[1]), dim=1, largest=False, sorted=True).values
            best = key
        d2 = (best >> 32).to(torch.int32).view(torch.float32)
        idx = (best & 0xFFFFFFFF).masked_fill(torch.isinf(d2), -1)
        out_idx[p0:p0 + p_chunk, :idx.shape[1]] = idx
        out_d2[p0:p0 + p_chunk, :idx.shape[1]] = d2
    return out_idx, out_d2


# ------------------------------------------------------------------------------------------------ numba grid

@njit(cache=NUMBA_CACHE, inline="always")
def _cell(x, origin, inv, g):
    """Cell of coordinate ``x`` (float64) along one axis, clipped to ``[0, g - 1]``; monotone in ``x``."""
    t = np.floor((x - origin) * inv)
    if t < 0.0:
        return 0
    if t > g - 1.0:
        return g - 1
    return int(t)


@njit(cache=NUMBA_CACHE)
def _cell_ranges(means, radius, x0, y0, inv, gx, gy, cx0, cx1, cy0, cy1):
    """Inclusive cell ranges of every Gaussian's (margined) disc; returns the number of registrations."""
    total = 0
    for i in range(means.shape[0]):
        mx = np.float64(means[i, 0])
        my = np.float64(means[i, 1])
        r = np.float64(radius[i]) * (1.0 + _REL)
        ex = r + _ABS * (1.0 + abs(mx))
        ey = r + _ABS * (1.0 + abs(my))
        cx0[i] = _cell(mx - ex, x0, inv, gx)
        cx1[i] = _cell(mx + ex, x0, inv, gx)
        cy0[i] = _cell(my - ey, y0, inv, gy)
        cy1[i] = _cell(my + ey, y0, inv, gy)
        total += (cx1[i] - cx0[i] + 1) * (cy1[i] - cy0[i] + 1)
    return total


@njit(cache=NUMBA_CACHE)
def _fill_cells(cx0, cx1, cy0, cy1, gx, gy, total):
    """Counting sort of Gaussians into cells: ``starts`` (gx*gy + 1) and ``ids``, ascending ids within a cell."""
    n = cx0.shape[0]
    n_cells = gx * gy
    starts = np.zeros(n_cells + 1, dtype=np.int64)
    for i in range(n):
        for cy in range(cy0[i], cy1[i] + 1):
            for cx in range(cx0[i], cx1[i] + 1):
                starts[cy * gx + cx + 1] += 1
    for c in range(n_cells):
        starts[c + 1] += starts[c]
    fill = starts[:-1].copy()
    ids = np.empty(total, dtype=np.int32)
    for i in range(n):
        for cy in range(cy0[i], cy1[i] + 1):
            for cx in range(cx0[i], cx1[i] + 1):
                c = cy * gx + cx
                ids[fill[c]] = i
                fill[c] += 1
    return starts, ids


@njit(cache=NUMBA_CACHE, parallel=True)
def _query(queries, means, radius, starts, ids, x0, y0, inv, gx, gy, out_idx, out_d2):
    """Top-K of every query over its cell's list; ``out_idx`` / ``out_d2`` come in filled with -1 / inf."""
    k = out_idx.shape[1]
    for p in prange(queries.shape[0]):
        qx = queries[p, 0]
        qy = queries[p, 1]
        c = _cell(np.float64(qy), y0, inv, gy) * gx + _cell(np.float64(qx), x0, inv, gx)
        found = 0
        for j in range(starts[c], starts[c + 1]):
            i = ids[j]
            dx = qx - means[i, 0]
            dy = qy - means[i, 1]
            d2 = dx * dx + dy * dy
            ri = radius[i]
            if not (d2 <= ri * ri and d2 < _INF32):
                continue
            # ids ascend within a cell, so an equal d2 always comes with a higher index: it goes after its
            # equals (strict comparisons below), and is dropped when the buffer is full.
            if found < k:
                pos = found
                found += 1
            elif d2 < out_d2[p, k - 1]:
                pos = k - 1
            else:
                continue
            while pos > 0 and out_d2[p, pos - 1] > d2:
                out_d2[p, pos] = out_d2[p, pos - 1]
                out_idx[p, pos] = out_idx[p, pos - 1]
                pos -= 1
            out_d2[p, pos] = d2
            out_idx[p, pos] = i


class KnnIndex:
    """Uniform-grid index of Gaussian discs for exact K-nearest queries on the CPU (numba).

    Built from ``means`` ``(N, 2)`` and ``radius`` ``(N,)`` (or a scalar); both are copied as float32, so later
    changes to the caller's tensors do not affect the index: call :meth:`rebuild` (or :func:`knn` with
    ``index=``, which rebuilds when :meth:`is_stale`). Acceptance and ordering as in the module docstring;
    :meth:`query` equals :func:`knn_bruteforce` exactly.

    Cell size: the larger of the median radius and half the mean spacing of the means' bounding box, with at
    most ``min(MAX_CELLS, 4 N + 64)`` cells; the grid is then coarsened (cell size doubled) until the
    registrations fit in ``max_registrations`` or it is a single cell. The cell size only affects speed, never
    the result. Queries outside the grid use the nearest border cell (whose list holds every disc reaching
    past the border). Indices are stored as int32 (N < 2^31).
    """

    def __init__(self, means: Tensor, radius: Tensor | float, *, max_registrations: int = MAX_REGISTRATIONS):
        self.max_registrations = int(max_registrations)
        self.version = 0
        self.rebuild(means, radius)

    @classmethod
    def build(cls, means: Tensor, radius: Tensor | float, *, max_registrations: int = MAX_REGISTRATIONS
              ) -> KnnIndex:
        """A new index of ``(means, radius)``."""
        return cls(means, radius, max_registrations=max_registrations)

    @property
    def n(self) -> int:
        """Number of Gaussians indexed."""
        return int(self._means.shape[0])

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Cells along ``(x, y)``."""
        return self._gx, self._gy

    @property
    def n_registrations(self) -> int:
        """Number of (cell, Gaussian) entries."""
        return int(self._ids.shape[0])

    def rebuild(self, means: Tensor, radius: Tensor | float) -> None:
        """Re-index ``(means, radius)`` (after means or radii changed); increments :attr:`version`."""
        m, r = check_gaussians(means, radius)
        self._means_t = m.cpu().clone().contiguous()
        self._radius_t = r.cpu().clone().contiguous()
        self._means = np.ascontiguousarray(self._means_t.numpy())
        self._radius = np.ascontiguousarray(self._radius_t.numpy())
        self._layout()
        self.version += 1

    def is_stale(self, means: Tensor, radius: Tensor | float) -> bool:
        """Whether ``(means, radius)`` differ from what the index was built from (an O(N) comparison)."""
        try:
            m, r = check_gaussians(means, radius)
        except SplatpixError:
            return True
        if m.shape != self._means_t.shape:
            return True
        return not (torch.equal(m.cpu(), self._means_t) and torch.equal(r.cpu(), self._radius_t))

    def _layout(self) -> None:
        m, r = self._means, self._radius
        n = m.shape[0]
        self._cx = np.empty((4, n), dtype=np.int64)
        if n == 0:
            self._x0 = self._y0 = 0.0
            self._inv = 1.0
            self._gx = self._gy = 1
            self._starts = np.zeros(2, dtype=np.int64)
            self._ids = np.empty(0, dtype=np.int32)
            return
        m64 = m.astype(np.float64)
        r64 = r.astype(np.float64) * (1.0 + _REL)
        lo_m, hi_m = m64.min(0), m64.max(0)
        span = float(max((hi_m - lo_m).max(), 1e-6))
        # grid domain: the discs' bounding box, but no further than one span beyond the means
        lo = np.maximum((m64 - r64[:, None]).min(0), lo_m - span)
        hi = np.minimum((m64 + r64[:, None]).max(0), hi_m + span)
        w, h = (hi - lo).tolist()
        cell = max(float(np.median(r64)), 0.5 * math.sqrt(w * h / n), max(w, h) / 4096.0, 1e-9)
        max_cells = min(MAX_CELLS, 4 * n + 64)
        while True:
            gx = max(1, math.ceil(w / cell))
            gy = max(1, math.ceil(h / cell))
            if gx * gy <= max_cells:
                break
            cell *= 1.5
        cx = self._cx
        while True:
            inv = 1.0 / cell
            total = _cell_ranges(m, r, float(lo[0]), float(lo[1]), inv, gx, gy, cx[0], cx[1], cx[2], cx[3])
            if total <= self.max_registrations or (gx == 1 and gy == 1):
                break
            cell *= 2.0
            gx = max(1, math.ceil(w / cell))
            gy = max(1, math.ceil(h / cell))
        self._x0, self._y0 = float(lo[0]), float(lo[1])
        self._inv, self._gx, self._gy = inv, gx, gy
        self._starts, self._ids = _fill_cells(cx[0], cx[1], cx[2], cx[3], gx, gy, total)

    def query(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """``(idx, dist2)`` ``(P, k)`` int64 / float32 on ``queries``' device (computed on the CPU).

        The ``k`` nearest accepted Gaussians (``|x - mu_i|^2 <= r_i^2`` in float32) sorted by ``(dist2, index)``,
        missing ones as ``-1`` / ``+inf``."""
        k = check_k(k)
        q = check_points(queries, "queries")
        dev = q.device
        qn = np.ascontiguousarray(q.cpu().numpy())
        p = qn.shape[0]
        out_idx = np.full((p, k), -1, dtype=np.int64)
        out_d2 = np.full((p, k), np.inf, dtype=np.float32)
        if p and self.n:
            _query(qn, self._means, self._radius, self._starts, self._ids, self._x0, self._y0, self._inv,
                   self._gx, self._gy, out_idx, out_d2)
        return torch.from_numpy(out_idx).to(dev), torch.from_numpy(out_d2).to(dev)


def knn(
    queries: Tensor, means: Tensor, radius: Tensor | float, k: int, index: KnnIndex | None = None
) -> tuple[Tensor, Tensor]:
    """K nearest accepted Gaussians of each query: ``(idx, dist2)``, ``(P, k)`` int64 / float32.

    Gaussian ``i`` is accepted for query ``x`` iff ``|x - mu_i|^2 <= r_i^2`` (float32); results are sorted by
    ``(dist2, index)`` (ties to the lower index) and padded with ``-1`` / ``+inf`` when fewer than ``k`` are
    accepted. CPU float32 queries and means (radius of any real dtype) use the numba grid: ``index`` if given,
    rebuilt in place when it is stale for these means and radii, a temporary one otherwise. Anything else uses
    :func:`knn_bruteforce`, where ``index`` is not used. Both give identical results.
    """
    k = check_k(k)
    q = _as_tensor(queries, "queries")
    m = _as_tensor(means, "means")
    r = _as_tensor(radius, "radius")
    on_cpu = q.device.type == "cpu" and m.device.type == "cpu" and r.device.type == "cpu"
    if not (on_cpu and q.dtype == torch.float32 and m.dtype == torch.float32):
        return knn_bruteforce(q, m, r, k)
    if index is None:
        index = KnnIndex(m, r)
    elif index.is_stale(m, r):
        index.rebuild(m, r)
    return index.query(q, k)
