"""Numba CPU rasteriser: forward and hand-written backward of the accumulated-sum renderer.

Same maths and support rule as :mod:`splatpix.render.reference` (the oracle the tests compare against):
``out[:, y, x] = sum_i colour_i * exp(-power_i)``, ``power = 0.5 (a dx^2 + 2 b dx dy + c dy^2)``, summed over
Gaussians whose 3-sigma ellipse (``power <= 4.5``) contains the pixel centre. No cap per pixel or tile. Needles
(:data:`MAX_CONDITION`) are not drawn.

How it is fast (2-core x86 target):
* Exact per-row spans of the ellipse: for a row at offset ``dy`` the covered ``dx`` solve
  ``a dx^2 + 2 b dy dx + c dy^2 <= 9``, i.e. ``dx in (-b dy +- sqrt(9 a - det dy^2)) / a``; no pixel outside
  the ellipse is ever visited.
* A vectorisable exponential (``(Taylor_6(-p/16))^16`` on ``0 <= p <= 4.5``, abs. error < 3e-7) so the inner
  loops over contiguous pixels of planar ``(C, H, W)`` buffers compile to SIMD.
* Forward: Gaussians are binned into bands of rows; each band is written by one thread (no atomics).
* Backward: one Gaussian per iteration (its gradients are private, no atomics), Gaussians visited in the
  order of their top row so the two threads stream through disjoint halves of the image.
All work is float32.
"""

from __future__ import annotations

import numpy as np

from ..jit import njit, prange

BAND = 8  # rows per forward band
MAX_CONDITION = 1e6
"""Gaussians with ``a c > MAX_CONDITION * det`` (conic ``(a, b, c)``, ``det = a c - b^2``; an axis ratio above ~2000)
are not drawn, by both rasterisers. In float32 the power of such a needle cancels: its error is about
``1e-7 * 9 a c / det`` (0.5 at the bound), and beyond it the power of a pixel in the span can come out far below 0
or above 4.5, where the polynomial exponential overflows to inf. Found as a QAT divergence (kodim23, N = 9000,
``--footprint-weight 0.3``): one Gaussian with ``a c / det ~ 3e15``. Same value as
:data:`splatpix.render.reference.MAX_CONDITION` (tested)."""

_F = np.float32


@njit(fastmath=True, inline="always")
def _exp_neg(p):
    # exp(-p) for p in [0, 4.5]: (e^(-p/16))^16 with a degree-6 Taylor polynomial.
    z = p * _F(-0.0625)
    e = _F(1.0) + z * (_F(1.0) + z * (_F(0.5) + z * (_F(1.0 / 6.0) + z * (
        _F(1.0 / 24.0) + z * (_F(1.0 / 120.0) + z * _F(1.0 / 720.0))))))
    e = e * e
    e = e * e
    e = e * e
    return e * e


@njit(fastmath=False)
def _prepare(means, conic, height, width, y0, y1, ok):
    """Row range of each Gaussian's ellipse (clipped) and whether it touches the image."""
    n = means.shape[0]
    for i in range(n):
        a = np.float64(conic[i, 0])
        b = np.float64(conic[i, 1])
        c = np.float64(conic[i, 2])
        det = a * c - b * b
        mx = np.float64(means[i, 0])
        my = np.float64(means[i, 1])
        ok[i] = False
        y0[i] = 0
        y1[i] = -1
        if not (det > 0.0 and a > 0.0 and c > 0.0 and np.isfinite(det) and np.isfinite(mx) and np.isfinite(my)
                and a * c <= MAX_CONDITION * det):
            continue
        ex = 3.0 * np.sqrt(c / det)
        ey = 3.0 * np.sqrt(a / det)
        fx0 = np.ceil(mx - ex - 0.5)
        fx1 = np.floor(mx + ex - 0.5)
        fy0 = np.ceil(my - ey - 0.5)
        fy1 = np.floor(my + ey - 0.5)
        if fx1 < 0 or fx0 > width - 1 or fy1 < 0 or fy0 > height - 1 or fx0 > fx1 or fy0 > fy1:
            continue
        y0[i] = int(max(fy0, 0.0))
        y1[i] = int(min(fy1, height - 1.0))
        ok[i] = True


@njit(fastmath=False, inline="always")
def _row_span(a, b, det, inv_a, mx, my, y, width):
    """Inclusive pixel range [x0, x1] of row y inside the ellipse (x0 > x1 when empty), and dy.

    ``inv_a = 1 / a`` is passed in so that no division happens per row."""
    dy = (y + 0.5) - my
    disc = 9.0 * a - det * dy * dy
    if disc < 0.0:
        return 1, 0, dy
    r = np.sqrt(disc) * inv_a
    cx = mx - b * dy * inv_a
    fx0 = np.ceil(cx - r - 0.5)
    fx1 = np.floor(cx + r - 0.5)
    if fx0 < 0.0:
        fx0 = 0.0
    if fx1 > width - 1.0:
        fx1 = width - 1.0
    if fx0 > fx1:
        return 1, 0, dy
    return int(fx0), int(fx1), dy


@njit(fastmath=True, inline="always")
def _setup(means, conic, i):
    """Per-Gaussian constants: float64 geometry for the row spans, float32 for the pixel loops."""
    a = np.float64(conic[i, 0])
    b = np.float64(conic[i, 1])
    c = np.float64(conic[i, 2])
    det = a * c - b * b
    return (a, b, c, det, 1.0 / a, np.float64(means[i, 0]), np.float64(means[i, 1]),
            _F(0.5) * _F(conic[i, 0]), _F(conic[i, 1]), _F(conic[i, 2]), _F(means[i, 0]))


@njit(fastmath=True, inline="always")
def _row_setup(gs, y, width):
    """One Gaussian's row ``y``: ``(x0, n, dy, base, bdy)`` with the pixels ``x0 .. x0 + n - 1`` (n = 0 if empty) and
    ``power(dx) = dx (ah dx + bdy) + base``. Indices are unsigned so that numba emits no wrap-around checks and the
    pixel loops compile to contiguous SIMD."""
    a, b, c, det, inv_a, mx, my, ah, bf, cf, mxf = gs
    x0, x1, dy = _row_span(a, b, det, inv_a, mx, my, y, width)
    dyf = _F(dy)
    return np.uint64(max(x0, 0)), np.uint64(max(x1 - x0 + 1, 0)), dy, _F(0.5) * cf * dyf * dyf, bf * dyf


@njit(fastmath=True, inline="always")
def _row_weights(gs, y, width, xc, wbuf):
    """Weights of one Gaussian on row ``y``: fills ``wbuf[x0 : x0 + n]``; returns ``(x0, n, dy)``, n = 0 if empty."""
    ah, mxf = gs[7], gs[10]
    ux0, nx, dy, base, bdy = _row_setup(gs, y, width)
    for j in range(nx):
        x = ux0 + j
        dx = xc[x] - mxf
        p = dx * (ah * dx + bdy) + base
        wbuf[x] = _exp_neg(p)
    return ux0, nx, dy


@njit()
def _bin_rows(y0, y1, ok, n_bands):
    """Counting sort of Gaussians into row bands; a Gaussian is listed in every band it touches."""
    n = y0.shape[0]
    counts = np.zeros(n_bands + 1, dtype=np.int64)
    for i in range(n):
        if ok[i]:
            for bnd in range(y0[i] // BAND, y1[i] // BAND + 1):
                counts[bnd + 1] += 1
    for k in range(n_bands):
        counts[k + 1] += counts[k]
    fill = counts[:-1].copy()
    lists = np.empty(counts[n_bands], dtype=np.int32)
    for i in range(n):
        if ok[i]:
            for bnd in range(y0[i] // BAND, y1[i] // BAND + 1):
                lists[fill[bnd]] = i
                fill[bnd] += 1
    return counts, lists


@njit(parallel=True, fastmath=True)
def _forward(means, conic, colours, y0, y1, offsets, lists, out):
    ch, height, width = out.shape
    n_bands = offsets.shape[0] - 1
    for bnd in prange(n_bands):
        wbuf = np.empty(width, dtype=np.float32)
        xc = np.arange(width).astype(np.float32) + _F(0.5)
        r0 = bnd * BAND
        r1 = min(r0 + BAND, height) - 1
        for k in range(offsets[bnd], offsets[bnd + 1]):
            i = lists[k]
            gs = _setup(means, conic, i)
            for y in range(max(y0[i], r0), min(y1[i], r1) + 1):
                ux0, nx, dy = _row_weights(gs, y, width, xc, wbuf)
                for q in range(ch):
                    col = colours[i, q]
                    for j in range(nx):
                        x = ux0 + j
                        out[q, y, x] += wbuf[x] * col


@njit(parallel=True, fastmath=True)
def _forward_rgb(means, conic, colours, y0, y1, offsets, lists, out):
    """:func:`_forward` for three channels, the common case, in one pass per row: each weight is computed and
    added to the three planes at once instead of being stored and re-read per channel (bit-identical output,
    faster)."""
    height, width = out.shape[1], out.shape[2]
    n_bands = offsets.shape[0] - 1
    for bnd in prange(n_bands):
        xc = np.arange(width).astype(np.float32) + _F(0.5)
        r0 = bnd * BAND
        r1 = min(r0 + BAND, height) - 1
        for k in range(offsets[bnd], offsets[bnd + 1]):
            i = lists[k]
            gs = _setup(means, conic, i)
            ah, mxf = gs[7], gs[10]
            c0, c1, c2 = colours[i, 0], colours[i, 1], colours[i, 2]
            for y in range(max(y0[i], r0), min(y1[i], r1) + 1):
                ux0, nx, dy, base, bdy = _row_setup(gs, y, width)
                o0, o1, o2 = out[0, y], out[1, y], out[2, y]
                for j in range(nx):
                    x = ux0 + j
                    dx = xc[x] - mxf
                    w = _exp_neg(dx * (ah * dx + bdy) + base)
                    o0[x] += w * c0
                    o1[x] += w * c1
                    o2[x] += w * c2


@njit(parallel=True)
def clamp01_(out):
    """Clip a ``(C, H, W)`` float32 image to ``[0, 1]`` in place, on numba's threads.

    ``render(..., clamp=True)`` uses it for numba renders that need no gradient: clamping with torch would start
    torch's own OpenMP pool, whose threads keep spinning after the op and slow down the next numba kernel on a
    2-core machine (a render right after a torch clamp takes more than twice as long)."""
    ch, height, width = out.shape
    for r in prange(ch * height):
        row = out[r // height, r % height]
        for x in range(width):
            v = row[x]
            if v < 0.0:
                row[x] = 0.0
            elif v > 1.0:
                row[x] = 1.0


@njit(parallel=True, fastmath=True)
def _backward(means, conic, colours, y0, y1, order, n_chunks, grad_out, g_means, g_conic, g_colours):
    ch, height, width = grad_out.shape
    n_ok = order.shape[0]
    for chunk in prange(n_chunks):
        wbuf = np.empty(width, dtype=np.float32)
        gw = np.empty(width, dtype=np.float32)
        xc = np.arange(width).astype(np.float32) + _F(0.5)
        for k in range(chunk * n_ok // n_chunks, (chunk + 1) * n_ok // n_chunks):
            i = order[k]
            gs = _setup(means, conic, i)
            a, b, c, mxf = gs[0], gs[1], gs[2], gs[10]
            s_a = 0.0
            s_b = 0.0
            s_c = 0.0
            s_mx = 0.0
            s_my = 0.0
            for y in range(y0[i], y1[i] + 1):
                ux0, nx, dy = _row_weights(gs, y, width, xc, wbuf)
                for j in range(nx):
                    gw[ux0 + j] = _F(0.0)
                for q in range(ch - 1):
                    col = colours[i, q]
                    acc = _F(0.0)
                    for j in range(nx):
                        x = ux0 + j
                        gv = grad_out[q, y, x]
                        acc += wbuf[x] * gv
                        gw[x] += col * gv
                    g_colours[i, q] += acc
                # last channel, fused with the moments of dL/dpower = -w dL/dw (0th, 1st, 2nd in dx)
                q = ch - 1
                col = colours[i, q]
                acc = _F(0.0)
                m0 = _F(0.0)
                m1 = _F(0.0)
                m2 = _F(0.0)
                for j in range(nx):
                    x = ux0 + j
                    gv = grad_out[q, y, x]
                    w = wbuf[x]
                    acc += w * gv
                    d = w * (gw[x] + col * gv)
                    dx = xc[x] - mxf
                    m0 += d
                    m1 += d * dx
                    m2 += d * dx * dx
                g_colours[i, q] += acc
                # power = 0.5 a dx^2 + b dx dy + 0.5 c dy^2 with dx = px - mx, dy = py - my
                s_a += 0.5 * m2
                s_b += dy * m1
                s_c += 0.5 * dy * dy * m0
                s_mx += a * m1 + b * dy * m0
                s_my += b * m1 + c * dy * m0
            g_conic[i, 0] = -s_a
            g_conic[i, 1] = -s_b
            g_conic[i, 2] = -s_c
            g_means[i, 0] = s_mx
            g_means[i, 1] = s_my


@njit()
def _order_by_top_row(y0, ok, height):
    """Indices of the visible Gaussians sorted (stably) by their top row: a counting sort."""
    counts = np.zeros(height + 1, dtype=np.int64)
    for i in range(y0.shape[0]):
        if ok[i]:
            counts[y0[i] + 1] += 1
    for r in range(height):
        counts[r + 1] += counts[r]
    order = np.empty(counts[height], dtype=np.int64)
    for i in range(y0.shape[0]):
        if ok[i]:
            order[counts[y0[i]]] = i
            counts[y0[i]] += 1
    return order


def _prepare_all(means: np.ndarray, conic: np.ndarray, height: int, width: int):
    n = means.shape[0]
    y0 = np.empty(n, dtype=np.int64)
    y1 = np.empty(n, dtype=np.int64)
    ok = np.empty(n, dtype=np.bool_)
    _prepare(means, conic, height, width, y0, y1, ok)
    return y0, y1, ok


def forward(means: np.ndarray, conic: np.ndarray, colours: np.ndarray, height: int, width: int):
    """Render ``(C, H, W)`` float32. Returns the image and the per-Gaussian row ranges for backward."""
    n, ch = colours.shape
    out = np.zeros((ch, height, width), dtype=np.float32)
    y0, y1, ok = _prepare_all(means, conic, height, width)
    if n:
        n_bands = (height + BAND - 1) // BAND
        offsets, lists = _bin_rows(y0, y1, ok, n_bands)
        kernel = _forward_rgb if ch == 3 else _forward
        kernel(means, conic, colours, y0, y1, offsets, lists, out)
    return out, (y0, y1, ok)


def backward(means, conic, colours, grad_out, prep, height: int, width: int):
    """Gradients of ``sum(grad_out * render)`` w.r.t. means, conics and colours (float32 arrays)."""
    y0, y1, ok = prep
    n, ch = colours.shape
    g_means = np.zeros((n, 2), dtype=np.float32)
    g_conic = np.zeros((n, 3), dtype=np.float32)
    g_colours = np.zeros((n, ch), dtype=np.float32)
    if ok.any():
        order = _order_by_top_row(y0, ok, height)
        n_chunks = int(min(order.size, 256))
        _backward(means, conic, colours, y0, y1, order, n_chunks, grad_out, g_means, g_conic, g_colours)
    return g_means, g_conic, g_colours


@njit()
def count_pairs(means, conic, y0, y1, ok, height, width):
    """Number of (pixel, Gaussian) pairs the kernels evaluate (for benchmarks)."""
    total = 0
    for i in range(means.shape[0]):
        if not ok[i]:
            continue
        a = np.float64(conic[i, 0])
        b = np.float64(conic[i, 1])
        c = np.float64(conic[i, 2])
        det = a * c - b * b
        inv_a = 1.0 / a
        for y in range(y0[i], y1[i] + 1):
            x0, x1, dy = _row_span(a, b, det, inv_a, np.float64(means[i, 0]), np.float64(means[i, 1]), y, width)
            if x1 >= x0:
                total += x1 - x0 + 1
    return total
