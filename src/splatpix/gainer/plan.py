"""What a GaINeR training step with frozen means can compute once: :class:`FrozenPlan`.

GaINeR's released configuration freezes the means. Then

* the neighbour list of every training pixel (its ``K`` nearest accepted Gaussians, :func:`.knn.knn`) depends only
  on the means and the acceptance radii. The plan computes it once from the radii at the start (GaINeR's code
  rebuilds its index every 1000 steps; :meth:`FrozenPlan.refresh_neighbours` does the same when asked), and the
  step evaluates only the covariance-dependent Gaussian weights of those pairs. It also stores the transposed lists
  (for each Gaussian, its pairs ``p * K + k`` in ascending ``p``), which the race-free backward of
  :func:`.fused.gaussian_aggregate` walks;
* internally the Gaussians are renumbered in a spatial order (``perm``: plan position -> field index), which
  keeps the kernels' memory reads local; the results are the same in any order;
* the hash-grid cell, the four corner slots and the bilinear weights of every mean on every level never change, so
  the hash grid at the means is a fixed sparse linear map of the table. Only the slots some mean touches can ever
  receive a gradient: the plan numbers them (level by level, in order of first use) and training runs on that
  **compact table** (:meth:`FrozenPlan.gather_table` / :meth:`FrozenPlan.scatter_table` map it to and from the
  full ``(L, T, F)`` table). Adam on the compact table is Adam on the full one restricted to the rows that can
  move: the others have zero gradients, zero moments and never change, so this is the exact sparse (lazy) Adam of
  the frozen configuration, not an approximation.

:meth:`FrozenPlan.forward` is the step's forward pass (compact grid -> weights and aggregation -> MLP), equal to
:meth:`.field.GainerField.forward` at the plan's pixels while the neighbour lists are current.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import SplatpixError
from ..jit import njit, prange
from .field import GainerField
from .fused import compact_grid, gaussian_aggregate
from .hashgrid import HashGridConfig, cell_fraction, corner_slot
from .knn_rings import RingIndex

__all__ = ["FrozenPlan", "grid_corners"]


@njit(parallel=True)
def _corners(points, res, dense, mask, slots, weights):
    n_pts = points.shape[0]
    n_lev = res.shape[0]
    for p in prange(n_pts):
        x = points[p, 0]
        y = points[p, 1]
        for lev in range(n_lev):
            n = res[lev]
            d = dense[lev]
            cx, tx, _ = cell_fraction(x, n)
            cy, ty, _ = cell_fraction(y, n)
            ux = np.float32(1.0) - tx
            uy = np.float32(1.0) - ty
            weights[p, lev, 0] = ux * uy
            weights[p, lev, 1] = tx * uy
            weights[p, lev, 2] = ux * ty
            weights[p, lev, 3] = tx * ty
            slots[p, lev, 0] = corner_slot(cx, cy, n, d, mask)
            slots[p, lev, 1] = corner_slot(cx + 1, cy, n, d, mask)
            slots[p, lev, 2] = corner_slot(cx, cy + 1, n, d, mask)
            slots[p, lev, 3] = corner_slot(cx + 1, cy + 1, n, d, mask)


@njit()
def _number_rows(slots, table_size, rows, row_slot):
    """Compact rows, level by level in order of first use; returns the number of rows."""
    n_pts, n_lev, _ = slots.shape
    seen = np.empty(table_size, dtype=np.int32)
    u = 0
    for lev in range(n_lev):
        seen[:] = -1
        for p in range(n_pts):
            for c in range(4):
                s = slots[p, lev, c]
                r = seen[s]
                if r < 0:
                    r = u
                    seen[s] = r
                    row_slot[r] = lev * table_size + s
                    u += 1
                rows[p, lev, c] = r
    return u


def grid_corners(points: np.ndarray, cfg: HashGridConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(slots (P, L, 4) int64, weights (P, L, 4) float32)``: the four corner slots and bilinear weights of
    every point on every level, exactly as the hash grid's kernels compute them (corners 00, 10, 01, 11)."""
    p = np.ascontiguousarray(points, dtype=np.float32)
    n_lev = cfg.n_levels
    slots = np.empty((p.shape[0], n_lev, 4), dtype=np.int64)
    weights = np.empty((p.shape[0], n_lev, 4), dtype=np.float32)
    if p.shape[0]:
        res = np.asarray(cfg.resolutions, dtype=np.int64)
        dense = np.asarray(cfg.dense_levels, dtype=np.bool_)
        _corners(p, res, dense, np.int64(cfg.table_size - 1), slots, weights)
    return slots, weights


def _transpose(idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts (n + 1,), pairs)``: for each Gaussian the flat positions ``p * K + k`` where it is a neighbour,
    ascending."""
    flat = idx.ravel()
    pos = np.flatnonzero(flat >= 0)
    gid = flat[pos]
    order = np.argsort(gid, kind="stable")
    pairs = pos[order].astype(np.int64)
    counts = np.bincount(gid, minlength=n)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    return starts, pairs


class FrozenPlan:
    """The precomputed neighbours and hash-grid corners of a field with frozen means at ``coords`` ``(P, 2)``
    (normalised pixel centres; module docstring). ``field`` must be unbaked, on the CPU, with frozen means; the
    neighbour lists use ``radius`` (default: the field's current acceptance radii)."""

    def __init__(self, field: GainerField, coords: Tensor, radius: Tensor | None = None) -> None:
        if field.baked or field.cfg.trainable_means:
            raise SplatpixError("a frozen plan needs an unbaked field with frozen means")
        if field.means.device.type != "cpu":
            raise SplatpixError("a frozen plan runs on the CPU")
        self.k = field.cfg.k
        self.mean = field.cfg.aggregation == "mean"
        self.q = np.ascontiguousarray(coords.detach().to(torch.float32).cpu().numpy())
        means = field.means.detach().to(torch.float32)
        self.n = int(means.shape[0])
        h, w = field.size
        # the kernels see the Gaussians in a spatial order (strips of 4 pixel rows, then x), so that neighbouring
        # pixels read nearby rows of the features and each Gaussian's pixels are near the previous Gaussian's
        strip = torch.clamp((means[:, 1].double() * (h / 4)).floor(), 0, max(h // 4, 0))
        key = strip * 4.0 + means[:, 0].double().clamp(0, 1)
        self.perm = torch.argsort(key, stable=True)
        self.inv_perm = torch.empty_like(self.perm)
        self.inv_perm[self.perm] = torch.arange(self.n)
        self.perm_np = np.ascontiguousarray(self.perm.numpy())
        self.means = np.ascontiguousarray(means[self.perm].numpy())
        if self.q.shape[0] * self.k >= 1 << 62:
            raise SplatpixError("too many pixel-neighbour pairs")
        self.refresh_neighbours(field, radius)
        self.grid_cfg = field.cfg.hashgrid
        slots, self.cw = grid_corners(self.means, self.grid_cfg)
        self.rows = np.empty(slots.shape, dtype=np.int32)
        t = self.grid_cfg.table_size
        bound = sum(min(t, (r + 1) ** 2, 4 * self.n) for r in self.grid_cfg.resolutions)
        row_slot = np.empty(bound, dtype=np.int64)
        u = int(_number_rows(slots, t, self.rows, row_slot)) if self.n else 0
        del slots
        self.row_level = torch.from_numpy(row_slot[:u] // t)
        self.row_slot = torch.from_numpy(row_slot[:u] % t)
        self.n_grids = 2 if field.mask_grid is not None else 1

    @property
    def n_rows(self) -> int:
        """Rows of the compact table (of ``L * T`` in the full one)."""
        return int(self.row_slot.shape[0])

    @property
    def n_pairs(self) -> int:
        """Accepted pixel-neighbour pairs."""
        return int(self.pairs.shape[0])

    def refresh_neighbours(self, field: GainerField, radius: Tensor | None = None) -> None:
        """Recompute the pixels' neighbour lists from ``radius`` ``(N,)`` (default: the field's current acceptance
        radii)."""
        radius = field.knn_radius() if radius is None else radius.detach().to(torch.float32)
        index = RingIndex(field.means.detach().to(torch.float32), radius)
        idx, _ = index.query(torch.from_numpy(self.q), self.k)
        valid = idx >= 0
        idx = torch.where(valid, self.inv_perm[idx.clamp(min=0)], idx)  # in the plan's order
        self.idx = np.ascontiguousarray(idx.numpy().astype(np.int32))
        self.starts, self.pairs = _transpose(self.idx, self.n)

    # ------------------------------------------------------------------------------------------ tables

    def gather_table(self, table: Tensor) -> Tensor:
        """The compact ``(U, F)`` rows of a full ``(L, T, F)`` table (or of Adam's moments of it)."""
        return table.detach()[self.row_level, self.row_slot].contiguous()

    def scatter_table(self, compact: Tensor, table: Tensor) -> None:
        """Write the compact rows back into the full table (in place; the other rows are left as they are)."""
        with torch.no_grad():
            table[self.row_level, self.row_slot] = compact.detach().to(table.dtype)

    # ------------------------------------------------------------------------------------------ forward

    def gaussian_features(self, tables: list[Tensor]) -> Tensor:
        """``(N, baked_dim)`` features of the means from the compact tables (colour, then mask), in the plan's order
        of the Gaussians (``features[inv_perm]`` is the field's order)."""
        parts = [compact_grid(self.rows, self.cw, t) for t in tables]
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def aggregate(self, cov_params: Tensor, feats: Tensor) -> Tensor:
        """``(P, baked_dim)`` aggregated features at the plan's pixels, from the field's ``(N, 3)`` covariance
        parameters (in the field's order) and the plan-ordered features of :meth:`gaussian_features`."""
        agg, _ = gaussian_aggregate(self.q, self.idx, self.means, cov_params, feats, self.starts, self.pairs,
                                    self.mean, self.perm_np)
        return agg

    def forward(self, field: GainerField, tables: list[Tensor]) -> Tensor:
        """``(P, C)`` colours at the plan's pixels (differentiable w.r.t. the tables, ``field.cov_params`` and
        the MLPs)."""
        return field.decode(self.aggregate(field.cov_params, self.gaussian_features(tables)))
