"""GaussianImage's random initialisation (the default of :func:`splatpix.train.fit`).

Raw parameters from one seeded ``torch.Generator`` (CPU, float32), drawn in this order:

* ``xy = atanh(clip(2 (U(0,1) - 0.5), +-(1 - 1e-4)))``: means uniform over the image;
* Cholesky: ``raw ~ U(0,1)^3``, i.e. ``L = raw + (0.5, 0, 0.5)``; or RS: ``scaling ~ U(0,1)^2``,
  ``rotation ~ U(0,1)``;
* colours ("features") ``~ U(0,1)`` per channel.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..model.raw import ATANH_CLIP

__all__ = ["random_raw"]


def random_raw(n: int, channels: int, param: str, seed: int) -> dict[str, Tensor]:
    """GaussianImage's raw parameter initialisation (float32, CPU, from a seeded generator)."""
    gen = torch.Generator().manual_seed(seed)
    u = 2.0 * (torch.rand(n, 2, generator=gen) - 0.5)
    raw: dict[str, Tensor] = {"xy": torch.atanh(u.clamp(-ATANH_CLIP, ATANH_CLIP))}
    if param == "cholesky":
        raw["cholesky"] = torch.rand(n, 3, generator=gen)
    else:
        raw["scaling"] = torch.rand(n, 2, generator=gen)
        raw["rotation"] = torch.rand(n, 1, generator=gen)
    raw["features"] = torch.rand(n, channels, generator=gen)
    return raw
