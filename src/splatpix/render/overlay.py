"""The Gaussians made visible: each one's 1-sigma ellipse drawn over a render (``render --ellipses``,
``decode --ellipses``), at any size or crop, in numpy and Pillow (no torch, no numba).

An ellipse is the polygon of :data:`VERTICES` points ``mean + L (cos t, sin t)`` with ``L`` the Cholesky factor of the
Gaussian's covariance *on the output grid* (:func:`splatpix.model.arrays.project`), so it is drawn where the
renderer's Gaussian is, whatever the zoom. Colours: ``"size"`` maps the Gaussian's 1-sigma area (``pi sqrt(det)`` in
native pixels, on a log scale between the 2nd and 98th percentiles) from blue (small) to red (large); ``"tier"``
colours method ``sga``'s covariance tiers (tier 0, the densest, blue); ``"white"`` draws them all alike. Gaussians
the renderer skips (degenerate, not finite) and those whose ellipse misses the output are not drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..model.arrays import as_arrays, covariance_from_params, project

__all__ = ["COLOURINGS", "VERTICES", "colour_ramp", "draw_ellipses", "ellipse_colours"]

VERTICES = 24
COLOURINGS = ("size", "tier", "white")
# blue -> cyan -> green -> yellow -> red
_RAMP = np.array([[40, 90, 255], [0, 210, 255], [60, 230, 80], [255, 220, 0], [255, 40, 30]], dtype=np.float64)


def colour_ramp(t: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 colours of ``t`` in ``[0, 1]`` along :data:`_RAMP`."""
    x = np.clip(t, 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(x.astype(np.int64), len(_RAMP) - 2)
    f = (x - i)[:, None]
    return np.round(_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).astype(np.uint8)


def ellipse_colours(g: Any, by: str, tiers: np.ndarray | None = None) -> np.ndarray:
    """``(N, 3)`` uint8 outline colours of the Gaussians of ``g`` by ``"size"``, ``"tier"`` (``tiers``: each
    Gaussian's tier) or ``"white"``."""
    g = as_arrays(g)
    if by == "white":
        return np.full((g.n, 3), 255, dtype=np.uint8)
    if by == "tier":
        if tiers is None:
            raise ValueError("colouring by tier needs the tiers (a .spix file of method sga)")
        top = max(int(tiers.max()) if tiers.size else 0, 1)
        return colour_ramp(np.asarray(tiers, dtype=np.float64) / top)
    if by != "size":
        raise ValueError(f"unknown colouring {by!r}; use one of {', '.join(COLOURINGS)}")
    cov = covariance_from_params(g.cov_params, g.param).astype(np.float64)
    with np.errstate(all="ignore"):
        area = np.log(np.sqrt(np.maximum(cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2, 1e-12)))
    finite = np.isfinite(area)
    if not finite.any():
        return colour_ramp(np.zeros(g.n))
    lo, hi = np.percentile(area[finite], [2, 98])
    return colour_ramp(np.where(finite, (area - lo) / max(hi - lo, 1e-9), 0.0))


def draw_ellipses(image: np.ndarray, g: Any, colours: np.ndarray,
                  window: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """``image`` (``(H, W, 3)`` uint8, the render of ``g`` on ``window``) with the 1-sigma ellipses drawn over it, one
    pixel wide, in ``colours`` (``(N, 3)`` uint8); returns a new array."""
    from PIL import Image, ImageDraw

    g = as_arrays(g)
    h, w = image.shape[:2]
    means, cov = project(g, h, w, window)
    m, c = means.astype(np.float64), cov.astype(np.float64)
    with np.errstate(all="ignore"):
        l11 = np.sqrt(c[:, 0])
        l21 = c[:, 1] / l11
        l22 = np.sqrt(c[:, 2] - l21 * l21)
    t = np.linspace(0.0, 2.0 * np.pi, VERTICES + 1)
    ct, st = np.cos(t)[None, :], np.sin(t)[None, :]
    xs = m[:, :1] + l11[:, None] * ct
    ys = m[:, 1:] + l21[:, None] * ct + l22[:, None] * st
    ok = np.isfinite(xs).all(axis=1) & np.isfinite(ys).all(axis=1) & (l11 > 0) & (l22 > 0)
    ok &= (xs.max(axis=1) >= 0) & (xs.min(axis=1) <= w) & (ys.max(axis=1) >= 0) & (ys.min(axis=1) <= h)
    pil = Image.fromarray(np.ascontiguousarray(image[:, :, :3]))
    draw = ImageDraw.Draw(pil)
    for i in np.flatnonzero(ok):
        draw.line(list(zip((xs[i] - 0.5).tolist(), (ys[i] - 0.5).tolist(), strict=True)),
                  fill=tuple(int(v) for v in colours[i]), width=1)
    return np.asarray(pil)
