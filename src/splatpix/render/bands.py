"""Budgets for rendering untrusted models: an up-front estimate of the work, and large outputs rendered in bands.

:func:`estimated_pairs` bounds the (pixel, Gaussian) pairs the rasteriser will evaluate from each Gaussian's 3-sigma
bounding box on the output grid (clipped to it), in O(N), before any pixel is rendered: a file can declare a few
Gaussians covering a huge canvas, and the work, not the file's size, is what must be bounded. :func:`band_rows`
and :func:`band_windows` split an output into horizontal bands of at most a given number of pixels; each band is
the same render restricted to a window, so an image of any size needs one band in memory at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..model.arrays import as_arrays, project

__all__ = ["BYTES_PER_SAMPLE", "band_rows", "band_windows", "estimated_neighbour_pairs", "estimated_pairs"]

BYTES_PER_SAMPLE = 32
"""Memory per output sample of a whole-frame render written by :func:`splatpix.io.save_image` (the float32 render,
its float64 quantisation and the 8- or 16-bit copy), used to decide when to render in bands."""


def _box_pairs(x: np.ndarray, y: np.ndarray, rx: np.ndarray, ry: np.ndarray, height: int, width: int) -> float:
    """The sum of the boxes ``[x - rx, x + rx] x [y - ry, y + ry]`` (output pixels, float64) clipped to the output, in
    pixels; a non-finite box counts as the whole output."""
    with np.errstate(all="ignore"):
        w = np.clip(np.clip(x + rx, 0, width) - np.clip(x - rx, 0, width) + 1, 0, width)
        h = np.clip(np.clip(y + ry, 0, height) - np.clip(y - ry, 0, height) + 1, 0, height)
        area = w * h
    total = float(np.where(np.isnan(area), float(height) * width, area).sum())
    return total if math.isfinite(total) else float(height) * width * x.shape[0]


def _f64(t: Any) -> np.ndarray:
    """A torch tensor or numpy array as float64 numpy."""
    return t.detach().cpu().double().numpy() if hasattr(t, "detach") else np.asarray(t, dtype=np.float64)


def estimated_pairs(g: Any, height: int, width: int,
                    window: tuple[float, float, float, float] | None = None) -> float:
    """An upper estimate of the (pixel, Gaussian) pairs of ``render(g, height, width, window=window)``: the sum over
    the Gaussians of their 3-sigma bounding boxes (in output pixels, clipped to the output). ``g``: a torch
    ``Gaussians`` or a numpy ``GaussianArrays``."""
    if g.n == 0:
        return 0.0
    with np.errstate(all="ignore"):
        means, cov = project(as_arrays(g), height, width, window)
        m = means.astype(np.float64)
        sx = 3.0 * np.sqrt(np.maximum(cov[:, 0].astype(np.float64), 0))  # cov: (xx, xy, yy) in output pixels
        sy = 3.0 * np.sqrt(np.maximum(cov[:, 2].astype(np.float64), 0))
    return _box_pairs(m[:, 0], m[:, 1], sx, sy, height, width)


def estimated_neighbour_pairs(means: Any, radius: Any, height: int, width: int,
                              window: tuple[float, float, float, float] | None = None) -> float:
    """An upper estimate of the (query pixel, Gaussian) pairs a neighbour search within ``radius`` (normalised
    units, one per Gaussian) examines on a ``height x width`` grid of ``window``: each Gaussian's radius box in
    output pixels, clipped to the output (GaINeR's KNN, :mod:`splatpix.gainer.knn`)."""
    if means.shape[0] == 0:
        return 0.0
    u0, v0, u1, v1 = window if window is not None else (0.0, 0.0, 1.0, 1.0)
    m, r = _f64(means), _f64(radius)
    sx, sy = width / (u1 - u0), height / (v1 - v0)
    return _box_pairs((m[:, 0] - u0) * sx, (m[:, 1] - v0) * sy, r * sx, r * sy, height, width)


def band_rows(width: int, max_band_pixels: int) -> int:
    """Rows per band so that a band has at most ``max_band_pixels`` pixels (at least one row)."""
    return max(1, int(max_band_pixels) // max(1, int(width)))


def band_windows(height: int, rows: int, window: tuple[float, float, float, float] | None = None
                 ) -> Iterator[tuple[int, tuple[float, float, float, float]]]:
    """``(rows in the band, its window)`` for the bands of ``rows`` rows that make up an output of ``height`` rows
    showing ``window`` (default: the whole image); a band's window maps its pixel centres onto the same image points
    as the whole output's."""
    u0, v0, u1, v1 = window if window is not None else (0.0, 0.0, 1.0, 1.0)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        yield r1 - r0, (u0, v0 + (v1 - v0) * r0 / height, u1, v0 + (v1 - v0) * r1 / height)
