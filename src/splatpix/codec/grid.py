"""Grid quantisation of Gaussian centres (torch): the quantiser and its straight-through form for training.

The rule and its exactness are described in :mod:`.positions` (which codes the grid points as a set, in numpy, for
the decoder): ``q = clamp(round(u * W * subdiv), 0, W * subdiv)`` in float64, dequantised as
``float32(float64(q) / float64(W * subdiv))``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import SplatpixError
from .positions import grid_levels
from .quantize import exact_ste

__all__ = ["dequantize_grid", "grid_ste", "quantize_grid"]


def _steps(size: tuple[int, int], subdiv: int, device: torch.device) -> Tensor:
    """``(W * subdiv, H * subdiv)`` as a float64 tensor (the grid step is ``1 / steps`` in normalised units)."""
    lx, ly = grid_levels(size, subdiv)
    return torch.tensor([lx - 1, ly - 1], dtype=torch.float64, device=device)


def _f64_device(device: torch.device) -> torch.device:
    """A device with IEEE float64 arithmetic: ``device`` itself, or the CPU for backends without float64."""
    return torch.device("cpu") if device.type == "mps" else device


def _grid_symbols(means: Tensor, steps: Tensor) -> Tensor:
    """``clamp(round(u * steps), 0, steps)`` in float64 (integer-valued); the single quantisation rule."""
    scaled = torch.round(means.to(torch.float64) * steps)
    return torch.minimum(torch.maximum(scaled, torch.zeros_like(steps)), steps)


def _grid_values(q: Tensor, steps: Tensor) -> Tensor:
    """``float32(float64(q) / steps)``; the single dequantisation rule (training and decoding)."""
    return (q.to(torch.float64) / steps).to(torch.float32)


def _check_means(means: Tensor) -> None:
    if not isinstance(means, Tensor) or means.ndim != 2 or means.shape[1] != 2:
        raise ValueError(f"means must be an (N, 2) tensor, got {getattr(means, 'shape', type(means))}")


def quantize_grid(means: Tensor, size: tuple[int, int], subdiv: int) -> tuple[np.ndarray, Tensor]:
    """Grid quantisation of normalised means ``(N, 2)`` (``(u, v)``, ``x = u * W``) of a model of native
    ``size = (H, W)``.

    Returns ``(q, dequantised)``: ``q`` an ``(N, 2)`` int64 array of grid coordinates ``(qx, qy)`` with
    ``0 <= qx <= W * subdiv`` and ``0 <= qy <= H * subdiv``; ``dequantised`` the float32 tensor they decode to
    (on ``means``' device, no gradient; :func:`grid_ste` is the training form). Raises :class:`SplatpixError`
    for non-finite means.
    """
    _check_means(means)
    m = means.detach()
    if not bool(torch.isfinite(m).all()):
        raise SplatpixError("cannot quantise non-finite Gaussian positions")
    dev = _f64_device(m.device)
    steps = _steps(size, subdiv, dev)
    sym = _grid_symbols(m.to(dev), steps)
    q = sym.to(torch.int64).cpu().numpy()
    return q, _grid_values(sym, steps).to(means.device)


def dequantize_grid(q: np.ndarray | Tensor, size: tuple[int, int], subdiv: int) -> Tensor:
    """Float32 CPU tensor ``(N, 2)`` of the normalised means of grid coordinates ``q`` (``(N, 2)`` integers
    inside the grid; raises :class:`ValueError` otherwise)."""
    qt = torch.as_tensor(np.asarray(q) if not isinstance(q, Tensor) else q).cpu()
    if qt.ndim != 2 or qt.shape[1] != 2 or (qt.numel() and (qt.dtype.is_floating_point or qt.dtype == torch.bool)):
        raise ValueError(f"q must be an (N, 2) integer array, got {qt.dtype} {tuple(qt.shape)}")
    steps = _steps(size, subdiv, torch.device("cpu"))
    qt = qt.to(torch.int64)
    if qt.numel() and (bool((qt < 0).any()) or bool((qt.to(torch.float64) > steps).any())):
        raise ValueError("grid coordinates outside the grid")
    return _grid_values(qt, steps)


def grid_ste(means: Tensor, size: tuple[int, int], subdiv: int) -> Tensor:
    """Grid rounding of normalised ``means`` for quantisation-aware training: the forward value equals
    ``quantize_grid(means, size, subdiv)[1]`` bit for bit (in ``means``' dtype), the gradient is the identity."""
    _check_means(means)
    m = means.detach()
    dev = _f64_device(m.device)
    steps = _steps(size, subdiv, dev)
    hard = _grid_values(_grid_symbols(m.to(dev), steps), steps).to(device=means.device, dtype=means.dtype)
    return exact_ste(hard, means)
