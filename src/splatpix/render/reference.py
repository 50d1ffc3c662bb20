"""Pure-PyTorch reference rasteriser: the test oracle, and the path for non-CPU devices.

Computes GaussianImage's order-free accumulated sum

    out[:, y, x] = sum_i colour_i * exp(-power_i(x, y)),   power = 0.5 d^T Sigma^-1 d,

over the Gaussians whose 3-sigma ellipse (``power <= 4.5``) contains the pixel centre ``(x + 0.5, y + 0.5)``,
except needles (:data:`MAX_CONDITION`). There is no cap on the number of Gaussians per pixel or per tile.

Memory stays bounded for any image size: (Gaussian, tile) pairs are listed from each Gaussian's
bounding box, and the pixel-level work is done a chunk of pairs at a time. With gradients enabled each
chunk is wrapped in activation checkpointing, so backward re-computes it instead of keeping per-pixel
buffers for the whole image. Differentiation is plain autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

TILE = 16
SUPPORT_POWER = 4.5  # 3-sigma ellipse: 0.5 * 3^2
MAX_CONDITION = 1e6
"""Gaussians with ``a c > MAX_CONDITION * det`` (conic ``(a, b, c)``; an axis ratio above ~2000) are not drawn: the
float32 kernel cannot evaluate such needles (:data:`splatpix.render.cpu.MAX_CONDITION`, the same value), and the
oracle follows the same support rule."""
DEFAULT_CHUNK_ELEMENTS = 1 << 22  # pixel-Gaussian evaluations per chunk


def bounding_boxes(means_px: Tensor, conic: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Pixel index ranges ``[x0, x1] x [y0, y1]`` (inclusive) covered by each Gaussian's 3-sigma
    ellipse, clipped to the image, and a mask of Gaussians that touch at least one pixel."""
    with torch.no_grad():
        a, b, c = conic[:, 0].double(), conic[:, 1].double(), conic[:, 2].double()
        det = a * c - b * b
        ok = (det > 0) & (a > 0) & (c > 0) & torch.isfinite(det) & (a * c <= MAX_CONDITION * det)
        det_safe = torch.where(ok, det, torch.ones_like(det))
        # half extents of {d : d^T Q d <= 9}: 3 * sqrt(Sigma_xx), 3 * sqrt(Sigma_yy)
        ex = 3.0 * torch.sqrt(torch.where(ok, c / det_safe, torch.zeros_like(c)))
        ey = 3.0 * torch.sqrt(torch.where(ok, a / det_safe, torch.zeros_like(a)))
        mx, my = means_px[:, 0].double(), means_px[:, 1].double()
        x0 = torch.ceil(mx - ex - 0.5).clamp(-1, width)
        x1 = torch.floor(mx + ex - 0.5).clamp(-1, width)
        y0 = torch.ceil(my - ey - 0.5).clamp(-1, height)
        y1 = torch.floor(my + ey - 0.5).clamp(-1, height)
        ok = ok & torch.isfinite(mx) & torch.isfinite(my)
        ok = ok & (x1 >= 0) & (x0 <= width - 1) & (y1 >= 0) & (y0 <= height - 1) & (x0 <= x1) & (y0 <= y1)
        lo = torch.stack((x0.clamp(0, width - 1), y0.clamp(0, height - 1)), 1).long()
        hi = torch.stack((x1.clamp(0, width - 1), y1.clamp(0, height - 1)), 1).long()
    return torch.cat((lo, hi), 1), ok


def _tile_pairs(boxes: Tensor, ok: Tensor, tiles_x: int) -> tuple[Tensor, Tensor]:
    """All (gaussian, tile) pairs, sorted by tile."""
    idx = torch.nonzero(ok).squeeze(1)
    b = boxes[idx] // TILE
    nx = b[:, 2] - b[:, 0] + 1
    ny = b[:, 3] - b[:, 1] + 1
    counts = nx * ny
    total = int(counts.sum())
    g = torch.repeat_interleave(idx, counts)
    start = torch.cumsum(counts, 0) - counts
    k = torch.arange(total, device=boxes.device) - torch.repeat_interleave(start, counts)
    nx_r = torch.repeat_interleave(nx, counts)
    tx = torch.repeat_interleave(b[:, 0], counts) + k % nx_r
    ty = torch.repeat_interleave(b[:, 1], counts) + k // nx_r
    tile = ty * tiles_x + tx
    order = torch.argsort(tile, stable=True)
    return g[order], tile[order]


def _chunk(means: Tensor, conic: Tensor, colours: Tensor, gid: Tensor, tile: Tensor, local: Tensor,
           n_tiles: int, tiles_x: int) -> Tensor:
    """Sum of the pairs' contributions over ``n_tiles`` tiles -> (n_tiles, C, TILE*TILE)."""
    dev, dt = means.device, means.dtype
    r = torch.arange(TILE * TILE, device=dev)
    px = ((tile % tiles_x) * TILE)[:, None] + (r % TILE)[None, :] + 0.5  # (P, T*T)
    py = ((tile // tiles_x) * TILE)[:, None] + (r // TILE)[None, :] + 0.5
    m = means[gid]
    q = conic[gid]
    dx = px.to(dt) - m[:, 0:1]
    dy = py.to(dt) - m[:, 1:2]
    power = 0.5 * (q[:, 0:1] * dx * dx + q[:, 2:3] * dy * dy) + q[:, 1:2] * dx * dy
    w = torch.where(power <= SUPPORT_POWER, torch.exp(-power), torch.zeros_like(power))
    contrib = w[:, None, :] * colours[gid][:, :, None]  # (P, C, T*T)
    out = torch.zeros((n_tiles, colours.shape[1], TILE * TILE), device=dev, dtype=contrib.dtype)
    return out.index_add(0, local, contrib)


def rasterize_reference(
    means_px: Tensor,
    conic: Tensor,
    colours: Tensor,
    height: int,
    width: int,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor:
    """Render ``(C, height, width)`` from pixel-space means ``(N, 2)``, conics ``(N, 3)`` and colours ``(N, C)``.

    Gaussians whose conic is not positive definite are skipped. Differentiable by autograd.
    """
    n, ch = colours.shape
    dev, dt = colours.device, torch.promote_types(colours.dtype, means_px.dtype)
    tiles_x = (width + TILE - 1) // TILE
    tiles_y = (height + TILE - 1) // TILE
    n_tiles = tiles_x * tiles_y
    if n == 0:
        return torch.zeros((ch, height, width), device=dev, dtype=dt) + 0.0 * colours.sum()
    boxes, ok = bounding_boxes(means_px, conic, height, width)
    gid, tile = _tile_pairs(boxes, ok, tiles_x)
    grad = torch.is_grad_enabled() and (means_px.requires_grad or conic.requires_grad or colours.requires_grad)
    pairs_per_chunk = max(1, chunk_elements // (TILE * TILE))
    tile_sums = torch.zeros((n_tiles, ch, TILE * TILE), device=dev, dtype=dt)
    start = 0
    total = gid.numel()
    while start < total:
        stop = min(total, start + pairs_per_chunk)
        # end the chunk on a tile boundary when possible, so each chunk owns whole tiles
        if stop < total:
            last = tile[stop - 1]
            j = int(torch.searchsorted(tile, last, right=False))
            if j > start:
                stop = j
        t = tile[start:stop]
        uniq, local = torch.unique_consecutive(t, return_inverse=True)
        args = (means_px, conic, colours, gid[start:stop], t, local, int(uniq.numel()), tiles_x)
        if grad:
            part = checkpoint(_chunk, *args, use_reentrant=False)
        else:
            part = _chunk(*args)
        tile_sums.index_add_(0, uniq, part)  # in place: autograd keeps only the tile indices
        start = stop
    img = tile_sums.view(tiles_y, tiles_x, ch, TILE, TILE).permute(2, 0, 3, 1, 4)
    img = img.reshape(ch, tiles_y * TILE, tiles_x * TILE)
    out = img[:, :height, :width]
    if not out.requires_grad and grad:
        out = out + 0.0 * colours.sum()
    return out  # a view of the padded tile grid (saves an image-sized copy)
