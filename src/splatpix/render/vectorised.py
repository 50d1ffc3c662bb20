"""The accumulated-sum rasteriser in numpy: the numpy engine's forward (no numba), vectorised over pixels.

The same support rule as the numba kernels of :mod:`.cpu` (and the torch reference): each Gaussian covers the pixels
whose centre lies in its 3-sigma ellipse (``power <= 4.5``), found row by row from the exact ellipse in float64 (the
kernels' arithmetic, so both visit the same pixels); Gaussians that are degenerate, not finite, needles
(:data:`.cpu.MAX_CONDITION`) or off the image are not drawn. Weights are ``exp(-power)`` in float32 (the kernels use
a polynomial within 3e-7 of it) and the sum is accumulated in float64 by ``np.bincount``, so the two agree to about
1e-6; the tests compare them. Work is done in chunks of at most :data:`CHUNK_PAIRS` (pixel, Gaussian) pairs.

It is the faster choice for a one-shot decode of a small render: it needs no numba (whose import and CPU-target set-up
cost about 0.7 s); above a few million pairs the kernels win even with that start-up (``splatpix decode`` picks).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHUNK_PAIRS", "forward"]

CHUNK_PAIRS = 1 << 18
"""(pixel, Gaussian) pairs evaluated at a time (about 6 MB of temporaries: larger chunks cost more in page faults than
they save in calls; measured 2^16 to 2^22 on a cold process)."""
ONE_SHOT_PAIRS = 8e6
"""Up to this many estimated pairs (:func:`splatpix.render.bands.estimated_pairs`, the 3-sigma boxes) a one-shot
process renders faster with numpy than by loading numba: the numpy forward takes about 35 ns per estimated pair on
the project's machine, numba's start-up about 0.7 s (docs/results.md, "Decode: the process")."""
MAX_CONDITION = 1e6  # as render.cpu.MAX_CONDITION (tested equal; not imported: that module's kernels need numba)
_F = np.float32


def _spans(means: np.ndarray, conic: np.ndarray, height: int, width: int) -> tuple[np.ndarray, ...]:
    """Per (Gaussian, row) of every drawn Gaussian: the Gaussian's index, the row, the first pixel and the count."""
    a, b, c = (conic[:, j].astype(np.float64) for j in range(3))
    mx, my = means[:, 0].astype(np.float64), means[:, 1].astype(np.float64)
    with np.errstate(all="ignore"):
        det = a * c - b * b
        ok = (det > 0) & (a > 0) & (c > 0) & np.isfinite(det) & np.isfinite(mx) & np.isfinite(my) & \
            (a * c <= MAX_CONDITION * det)
        ex = 3.0 * np.sqrt(c / det)
        ey = 3.0 * np.sqrt(a / det)
        fx0, fx1 = np.ceil(mx - ex - 0.5), np.floor(mx + ex - 0.5)
        fy0, fy1 = np.ceil(my - ey - 0.5), np.floor(my + ey - 0.5)
        ok &= ~((fx1 < 0) | (fx0 > width - 1) | (fy1 < 0) | (fy0 > height - 1) | (fx0 > fx1) | (fy0 > fy1))
    ids = np.flatnonzero(ok)
    y0 = np.maximum(fy0[ids], 0).astype(np.int64)
    rows = np.minimum(fy1[ids], height - 1).astype(np.int64) - y0 + 1
    g = np.repeat(ids, rows)
    y = np.repeat(y0, rows) + (np.arange(g.size) - np.repeat(np.cumsum(rows) - rows, rows))
    ag, bg, det_g, inv_a = a[g], b[g], det[g], 1.0 / a[g]
    dy = (y + 0.5) - my[g]
    disc = 9.0 * ag - det_g * dy * dy
    with np.errstate(invalid="ignore"):
        r = np.sqrt(disc) * inv_a
    cx = mx[g] - bg * dy * inv_a
    x0 = np.maximum(np.ceil(cx - r - 0.5), 0.0)
    x1 = np.minimum(np.floor(cx + r - 0.5), width - 1.0)
    n = np.where((disc >= 0.0) & (x1 >= x0), x1 - x0 + 1, 0).astype(np.int64)
    keep = n > 0
    return g[keep], y[keep], x0[keep].astype(np.int64), n[keep]


def forward(means: np.ndarray, conic: np.ndarray, colours: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(C, height, width)`` float32 render of pixel-space ``means`` ``(N, 2)``, conics ``(N, 3)`` and ``colours``
    ``(N, C)`` (:func:`splatpix.render.cpu.forward`'s arguments and result, without the row ranges)."""
    ch = colours.shape[1]
    acc = np.zeros((ch, height * width), dtype=np.float64)
    g, y, x0, n = _spans(means, conic, height, width)
    if g.size:
        ah = _F(0.5) * conic[:, 0].astype(_F)
        bf, cf, mxf = conic[:, 1].astype(_F), conic[:, 2].astype(_F), means[:, 0].astype(_F)
        ends = np.cumsum(n)
        cuts = np.searchsorted(ends, np.arange(CHUNK_PAIRS, int(ends[-1]), CHUNK_PAIRS), side="right")
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, g.size], strict=True):
            if hi > lo:
                _accumulate(acc, g[lo:hi], y[lo:hi], x0[lo:hi], n[lo:hi], means, ah, bf, cf, mxf, colours, width)
    return acc.astype(_F).reshape(ch, height, width)


def _accumulate(acc: np.ndarray, g: np.ndarray, y: np.ndarray, x0: np.ndarray, n: np.ndarray, means: np.ndarray,
                ah: np.ndarray, bf: np.ndarray, cf: np.ndarray, mxf: np.ndarray, colours: np.ndarray,
                width: int) -> None:
    """Add the pixels of the (Gaussian, row) spans ``g, y, x0, n`` to ``acc`` ``(C, H * W)``: every per-pixel value
    is a per-span constant repeated over the span plus the pixel's place in the whole chunk (``np.repeat`` and one
    ``arange``, no gathers)."""
    total = int(n.sum())
    first = np.cumsum(n) - n  # each span's first place in the chunk
    k = np.arange(total, dtype=np.float64)
    dx = (k + np.repeat(x0 - first + 0.5 - mxf[g].astype(np.float64), n)).astype(_F)  # = f32(x + 0.5) - mx
    dyf = ((y + 0.5) - means[g, 1].astype(np.float64)).astype(_F)  # dy as the kernels round it
    p = dx * (np.repeat(ah[g], n) * dx + np.repeat(bf[g] * dyf, n)) + np.repeat(_F(0.5) * cf[g] * dyf * dyf, n)
    w = np.exp(-p)
    pix = np.arange(total) + np.repeat(y * width + x0 - first, n)
    size = acc.shape[1]
    for c in range(acc.shape[0]):
        acc[c] += np.bincount(pix, weights=w * np.repeat(colours[g, c], n), minlength=size)
