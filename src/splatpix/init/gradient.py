"""Image-GS's gradient-guided initialisation (Zhang et al., SIGGRAPH 2025), as a training-free baseline.

* **Positions**: pixels drawn without replacement with probability

      P(p) = (1 - lambda) |grad I(p)|^2 / sum_q |grad I(q)|^2  +  lambda / (H W),     lambda = uniform_fraction = 0.3,

  (``|grad I|``: Sobel magnitude of the luminance, :func:`.common.gradient_magnitude`; a flat image gives the
  uniform distribution), each moved by a uniform sub-pixel offset in ``[-0.5, 0.5)^2`` so positions are continuous
  and distinct. When ``N`` exceeds the pixel count every pixel is used and the rest are drawn again (again without
  replacement within each round), several Gaussians then sharing a pixel at different sub-pixel offsets.
* **Covariance** from the local density of the samples: isotropic ``sigma_i = scale * r_k(i) sqrt(pi / k)`` where
  ``r_k(i)`` is the distance to the ``k``-th nearest other sample (``scipy.spatial.cKDTree``, ``k = 4``). For points
  of local density ``rho`` (per px^2), ``pi r_k^2 rho ~ k``, so ``r_k sqrt(pi / k)`` estimates the local spacing
  ``rho^(-1/2)`` and ``scale`` plays the same role as in :mod:`.structure` (default 1.0, measured: see
  ``DEFAULT_SCALE``). Clipped to ``sigma >= 0.5`` px. (The density rule is our choice, not taken from
  Image-GS, so that both image-driven initialisations tile the image alike.)
* **Colours** from the image: :func:`.common.coverage_colours` (the coverage-normalised mean colour under each
  Gaussian).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import SplatpixError
from ..model.gaussians import Gaussians
from .common import (
    as_numpy_image,
    coverage_colours,
    finish_positions,
    gradient_magnitude,
    isotropic_gaussians,
    rng_from_seed,
    weighted_sample,
)

__all__ = ["DEFAULT_SCALE", "gradient_init", "sample_positions"]

# Chosen as splatpix.init.structure.DEFAULT_SCALE was (docs/notes/2026-11-22-init-scale.md): the k-NN spacing of
# randomly drawn points underestimates the mean spacing (clumps), hence a larger constant than the structure init's.
DEFAULT_SCALE = 1.0


def sample_positions(prob: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` pixel positions ``(x, y)`` (float, ``(n, 2)``) drawn from the ``(H, W)`` weights ``prob`` without
    replacement (round after round when ``n`` exceeds the pixel count), with uniform sub-pixel jitter."""
    h, w = prob.shape
    flat = prob.ravel()
    idx = []
    left = n
    while left > 0:
        k = min(left, flat.size)
        idx.append(weighted_sample(flat, k, rng))
        left -= k
    sel = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
    ys, xs = np.divmod(sel, w)
    jitter = rng.uniform(-0.5, 0.5, size=(sel.size, 2))
    return np.stack((xs + 0.5 + jitter[:, 0], ys + 0.5 + jitter[:, 1]), axis=1)


def density_sigma(xy: np.ndarray, size: tuple[int, int], scale: float, k: int = 4) -> np.ndarray:
    """``scale * r_k sqrt(pi / k)`` per point (px), ``r_k`` its distance to the k-th nearest other point."""
    from scipy.spatial import cKDTree

    n = xy.shape[0]
    h, w = size
    if n <= 1:
        return np.full(n, scale * math.sqrt(h * w))
    k = min(k, n - 1)
    d, _ = cKDTree(xy).query(xy, k=k + 1)  # column 0 is the point itself
    return scale * d[:, k] * math.sqrt(math.pi / k)


def gradient_init(
    image: Tensor,
    n: int,
    *,
    uniform_fraction: float = 0.3,
    scale: float = DEFAULT_SCALE,
    k_neighbours: int = 4,
    param: str = "cholesky",
    seed: int = 0,
    backend: str = "auto",
) -> Gaussians:
    """Image-GS initialisation of ``n`` Gaussians for ``image`` (``(C, H, W)`` in ``[0, 1]``); see the module docs.

    Returns the effective model (normalised means strictly inside ``(0, 1)``, isotropic covariance in native
    pixels, colours ``(n, C)``), deterministic for a given ``seed``.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SplatpixError(f"number of Gaussians must be an integer >= 1, got {n!r}")
    if not (0.0 <= uniform_fraction <= 1.0):
        raise SplatpixError(f"uniform_fraction must be in [0, 1], got {uniform_fraction!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise SplatpixError(f"init scale must be a finite number > 0, got {scale!r}")
    if not isinstance(k_neighbours, int) or k_neighbours < 1:
        raise SplatpixError(f"k_neighbours must be an integer >= 1, got {k_neighbours!r}")
    img = as_numpy_image(image)
    h, w, _ = img.shape
    rng = rng_from_seed(seed)
    g2 = gradient_magnitude(img) ** 2
    total = float(g2.sum())
    prob = np.full((h, w), 1.0 / (h * w))
    if total > 0:
        prob = (1.0 - uniform_fraction) * g2 / total + uniform_fraction * prob
    xy = sample_positions(prob, n, rng)
    sigma = density_sigma(xy, (h, w), scale, k_neighbours)
    means = finish_positions(xy, (h, w), rng)
    target = torch.from_numpy(img).permute(2, 0, 1).to(torch.float32)
    g = isotropic_gaussians(means, sigma, torch.zeros(n, img.shape[2]), (h, w), param)
    g.colours = coverage_colours(g, target, backend)
    return g
