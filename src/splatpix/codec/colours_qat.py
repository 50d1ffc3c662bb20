"""The encoder side of scalar-quantised colours (torch): the transform in torch, a fake-quantiser with one learned
uniform quantiser per channel (LSQ-style gradients, :class:`~.quantize.LearnedUniformQuantizer`), and the
post-training quantisation the RD-aware choice of the bit depths evaluates. The format is :mod:`.colours`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .colours import TRANSFORM_IDENTITY, TRANSFORM_YCOCG, ScalarColours
from .quantize import LearnedUniformQuantizer

__all__ = ["ScalarColourQuantizer", "colour_transform", "ptq_colours", "ycocg_forward_torch", "ycocg_inverse_torch"]


def colour_transform(channels: int) -> int:
    """The transform used for ``channels`` colour channels: YCoCg for RGB, none otherwise."""
    return TRANSFORM_YCOCG if channels == 3 else TRANSFORM_IDENTITY


def ycocg_forward_torch(rgb: Tensor) -> Tensor:
    """:func:`.colours.ycocg_forward_np` in torch (differentiable; need not match numpy bit for bit: only the
    inverse is on the decode path)."""
    r, g, b = rgb.unbind(dim=1)
    return torch.stack([0.25 * r + 0.5 * g + 0.25 * b, 0.5 * (r - b), 0.5 * g - 0.25 * (r + b)], dim=1)


def ycocg_inverse_torch(ycc: Tensor) -> Tensor:
    """:func:`.colours.ycocg_inverse_np` in torch, the same float32 operations in the same order (bit for bit)."""
    y, co, cg = ycc.unbind(dim=1)
    return torch.stack([(y + co) - cg, y + cg, (y - co) - cg], dim=1)


def _forward(x: Tensor, transform: int) -> Tensor:
    return ycocg_forward_torch(x) if transform == TRANSFORM_YCOCG else x


def _inverse(x: Tensor, transform: int) -> Tensor:
    return ycocg_inverse_torch(x) if transform == TRANSFORM_YCOCG else x


class ScalarColourQuantizer(nn.Module):
    """Colours -> transform -> a learned uniform quantiser per channel (``bits[j]`` bits) -> inverse transform.

    The forward value is exactly what :meth:`.colours.ScalarColours.dequantize` gives for :meth:`encode`'s symbols
    (the quantisers' forward is exact, and the inverse transform is the decoder's arithmetic)."""

    def __init__(self, bits: Sequence[int]) -> None:
        super().__init__()
        self.bits = [int(b) for b in bits]
        self.transform = colour_transform(len(self.bits))
        self.quantizers = nn.ModuleList(LearnedUniformQuantizer(1, b) for b in self.bits)

    @torch.no_grad()
    def init_from(self, colours: Tensor) -> ScalarColourQuantizer:
        """Each channel's step and offset from the min and max of the transformed ``colours`` ``(N, C)``."""
        x = _forward(colours.detach().float(), self.transform)
        for j, q in enumerate(self.quantizers):
            q.init_from(x[:, j:j + 1])
        return self

    def parameters_by_name(self) -> dict[str, Tensor]:
        out = {}
        for j, q in enumerate(self.quantizers):
            out[f"colour_log_scale{j}"] = q.log_scale
            out[f"colour_offset{j}"] = q.offset
        return out

    def forward(self, colours: Tensor) -> Tensor:
        x = _forward(colours, self.transform)
        return _inverse(torch.cat([q(x[:, j:j + 1]) for j, q in enumerate(self.quantizers)], dim=1), self.transform)

    @torch.no_grad()
    def encode(self, colours: Tensor) -> ScalarColours:
        x = _forward(colours.detach().float(), self.transform)
        sym = np.concatenate([q.encode(x[:, j:j + 1]) for j, q in enumerate(self.quantizers)], axis=1)
        scale = np.array([float(q.scale.detach()[0]) for q in self.quantizers], dtype=np.float32)
        offset = np.array([float(q.offset.detach()[0]) for q in self.quantizers], dtype=np.float32)
        return ScalarColours(self.transform, self.bits, scale, offset, sym)


@torch.no_grad()
def ptq_colours(colours: Tensor, bits: Sequence[int]) -> tuple[Tensor, np.ndarray]:
    """Post-training quantisation of ``colours`` ``(N, C)`` as a freshly initialised :class:`ScalarColourQuantizer`
    of ``bits`` would do it: (dequantised colours, ``(N, C)`` symbols)."""
    q = ScalarColourQuantizer(bits).init_from(colours)
    c = colours.detach().float()
    return q(c), q.encode(c).symbols
