"""Structure-guided initialisation (mechanism 1 of Liang et al., arXiv 2512.24018), as we reconstruct it.

The paper gives only the idea; the details below follow the public description in
``shared/notes/structure-guided-allocation.md`` and fill its gaps with documented choices.

1. **Superpixels** (:func:`analyse_structure`): SLIC (``skimage.segmentation.slic``) with
   ``n_segments = max(1, round(H W / superpixel_area))`` (default area 1024 px), ``compactness = 10``,
   ``sigma = 1``, ``start_label = 0``. SLIC runs on our own feature image with ``convert2lab=False``: CIELAB for
   RGB (the colour space SLIC's compactness is calibrated for), ``100 * grey`` for grey images (the L* range),
   and Lab plus ``100 * alpha`` for RGBA, so one compactness value means the same for every channel count.
2. **Region complexity**: the variance, over the region's pixels, of the Sobel gradient magnitude of the
   luminance (:func:`.common.gradient_magnitude`).
3. **Three classes** by the terciles of the regions' complexities: with ``q1, q2`` the 1/3 and 2/3 quantiles
   (linear interpolation), ``class = [c > q1] + [c > q2]`` in ``{0, 1, 2}``, 2 the most complex. Ties stay together
   (e.g. many perfectly flat regions all get class 0); a single region is class 0. The per-pixel class map
   (:func:`complexity_map`, ``(H, W)`` int8) is what the codec uses later.
4. **Budgets**: region ``r`` gets the real share ``N w_r a_r / sum_s w_s a_s`` with class weights
   ``w = (1, 2, 6)`` for classes ``(0, 1, 2)`` (the 6:2:1 ratio per unit area) and ``a_r`` its pixel count; the
   floors are taken and the ``N - sum floor`` leftover Gaussians go one each to the regions ordered by
   class (most complex first), then largest fractional remainder, then complexity. The budgets sum to ``N``.
5. **Placement** inside a region (:func:`place_in_region`): ``n_r`` distinct pixels drawn with probability
   proportional to ``g + floor`` (``g`` the gradient magnitude, ``floor = 0.1`` times the image's mean ``g``, so
   flat areas still get some), then ``lloyd_iters`` (default 4) iterations of weighted Lloyd (k-means) on the
   region's pixel centres with the same weights: each pixel goes to its nearest centre, each centre moves to the
   weighted mean of its pixels (a centre with no pixel stays). This spreads the samples into a blue-noise-like
   pattern that is denser where the gradient is strong. A region with more Gaussians than pixels uses every
   pixel and draws the rest again, with uniform sub-pixel jitter, and skips Lloyd.
6. **Covariance**: isotropic, ``sigma = scale * spacing`` clipped to ``>= 0.5`` px, where ``spacing`` is the
   square root of the area per Gaussian: with ``sigma_from="cell"`` (default) the pixel count of the Gaussian's
   own final Lloyd cell, with ``sigma_from="region"`` ``a_r / n_r`` for all Gaussians of the region (the plain
   rule; the two agree on average). ``scale`` (default :data:`DEFAULT_SCALE` = 0.7) was measured: see
   ``DEFAULT_SCALE`` (the per-cell rule was also measured better than the per-region one, by 1.2 dB).
7. **Colours**: :func:`.common.coverage_colours`, the coverage-normalised mean colour under each Gaussian
   (:func:`splatpix.train.fit` then refines them by the least-squares colour solve when asked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

__all__ = ["CLASS_WEIGHTS", "DEFAULT_SCALE", "StructureAnalysis", "StructureInit", "allocate_budgets",
           "analyse_structure", "complexity_map", "place_in_region", "structure_init"]

CLASS_WEIGHTS = (1.0, 2.0, 6.0)  # Gaussians per unit area for complexity classes 0, 1, 2 (the paper's 6:2:1)

# sigma = DEFAULT_SCALE * sqrt(area per Gaussian), the per-cell rule: the best step-0 PSNR after the colour solve
# among the scales and rules tried (benchmarks/fit/init_scale.py; docs/notes/2026-11-22-init-scale.md).
DEFAULT_SCALE = 0.7
SIGMA_FROM = ("cell", "region")


@dataclass
class StructureAnalysis:
    """Superpixels and their complexity classes for one image.

    Attributes:
        labels: ``(H, W)`` int32 region index of each pixel, ``0 .. R-1``.
        complexity: ``(R,)`` variance of the Sobel gradient magnitude inside each region.
        region_class: ``(R,)`` int8 complexity class (0, 1, 2; 2 = most complex).
        class_map: ``(H, W)`` int8 class of each pixel (``region_class[labels]``).
        area: ``(R,)`` pixel count of each region.
        gradient: ``(H, W)`` Sobel gradient magnitude of the luminance.
    """

    labels: np.ndarray
    complexity: np.ndarray
    region_class: np.ndarray
    class_map: np.ndarray
    area: np.ndarray
    gradient: np.ndarray


@dataclass
class StructureInit:
    """Result of :func:`structure_init`: the model, its budgets and the analysis they came from.

    ``region`` is the ``(N,)`` region index of each Gaussian; ``budgets`` the ``(R,)`` Gaussians per region.
    """

    gaussians: Gaussians
    analysis: StructureAnalysis
    budgets: np.ndarray
    region: np.ndarray


def _slic_features(img: np.ndarray) -> np.ndarray:
    """Feature image for SLIC: Lab for RGB, 100 * grey, Lab + 100 * alpha (so compactness 10 means the same)."""
    from skimage.color import rgb2lab

    c = img.shape[2]
    if c == 1:
        return 100.0 * img
    lab = rgb2lab(img[:, :, :3])
    return lab if c == 3 else np.concatenate((lab, 100.0 * img[:, :, 3:4]), axis=2)


def _check_positive(name: str, v: float) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
        raise SplatpixError(f"{name} must be a finite number > 0, got {v!r}")


def analyse_structure(
    image: Tensor,
    *,
    superpixel_area: float = 1024.0,
    compactness: float = 10.0,
    sigma: float = 1.0,
) -> StructureAnalysis:
    """SLIC superpixels of ``image`` (``(C, H, W)`` in ``[0, 1]``), their complexity and complexity classes."""
    from skimage.segmentation import slic

    _check_positive("superpixel_area", superpixel_area)
    _check_positive("compactness", compactness)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise SplatpixError(f"SLIC sigma must be a finite number >= 0, got {sigma!r}")
    img = as_numpy_image(image)
    h, w, _ = img.shape
    n_segments = max(1, round(h * w / superpixel_area))
    if n_segments == 1:
        labels = np.zeros((h, w), dtype=np.int64)
    else:
        labels = slic(_slic_features(img), n_segments=n_segments, compactness=compactness, sigma=sigma,
                      start_label=0, convert2lab=False, channel_axis=-1)
    # make the labels contiguous 0 .. R-1 (SLIC may skip some)
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(h, w).astype(np.int32)
    r = int(labels.max()) + 1
    grad = gradient_magnitude(img)
    flat = labels.ravel()
    area = np.bincount(flat, minlength=r).astype(np.int64)
    s1 = np.bincount(flat, weights=grad.ravel(), minlength=r)
    s2 = np.bincount(flat, weights=grad.ravel() ** 2, minlength=r)
    mean = s1 / area
    complexity = np.maximum(s2 / area - mean * mean, 0.0)
    q1, q2 = np.quantile(complexity, [1.0 / 3.0, 2.0 / 3.0])
    region_class = ((complexity > q1).astype(np.int8) + (complexity > q2).astype(np.int8)).astype(np.int8)
    return StructureAnalysis(labels=labels, complexity=complexity, region_class=region_class,
                             class_map=region_class[labels], area=area, gradient=grad)


def complexity_map(image: Tensor, *, superpixel_area: float = 1024.0, compactness: float = 10.0,
                   sigma: float = 1.0) -> np.ndarray:
    """Per-pixel complexity class ``(H, W)`` int8 in ``{0, 1, 2}`` (2 = most complex), see :func:`analyse_structure`."""
    return analyse_structure(image, superpixel_area=superpixel_area, compactness=compactness,
                             sigma=sigma).class_map


def allocate_budgets(n: int, area: np.ndarray, region_class: np.ndarray, complexity: np.ndarray,
                     weights: tuple[float, float, float] = CLASS_WEIGHTS) -> np.ndarray:
    """Gaussians per region, summing to exactly ``n``: floors of ``n w_class a / sum(w_class a)``, then one each of
    the leftover to the regions ordered by class (most complex first), fractional remainder, complexity."""
    wa = np.asarray(weights, dtype=np.float64)[region_class] * area
    share = n * wa / wa.sum()
    budgets = np.floor(share).astype(np.int64)
    left = int(n - budgets.sum())
    if left > 0:
        # lexsort: last key is primary
        order = np.lexsort((-complexity, -(share - budgets), -region_class.astype(np.int64)))
        budgets[order[:left]] += 1
    return budgets


def place_in_region(ys: np.ndarray, xs: np.ndarray, weight: np.ndarray, k: int, rng: np.random.Generator,
                    lloyd_iters: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``k`` positions ``(k, 2)`` (x, y in px) in the region of pixels ``(ys, xs)`` with weights ``weight``,
    and the pixel count of each position's final Lloyd cell (``(k,)``, zeros when Lloyd is skipped)."""
    from scipy.spatial import cKDTree

    m = ys.size
    pts = np.stack((xs + 0.5, ys + 0.5), axis=1).astype(np.float64)
    if k > m:  # more Gaussians than pixels: every pixel, then more draws, all with sub-pixel jitter
        rounds = [np.arange(m)]
        left = k - m
        while left > 0:
            rounds.append(weighted_sample(weight, min(left, m), rng))
            left -= min(left, m)
        sel = np.concatenate(rounds)
        return pts[sel] + rng.uniform(-0.5, 0.5, size=(k, 2)), np.zeros(k, dtype=np.int64)
    centres = pts[weighted_sample(weight, k, rng)]
    counts = np.zeros(k, dtype=np.int64)
    for it in range(lloyd_iters + 1):
        if k == 1:
            assign = np.zeros(m, dtype=np.int64)
        else:
            _, assign = cKDTree(centres).query(pts)
        counts = np.bincount(assign, minlength=k)
        if it == lloyd_iters:
            break
        wsum = np.bincount(assign, weights=weight, minlength=k)
        cx = np.bincount(assign, weights=weight * pts[:, 0], minlength=k)
        cy = np.bincount(assign, weights=weight * pts[:, 1], minlength=k)
        moved = wsum > 0
        centres[moved, 0] = cx[moved] / wsum[moved]
        centres[moved, 1] = cy[moved] / wsum[moved]
    return centres, counts


def structure_init(
    image: Tensor,
    n: int,
    *,
    superpixel_area: float = 1024.0,
    compactness: float = 10.0,
    slic_sigma: float = 1.0,
    scale: float = DEFAULT_SCALE,
    sigma_from: str = "cell",
    lloyd_iters: int = 4,
    floor: float = 0.1,
    param: str = "cholesky",
    seed: int = 0,
    backend: str = "auto",
) -> StructureInit:
    """Structure-guided initialisation of ``n`` Gaussians for ``image`` (``(C, H, W)`` in ``[0, 1]``, C = 1, 3, 4).

    See the module docs for the steps and choices. Deterministic for a given ``seed`` (SLIC itself is
    deterministic). Works for any ``n >= 1``, also more Gaussians than pixels (they then share pixels at distinct
    sub-pixel positions).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SplatpixError(f"number of Gaussians must be an integer >= 1, got {n!r}")
    _check_positive("init scale", scale)
    if sigma_from not in SIGMA_FROM:
        raise SplatpixError(f"sigma_from must be one of {', '.join(SIGMA_FROM)}, got {sigma_from!r}")
    if not isinstance(lloyd_iters, int) or isinstance(lloyd_iters, bool) or lloyd_iters < 0:
        raise SplatpixError(f"lloyd_iters must be an integer >= 0, got {lloyd_iters!r}")
    if not (math.isfinite(floor) and floor >= 0):
        raise SplatpixError(f"floor must be a finite number >= 0, got {floor!r}")
    an = analyse_structure(image, superpixel_area=superpixel_area, compactness=compactness, sigma=slic_sigma)
    h, w = an.labels.shape
    rng = rng_from_seed(seed)
    budgets = allocate_budgets(n, an.area, an.region_class, an.complexity)
    grad = an.gradient
    weight_img = grad + floor * float(grad.mean()) + 1e-12
    flat = an.labels.ravel()
    order = np.argsort(flat, kind="stable")  # pixels grouped by region, in raster order within each
    starts = np.concatenate(([0], np.cumsum(an.area)))
    xy = np.zeros((n, 2))
    sigma = np.zeros(n)
    region = np.zeros(n, dtype=np.int64)
    pos = 0
    for r in range(an.area.size):
        k = int(budgets[r])
        if k == 0:
            continue
        pix = order[starts[r]:starts[r + 1]]
        ys, xs = np.divmod(pix, w)
        centres, counts = place_in_region(ys, xs, weight_img.ravel()[pix], k, rng, lloyd_iters)
        xy[pos:pos + k] = centres
        if sigma_from == "cell" and k <= pix.size:
            sigma[pos:pos + k] = scale * np.sqrt(np.maximum(counts, 1))
        else:
            sigma[pos:pos + k] = scale * math.sqrt(pix.size / k)
        region[pos:pos + k] = r
        pos += k
    means = finish_positions(xy, (h, w), rng)
    img = as_numpy_image(image)
    target = torch.from_numpy(img).permute(2, 0, 1).to(torch.float32)
    g = isotropic_gaussians(means, sigma, torch.zeros(n, img.shape[2]), (h, w), param)
    g.colours = coverage_colours(g, target, backend)
    return StructureInit(gaussians=g, analysis=an, budgets=budgets, region=region)
