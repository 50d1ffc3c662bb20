"""Comparison pictures (``--compare OUT.png`` of ``fit``, ``encode`` and ``decode``): the original, the result and an
error map side by side, each with a caption; for ``encode`` also JPEG and WebP at the same number of bytes.

The error map is the per-pixel mean absolute error over the colour channels, amplified :data:`ERROR_GAIN` times and
shown on a blue-to-red ramp (black: no error; the caption says the gain). Every panel is 8-bit RGB (grey is
repeated, alpha dropped) at the original's size. Numpy and Pillow only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ERROR_GAIN", "classical_at_bytes", "compare_image", "error_map", "to_rgb8"]

ERROR_GAIN = 4.0
_CAPTION = 18  # caption strip height in pixels
_GAP = 4


def to_rgb8(img: Any) -> np.ndarray:
    """``(H, W, 3)`` uint8 of a ``(C, H, W)`` image in ``[0, 1]`` (torch or numpy; grey repeated, alpha dropped)."""
    a = img.detach().cpu().double().numpy() if hasattr(img, "detach") else np.asarray(img, dtype=np.float64)
    a = a[:3] if a.shape[0] >= 3 else np.repeat(a[:1], 3, axis=0)
    return np.round(np.clip(np.nan_to_num(a), 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)


def error_map(result: np.ndarray, original: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8: the mean absolute 8-bit error over the channels times :data:`ERROR_GAIN`, black (none)
    through blue and green to red (a quarter of the range or more)."""
    from ..render.overlay import colour_ramp

    err = np.abs(result.astype(np.float64) - original.astype(np.float64)).mean(axis=2) / 255.0
    t = np.clip(err * ERROR_GAIN, 0, 1)
    rgb = colour_ramp(t.reshape(-1)).reshape(*t.shape, 3).astype(np.float64)
    return np.round(rgb * np.minimum(t * 8, 1)[..., None]).astype(np.uint8)  # fade to black where the error is 0


def compare_image(panels: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
    """The ``(caption, (H, W, 3) uint8)`` panels in a row, captions above, on a dark background."""
    from PIL import Image, ImageDraw, ImageFont

    h = max(p.shape[0] for _, p in panels)
    widths = [p.shape[1] for _, p in panels]
    canvas = Image.new("RGB", (sum(widths) + _GAP * (len(panels) - 1), h + _CAPTION), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    x = 0
    for (caption, img), w in zip(panels, widths, strict=True):
        canvas.paste(Image.fromarray(img), (x, _CAPTION))
        draw.text((x + 3, 3), caption, fill=(235, 235, 235), font=font)
        x += w + _GAP
    return np.asarray(canvas)


def classical_at_bytes(original: Any, num_bytes: int) -> list[dict[str, Any]]:
    """JPEG and WebP of ``original`` (``(3, H, W)``) at about ``num_bytes`` (the target rate of
    :func:`splatpix.eval.baselines.encode_at_bpp`): ``{codec, bytes, bpp, psnr, image}`` each (``image`` the decoded
    ``(H, W, 3)`` uint8)."""
    from .baselines import encode_at_bpp, get_codec

    h, w = original.shape[1:]
    out = []
    for name in ("jpeg", "webp"):
        r = encode_at_bpp(name, original, num_bytes * 8 / (h * w))
        out.append({"codec": name, "bytes": len(r.bytes), "bpp": r.bpp, "psnr": r.psnr,
                    "image": get_codec(name).decode(r.bytes)})
    return out
