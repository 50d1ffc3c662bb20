"""Rendering a numpy :class:`~splatpix.model.arrays.GaussianArrays` model: the decode path, with no torch.

The same projection, conic and numba kernel as :func:`splatpix.render.render` (:mod:`.tensor`), on float32 numpy
arrays; the tests compare the two renders.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..jit import use_kernels
from ..model.arrays import as_arrays, conic_from_covariance, project
from . import output_size, vectorised

__all__ = ["render_array"]


def render_array(g: Any, height: int | None = None, width: int | None = None, *, scale: float | None = None,
                 window: tuple[float, float, float, float] | None = None, clamp: bool = False) -> np.ndarray:
    """``(C, height, width)`` float32 render of ``g`` (a ``GaussianArrays``, or a torch ``Gaussians``, used
    without gradient). Size, ``window`` and ``clamp`` as in :func:`splatpix.render.render`. The engine
    (:func:`splatpix.jit.use_kernels`) picks the numba kernels or the numpy forward (:mod:`.vectorised`)."""

    g = as_arrays(g)
    height, width = output_size(g.size, height, width, scale)
    if height <= 0 or width <= 0:
        raise ValueError(f"output size must be positive, got {height}x{width}")
    means_px, cov_px = project(g, height, width, window)
    conic, _ = conic_from_covariance(cov_px)
    means_px, conic = np.ascontiguousarray(means_px), np.ascontiguousarray(conic)
    if not use_kernels():
        out = vectorised.forward(means_px, conic, g.colours, height, width)
        return np.clip(out, 0.0, 1.0, out=out) if clamp else out
    from . import cpu

    out, _ = cpu.forward(means_px, conic, g.colours, height, width)
    if clamp:
        cpu.clamp01_(out)
    return out
