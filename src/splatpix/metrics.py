"""Image quality metrics, measured the way the compression community does.

PSNR is computed on the 8-bit-rounded images by default (``quantize=True``); pass ``quantize=False`` for the
float PSNR that representation papers sometimes report. MS-SSIM uses ``pytorch_msssim`` with
``data_range=255`` on 8-bit values; it needs every side > 160 px and returns ``None`` below that.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def to_8bit(img: Tensor) -> Tensor:
    """``[0, 1]`` float image -> float tensor of rounded 8-bit values in ``[0, 255]``."""
    return torch.round(img.detach().float().clamp(0.0, 1.0) * 255.0)


def mse(a: Tensor, b: Tensor) -> float:
    return float(torch.mean((a.detach().double() - b.detach().double()) ** 2))


def psnr(pred: Tensor, target: Tensor, quantize: bool = True) -> float:
    """PSNR in dB of ``(C, H, W)`` images in ``[0, 1]``; 8-bit rounded unless ``quantize=False``."""
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch {tuple(pred.shape)} vs {tuple(target.shape)}")
    if quantize:
        err = mse(to_8bit(pred), to_8bit(target)) / (255.0 * 255.0)
    else:
        err = mse(pred.clamp(0.0, 1.0), target)
    return float("inf") if err == 0 else 10.0 * math.log10(1.0 / err)


def psnr_rgba(pred: Tensor, target: Tensor, quantize: bool = True) -> tuple[float, float]:
    """``(colour PSNR inside the mask, alpha PSNR)`` of ``(4, H, W)`` RGBA images: the colour channels scored only
    where the target is not fully transparent (alpha > 0; a transparent pixel's colour is never seen), the alpha
    channel everywhere. 8-bit rounded unless ``quantize=False``; the colour PSNR is ``inf`` with no visible pixel."""
    if pred.shape != target.shape or pred.shape[0] != 4:
        raise ValueError(f"need two (4, H, W) RGBA images, got {tuple(pred.shape)} and {tuple(target.shape)}")
    conv = to_8bit if quantize else (lambda t: t.clamp(0.0, 1.0) * 255.0)
    p, t = conv(pred).double(), conv(target).double()
    visible = target[3] > 0
    n = int(visible.sum())
    err = float(((p[:3] - t[:3]) ** 2)[:, visible].sum()) / (3 * n * 255.0 * 255.0) if n else 0.0
    colour = float("inf") if err == 0 else 10.0 * math.log10(1.0 / err)
    return colour, psnr(pred[3:], target[3:], quantize)


def ms_ssim(pred: Tensor, target: Tensor) -> float | None:
    """MS-SSIM on 8-bit values (``data_range=255``); ``None`` when a side is <= 160 px."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(pred.shape[-2:]) <= 160:
        return None
    a = to_8bit(pred)[None]
    b = to_8bit(target)[None]
    return float(_ms_ssim(a, b, data_range=255.0, size_average=True))
