"""Edit fidelity: how close an edited model's render is to the original image warped by the same deformation.

Definition
----------
For a smooth deformation ``phi`` with a known inverse (native pixels, :mod:`splatpix.edit.deform`), the ground
truth is the image warped by ``phi``:

    GT(y) = I(phi^-1(y))   for every output pixel centre y = (j + 0.5, i + 0.5),

sampled bicubically (``torch.nn.functional.grid_sample``, ``mode="bicubic"``, ``align_corners=False``, so pixel
``j`` covers ``[j, j + 1]``; ``padding_mode="border"``: samples that reach past the border repeat the edge pixels;
the result is clamped to ``[0, 1]``, bicubic can overshoot). An RGBA image is composited over black first, as the
edited render is (:func:`splatpix.edit.composite.render_model`).

The comparison is restricted to the mask ``M = {y : phi^-1(y) inside the image [0, W] x [0, H] and inside the
region}`` (region weight 1 at ``phi^-1(y)``; no region: the whole image), where ``GT`` is defined and where only
moved Gaussians should contribute:

* PSNR on 8-bit rounded values (:func:`splatpix.metrics.to_8bit`) over the masked pixels and all channels;
* SSIM (Gaussian window 11, sigma 1.5, K = (0.01, 0.03), data range 255, on 8-bit values, the formula of
  ``pytorch_msssim.ssim``) averaged over the SSIM-map positions whose window centre lies in ``M``.

Reported for both model kinds, with and without covariance transformation. The ``identity`` row (no edit, whole
image) gives each model's own fit quality for reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..edit.apply import apply_edit
from ..edit.composite import render_model
from ..edit.deform import Deformation
from ..edit.ops import DeformationFactory
from ..edit.region import Region
from ..errors import SplatpixError
from ..metrics import to_8bit

__all__ = ["QUICK_SUITE", "SUITE", "edit_fidelity", "masked_psnr", "masked_ssim", "run_suite", "source_points",
           "ssim_map", "suite_deformations", "warp_image"]

# (op, label, params) in the resolution-independent units of splatpix.edit.ops
SUITE: list[tuple[str, str, dict[str, Any]]] = [
    ("translate", "0.013", {"offset": [0.013, 0.013]}),
    ("translate", "0.1", {"offset": [0.1, 0.1]}),
    ("rotate", "5", {"angle": 5.0}),
    ("rotate", "15", {"angle": 15.0}),
    ("rotate", "30", {"angle": 30.0}),
    ("scale", "0.8", {"factor": 0.8}),
    ("scale", "1.25", {"factor": 1.25}),
    ("scale", "1.5", {"factor": 1.5}),
    ("stretch", "1.25", {"factor": 1.25, "axis": 30.0}),
    ("stretch", "1.5", {"factor": 1.5, "axis": 30.0}),
    ("bend", "20", {"angle": 20.0}),
    ("bend", "45", {"angle": 45.0}),
    ("twist", "30", {"angle": 30.0, "radius": 0.5}),
    ("twist", "90", {"angle": 90.0, "radius": 0.5}),
    ("wave", "0.01", {"amplitude": 0.01, "wavelength": 0.25}),
    ("wave", "0.03", {"amplitude": 0.03, "wavelength": 0.25}),
]
QUICK_SUITE = [SUITE[i] for i in (1, 3, 7, 9, 11, 13, 15)]


def suite_deformations(size: tuple[int, int], suite: Sequence[tuple[str, str, dict[str, Any]]] = SUITE
                       ) -> list[tuple[str, str, Deformation]]:
    """``(op, label, deformation)`` for a model of native ``size``."""
    f = DeformationFactory(size)
    return [(op, label, f.build(op, params, where=f"{op} {label}")) for op, label, params in suite]


def _opaque(image: Tensor) -> Tensor:
    img = image.detach().to(torch.float32)
    if img.shape[0] == 4:
        return (img[:3] * img[3:]).clamp(0, 1)
    return img


def warp_image(image: Tensor, inverse: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """``(GT, inside)``: ``GT(y) = image(inverse(y))`` ``(C, H, W)`` (bicubic, border padding, clamped; module
    docstring) and the ``(H, W)`` mask of pixels whose source ``inverse(y)`` lies inside the image (the sources
    themselves: :func:`source_points`)."""
    _, h, w = image.shape
    src = source_points(inverse, h, w)
    grid = torch.stack((2 * src[:, 0] / w - 1, 2 * src[:, 1] / h - 1), 1).reshape(1, h, w, 2)
    out = F.grid_sample(image.detach().to(torch.float64)[None], grid, mode="bicubic", padding_mode="border",
                        align_corners=False)[0].clamp(0, 1).to(torch.float32)
    inside = ((src[:, 0] >= 0) & (src[:, 0] <= w) & (src[:, 1] >= 0) & (src[:, 1] <= h)).reshape(h, w)
    return out, inside


def source_points(inverse: Callable[[Tensor], Tensor], height: int, width: int) -> Tensor:
    """``(H W, 2)`` float64 ``inverse(y)`` of the pixel centres ``y`` (row-major)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                            torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    y = torch.stack((xs.reshape(-1), ys.reshape(-1)), 1)
    with torch.no_grad():
        return inverse(y).detach()


def masked_psnr(pred: Tensor, target: Tensor, mask: Tensor) -> float:
    """PSNR (dB) on 8-bit rounded values over the ``(H, W)`` ``mask`` (all channels); ``inf`` if equal, ``nan``
    for an empty mask."""
    m = mask.to(torch.bool)
    if not bool(m.any()):
        return math.nan
    d = (to_8bit(pred).double() - to_8bit(target).double())[:, m]
    err = float((d * d).mean()) / (255.0 * 255.0)
    return math.inf if err == 0 else 10 * math.log10(1 / err)


def _gauss(win: int, sigma: float) -> Tensor:
    c = torch.arange(win, dtype=torch.float64) - win // 2
    g = torch.exp(-(c * c) / (2 * sigma * sigma))
    return g / g.sum()


def ssim_map(x: Tensor, y: Tensor, data_range: float = 255.0, win: int = 11, sigma: float = 1.5,
             k: tuple[float, float] = (0.01, 0.03)) -> Tensor:
    """``(C, H - win + 1, W - win + 1)`` SSIM map of ``(C, H, W)`` images (valid Gaussian filtering, as
    ``pytorch_msssim``)."""
    c = x.shape[0]
    g = _gauss(win, sigma).to(x.device)
    wx = g.reshape(1, 1, 1, win).expand(c, 1, 1, win)
    wy = g.reshape(1, 1, win, 1).expand(c, 1, win, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t[None], wx, groups=c), wy, groups=c)[0]

    x, y = x.double(), y.double()
    c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    return ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * ((2 * sxy + c2) / (sxx + syy + c2))


def masked_ssim(pred: Tensor, target: Tensor, mask: Tensor, win: int = 11) -> float | None:
    """SSIM on 8-bit values averaged over the map positions whose window centre is in ``mask`` (module docstring);
    ``None`` when a side is smaller than the window, ``nan`` for an empty mask."""
    _, h, w = pred.shape
    if min(h, w) < win:
        return None
    m = ssim_map(to_8bit(pred), to_8bit(target), win=win).mean(0)
    r = win // 2
    mk = mask.to(torch.bool)[r:h - r, r:w - r]
    if not bool(mk.any()):
        return math.nan
    return float(m[mk].mean())


def edit_fidelity(model: Any, image: Tensor, deformation: Deformation, region: Region | None = None,
                  transform_covariance: bool = True) -> dict[str, Any]:
    """``{psnr, ssim, pixels, render, target, mask}`` of the edited model vs the warped image (module docstring);
    the model and the image must have the same size."""
    h, w = model.size
    if tuple(image.shape[1:]) != (h, w):
        raise SplatpixError(f"the image is {image.shape[2]}x{image.shape[1]} but the model's native size is {w}x{h}")
    img = _opaque(image)
    edited = apply_edit(model, deformation, region, transform_covariance)
    pred = render_model(edited)
    inv = deformation.inverse()
    target, inside = warp_image(img, inv)
    mask = inside
    if region is not None:
        src = source_points(inv, h, w)
        mask = mask & (region.weights(src, (h, w)) >= 1).reshape(h, w)
    return {"psnr": masked_psnr(pred, target, mask), "ssim": masked_ssim(pred, target, mask),
            "pixels": int(mask.sum()), "render": pred, "target": target, "mask": mask}


def run_suite(model: Any, image: Tensor, suite: Sequence[tuple[str, str, dict[str, Any]]] = SUITE,
              region: Region | None = None, on_result: Callable[[dict[str, Any]], Any] | None = None
              ) -> list[dict[str, Any]]:
    """Rows ``{op, strength, transform_covariance, psnr, ssim, pixels}`` for every suite entry, with and without the
    covariance transformation, after an ``identity`` row (the model vs the image). ``on_result(row_with_images)``
    sees each result with its ``render`` / ``target`` / ``mask`` tensors (e.g. to save examples)."""
    from ..edit.deform import Translate

    rows = []
    base = edit_fidelity(model, image, Translate((0.0, 0.0)), None, False)
    rows.append({"op": "identity", "strength": "", "transform_covariance": None, "psnr": base["psnr"],
                 "ssim": base["ssim"], "pixels": base["pixels"]})
    for op, label, d in suite_deformations(model.size, suite):
        for tcov in (True, False):
            r = edit_fidelity(model, image, d, region, tcov)
            row = {"op": op, "strength": label, "transform_covariance": tcov, "psnr": r["psnr"], "ssim": r["ssim"],
                   "pixels": r["pixels"]}
            rows.append(row)
            if on_result is not None:
                on_result({**row, "render": r["render"], "target": r["target"], "mask": r["mask"]})
    return rows
