"""The footprint term: the rasteriser's (pixel, Gaussian) pairs per pixel, as a differentiable penalty.

The decode time at a given N is proportional to the pairs the rasteriser evaluates; ``fit`` and QAT add
``footprint_weight * mse.detach() * footprint(...)`` (:func:`footprint_penalty`) so that the Gaussians stay as
small as the image allows.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

__all__ = ["FOOTPRINT_FLOOR", "FOOTPRINT_SIGMA", "footprint", "footprint_penalty"]

FOOTPRINT_SIGMA = 3.0
"""The rasteriser's support: a Gaussian touches the pixels inside its 3-sigma ellipse (:mod:`splatpix.render`)."""
FOOTPRINT_FLOOR = 0.25
"""``sqrt(det Sigma)`` (px^2) below which :func:`footprint` stops shrinking a Gaussian (sigma 0.5 px, under a pixel):
the Cholesky factors of the fit may cross zero, and a penalty that pushed them all the way made the covariance
singular (a non-finite loss on kodim01 at N = 7000, weight 0.3)."""


def footprint(cov_params: Tensor, param: str, height: int, width: int) -> Tensor:
    """Differentiable estimate of the rasteriser's (pixel, Gaussian) pairs per pixel at the native size.

    A Gaussian's 3-sigma ellipse has area ``9 pi sqrt(det Sigma)`` pixels; summed over the Gaussians and divided by
    ``H W`` this is the number of pairs the kernels evaluate per pixel (:func:`splatpix.eval.kernel.count_pairs` counts
    them exactly; the estimate ignores clipping at the image border and pixel-centre rounding). With
    ``sqrt(det Sigma) = |l11 l22|`` (Cholesky) or ``|s1 s2|`` (rotation-scale) it is smooth in the parameters;
    each Gaussian counts at least :data:`FOOTPRINT_FLOOR` (no gradient below it).
    Decoding time is proportional to it at a given N (docs/results.md), so ``fit`` can penalise it.
    """
    if param == "cholesky":
        root_det = (cov_params[:, 0] * cov_params[:, 2]).abs()
    elif param == "rs":
        root_det = (cov_params[:, 0] * cov_params[:, 1]).abs()
    else:
        raise ValueError(f"unknown covariance parameterisation {param!r}")
    return root_det.clamp_min(FOOTPRINT_FLOOR).sum() * (FOOTPRINT_SIGMA ** 2 * np.pi / (int(height) * int(width)))


def footprint_penalty(mse: Tensor, cov_params: Tensor, param: str, height: int, width: int, weight: float) -> Tensor:
    """``weight * mse.detach() * footprint``: a footprint term relative to the current error, so that ``weight`` is
    scale-free -- at the optimum one more pair per pixel must lower the MSE by the fraction ``weight`` (0.01: one
    pair per pixel is worth 1 % of the MSE, 0.043 dB)."""
    return weight * mse.detach() * footprint(cov_params, param, height, width)
