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

import torch

from ..model.gaussians import Gaussians, project

__all__ = ["BYTES_PER_SAMPLE", "band_rows", "band_windows", "estimated_neighbour_pairs", "estimated_pairs"]

BYTES_PER_SAMPLE = 32
"""Memory per output sample of a whole-frame render written by :func:`splatpix.io.save_image` (the float32 render,
its float64 quantisation and the 8- or 16-bit copy), used to decide when to render in bands."""


def _box_pairs(x: torch.Tensor, y: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor, height: int, width: int) -> float:
    """The sum of the boxes ``[x - rx, x + rx] x [y - ry, y + ry]`` (output pixels, float64) clipped to the output, in
    pixels; a non-finite box counts as the whole output."""
    w = ((x + rx).clamp(0, width) - (x - rx).clamp(0, width) + 1).clamp(0, width)
    h = ((y + ry).clamp(0, height) - (y - ry).clamp(0, height) + 1).clamp(0, height)
    total = float((w * h).nan_to_num(float(height) * width).sum())
    return total if math.isfinite(total) else float(height) * width * x.shape[0]


def estimated_pairs(g: Gaussians, height: int, width: int,
                    window: tuple[float, float, float, float] | None = None) -> float:
    """An upper estimate of the (pixel, Gaussian) pairs of ``render(g, height, width, window=window)``: the sum over
    the Gaussians of their 3-sigma bounding boxes (in output pixels, clipped to the output)."""
    if g.n == 0:
        return 0.0
    with torch.no_grad():
        means, cov = project(g.detach(), height, width, window)
        m = means.to(torch.float64)
        sx = 3.0 * cov[:, 0].to(torch.float64).clamp_min(0).sqrt()  # cov: (xx, xy, yy) in output pixels
        sy = 3.0 * cov[:, 2].to(torch.float64).clamp_min(0).sqrt()
        return _box_pairs(m[:, 0], m[:, 1], sx, sy, height, width)


def estimated_neighbour_pairs(means: torch.Tensor, radius: torch.Tensor, height: int, width: int,
                              window: tuple[float, float, float, float] | None = None) -> float:
    """An upper estimate of the (query pixel, Gaussian) pairs a neighbour search within ``radius`` (normalised
    units, one per Gaussian) examines on a ``height x width`` grid of ``window``: each Gaussian's radius box in
    output pixels, clipped to the output (GaINeR's KNN, :mod:`splatpix.gainer.knn`)."""
    if means.shape[0] == 0:
        return 0.0
    u0, v0, u1, v1 = window if window is not None else (0.0, 0.0, 1.0, 1.0)
    with torch.no_grad():
        m = means.detach().to(torch.float64)
        r = radius.detach().to(torch.float64)
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
