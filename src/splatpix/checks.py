"""Validation helpers shared by every config, container and parser: numbers as untrusted values, images as tensors.

Torch is imported only by :func:`check_image`, so the decoders can use the number checks without it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import SplatpixError

if TYPE_CHECKING:
    from torch import Tensor

IMAGE_CHANNELS = (1, 3, 4)
"""Channel counts of an image tensor: grey, RGB, RGBA."""


def is_int(x: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def is_real(x: Any) -> bool:
    """A real number (Python or NumPy; NaN and infinities included), not a bool."""
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_)


def is_number(x: Any) -> bool:
    """A finite real number, not a bool. An integer too large for a float is not finite (no OverflowError)."""
    if not is_real(x):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def int_in_range(value: object, name: str, lo: int, hi: int) -> int:
    """``value`` as an int in ``[lo, hi]``, or a ``ValueError`` naming it (for low-level coders, whose callers turn
    it into a one-line error)."""
    if not is_int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def json_float(x: Any) -> Any:
    """``x`` as a JSON report value: a float that is not finite becomes ``None``; anything else is unchanged."""
    return (float(x) if math.isfinite(x) else None) if isinstance(x, float) else x


def check_image(image: Tensor) -> Tensor:
    """``image`` as a contiguous float32 ``(C, H, W)`` tensor in ``[0, 1]`` (C in :data:`IMAGE_CHANNELS`), or a
    :class:`SplatpixError` saying what is wrong with it."""
    import torch

    if not isinstance(image, torch.Tensor):
        raise SplatpixError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] not in IMAGE_CHANNELS:
        raise SplatpixError(f"image must have shape (C, H, W) with C in {IMAGE_CHANNELS}, got {tuple(image.shape)}")
    if image.shape[1] < 1 or image.shape[2] < 1:
        raise SplatpixError(f"image is empty: {tuple(image.shape)}")
    if not image.is_floating_point():
        raise SplatpixError(f"image must be a float tensor with values in [0, 1], got dtype {image.dtype}")
    image = image.detach().to(torch.float32)
    if not bool(torch.isfinite(image).all()):
        raise SplatpixError("image contains non-finite values")
    lo, hi = float(image.min()), float(image.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise SplatpixError(f"image values must be in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
    return image.clamp(0.0, 1.0).contiguous()
