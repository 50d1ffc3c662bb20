"""Helpers shared by the image-driven initialisations (:mod:`.gradient`, :mod:`.structure`).

* :func:`as_numpy_image`: validated ``(C, H, W)`` tensor -> ``(H, W, C)`` float64 array.
* :func:`gradient_magnitude`: Sobel gradient magnitude of the luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (grey:
  the grey channel). With an alpha channel the alpha edges count too: ``sqrt(|grad Y|^2 + |grad alpha|^2)``.
  Uses :func:`skimage.filters.sobel` (``sqrt((Sx^2 + Sy^2) / 2)`` with its normalised kernels, reflected border).
* :func:`weighted_sample`: ``k`` distinct indices drawn with probabilities proportional to weights, without
  replacement, by the exponential race (Efraimidis-Spirakis): keys ``E_i / w_i`` with ``E_i ~ Exp(1)``, keep the
  ``k`` smallest.
* :func:`coverage_colours`: colours read from the image under each Gaussian, normalised by the coverage.
* :func:`finish_positions`: pixel positions -> normalised means strictly inside ``(0, 1)``, all distinct.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..checks import check_image
from ..errors import SplatpixError
from ..model.gaussians import Gaussians

__all__ = ["as_numpy_image", "coverage_colours", "finish_positions", "gradient_magnitude", "isotropic_gaussians",
           "rng_from_seed", "weighted_sample"]

MIN_SIGMA = 0.5  # px: the smallest initial standard deviation (GaussianImage's Cholesky bound)
_U_EPS = 0.5e-4  # means are kept in [eps, 1 - eps]: inside the atanh clip of the raw parameters


def rng_from_seed(seed: int) -> np.random.Generator:
    """A numpy generator for any Python integer seed (negative ones included)."""
    return np.random.default_rng(int(seed) % (1 << 64))


def as_numpy_image(image: Tensor) -> np.ndarray:
    """Validate a ``(C, H, W)`` image in ``[0, 1]`` (C = 1, 3, 4) and return it as ``(H, W, C)`` float64."""

    img = check_image(image)
    return img.cpu().double().permute(1, 2, 0).numpy().copy()


def luminance(img: np.ndarray) -> np.ndarray:
    """``(H, W)`` luminance of an ``(H, W, C)`` image: the grey channel, or Rec. 601 luma of RGB(A)."""
    if img.shape[2] == 1:
        return img[:, :, 0]
    return 0.299 * img[:, :, 0] + 0.587 * img[:, :, 1] + 0.114 * img[:, :, 2]


def gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude ``(H, W)`` of the luminance (and of alpha, combined in quadrature)."""
    from skimage.filters import sobel

    if min(img.shape[:2]) < 3:  # too small for a 3x3 stencil to mean anything: no structure
        return np.zeros(img.shape[:2])
    g = sobel(luminance(img))
    if img.shape[2] == 4:
        g = np.hypot(g, sobel(img[:, :, 3]))
    return np.asarray(g, dtype=np.float64)


def weighted_sample(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct indices into ``weights`` (1-D, >= 0, ``k <= len``), drawn with probability proportional to
    the weights without replacement (exponential race). Zero weights are drawn only after all positive ones."""
    w = np.asarray(weights, dtype=np.float64)
    if k > w.size:
        raise ValueError(f"cannot draw {k} distinct items from {w.size}")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    e = rng.exponential(size=w.size)
    with np.errstate(divide="ignore"):
        keys = np.where(w > 0, e / np.where(w > 0, w, 1.0), np.inf)
    # ties among the zero weights (inf keys) are broken by the exponential draw itself
    keys = np.where(np.isinf(keys), 1e300 * (1.0 + e), keys)
    idx = np.argpartition(keys, k - 1)[:k] if k < w.size else np.arange(w.size)
    return idx[np.argsort(keys[idx], kind="stable")].astype(np.int64)


def finish_positions(xy: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Pixel positions ``(N, 2)`` (x, y; pixel centres at ``j + 0.5``) -> normalised means ``(N, 2)``.

    Means are clipped to ``[eps, 1 - eps]`` (``eps = 5e-5``, strictly inside the image and inside the atanh clip
    of the raw parameters) and made pairwise distinct: any exact duplicate is moved by a random offset of at most
    a hundredth of a pixel (repeated until none is left).
    """
    h, w = size
    u = np.empty_like(xy, dtype=np.float64)
    u[:, 0] = xy[:, 0] / w
    u[:, 1] = xy[:, 1] / h
    u = np.clip(u, _U_EPS, 1.0 - _U_EPS)
    for _ in range(100):
        _, first, counts = np.unique(u, axis=0, return_index=True, return_counts=True)
        if u.shape[0] == 0 or (counts == 1).all():
            break
        dup = np.ones(u.shape[0], dtype=bool)
        dup[first] = False  # keep the first occurrence of each position, move the others
        offs = rng.uniform(-0.01, 0.01, size=(int(dup.sum()), 2)) / np.array([w, h])
        u[dup] = np.clip(u[dup] + offs, _U_EPS, 1.0 - _U_EPS)
    return u


def isotropic_gaussians(means_u: np.ndarray, sigma_px: np.ndarray, colours: Tensor | np.ndarray,
                        size: tuple[int, int], param: str = "cholesky") -> Gaussians:
    """Isotropic model: Cholesky ``L = (sigma, 0, sigma)`` (or RS ``(sigma, sigma, pi)``) in native pixels."""
    sigma = torch.as_tensor(np.maximum(sigma_px, MIN_SIGMA), dtype=torch.float32)
    if param == "cholesky":
        cov = torch.stack((sigma, torch.zeros_like(sigma), sigma), dim=1)
    elif param == "rs":
        cov = torch.stack((sigma, sigma, torch.full_like(sigma, float(np.pi))), dim=1)
    else:
        raise SplatpixError(f"unknown covariance parameterisation {param!r}")
    cols = torch.as_tensor(colours, dtype=torch.float32)
    return Gaussians(torch.as_tensor(means_u, dtype=torch.float32), cov, cols, param, size)


def coverage_colours(g: Gaussians, image: Tensor, backend: str = "auto") -> Tensor:
    """Colour of each Gaussian read from the image under it, normalised by the coverage (``(N, C)``).

    With weights ``w_i(p)`` (the render's matrix ``A``) and coverage ``D(p) = sum_j w_j(p)``:

        c_i = sum_p w_i(p) I(p) / D(p)  /  sum_p w_i(p)   =   [A^T (I / D)]_i / [A^T 1]_i,

    the Gaussian-weighted mean of ``I / D`` under Gaussian ``i``. Since the renderer *sums* (it does not normalise),
    the plain weighted mean of ``I`` would render at about ``D`` times the image where Gaussians overlap;
    dividing by ``D`` makes the initial render ``sum_i w_i c_i ~ I`` (exact for a constant image and constant
    ``D``). A Gaussian that touches no pixel gets the mean image colour.
    """
    from ..train.colour_solve import LinearRender  # lazy: avoid an import cycle at package import

    op = LinearRender(g, backend=backend)
    img = image.detach().to(torch.float32)
    ones_n = torch.ones(g.n, 1, dtype=torch.float32)
    cover = op.forward(ones_n)  # (1, H, W)
    ratio = torch.where(cover > 1e-6, img / cover.clamp_min(1e-6), torch.zeros_like(img))
    num = op.adjoint(ratio)  # (N, C)
    den = op.adjoint(torch.ones_like(cover))  # (N, 1)
    mean = img.flatten(1).mean(1)[None, :].expand_as(num)
    cols = torch.where(den > 1e-8, num / den.clamp_min(1e-8), mean)
    return cols.detach()
