"""Rendering a torch :class:`~splatpix.model.gaussians.Gaussians` model to an image (differentiable).

``render(g, height, width)`` projects the model onto the output grid (:func:`splatpix.model.gaussians.project`),
inverts the covariances and calls a rasteriser backend:

* ``"reference"`` (:mod:`.reference`): pure PyTorch, any device, the test oracle;
* ``"numba"`` (:mod:`.cpu`): numba CPU kernels with a hand-written backward;
* ``"auto"``: numba for float32 CPU tensors, the reference otherwise.

:mod:`.arrays` renders numpy :class:`~splatpix.model.arrays.GaussianArrays` with the same numba kernel and no torch
(the decode path).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..model.gaussians import Gaussians, conic_from_covariance, project
from . import BACKENDS, output_size
from .reference import rasterize_reference

__all__ = ["BACKENDS", "rasterize", "render"]




class _NumbaRasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means_px: Tensor, conic: Tensor, colours: Tensor, height: int, width: int) -> Tensor:
        from . import cpu

        m = np.ascontiguousarray(means_px.detach().cpu().numpy(), dtype=np.float32)
        q = np.ascontiguousarray(conic.detach().cpu().numpy(), dtype=np.float32)
        c = np.ascontiguousarray(colours.detach().cpu().numpy(), dtype=np.float32)
        out, prep = cpu.forward(m, q, c, height, width)
        ctx.arrays = (m, q, c, prep)
        ctx.size = (height, width)
        ctx.dtypes = (means_px.dtype, conic.dtype, colours.dtype)
        return torch.from_numpy(out).to(colours.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        from . import cpu

        m, q, c, prep = ctx.arrays
        g = np.ascontiguousarray(grad_out.detach().cpu().numpy(), dtype=np.float32)
        gm, gq, gc = cpu.backward(m, q, c, g, prep, *ctx.size)
        dm, dq, dc = ctx.dtypes
        return (
            torch.from_numpy(gm).to(dm) if ctx.needs_input_grad[0] else None,
            torch.from_numpy(gq).to(dq) if ctx.needs_input_grad[1] else None,
            torch.from_numpy(gc).to(dc) if ctx.needs_input_grad[2] else None,
            None,
            None,
        )


def rasterize(
    means_px: Tensor,
    conic: Tensor,
    colours: Tensor,
    height: int,
    width: int,
    backend: str = "auto",
) -> Tensor:
    """Accumulated-sum rasterisation in pixel space -> ``(C, height, width)``.

    ``means_px``: ``(N, 2)`` pixel coordinates (pixel centres at ``j + 0.5``); ``conic``: ``(N, 3)`` inverse
    covariance ``(a, b, c)``; ``colours``: ``(N, C)``. Differentiable w.r.t. all three.
    """
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"output size must be positive, got {height}x{width}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    if backend == "auto":
        on_cpu = means_px.device.type == "cpu" and colours.device.type == "cpu"
        backend = "numba" if on_cpu and colours.dtype == torch.float32 else "reference"
    if backend == "numba":
        if means_px.device.type != "cpu":
            raise ValueError("the numba backend needs CPU tensors")
        return _NumbaRasterize.apply(means_px, conic, colours, height, width)
    return rasterize_reference(means_px, conic, colours, height, width)


def render(
    g: Gaussians,
    height: int | None = None,
    width: int | None = None,
    *,
    scale: float | None = None,
    window: tuple[float, float, float, float] | None = None,
    clamp: bool = False,
    backend: str = "auto",
) -> Tensor:
    """Render the model to ``(C, height, width)``.

    Size: ``height``/``width`` (default: the model's native size), or ``scale`` times the native size.
    ``window = (u0, v0, u1, v1)`` renders only that normalised region (a crop) onto the output grid.
    ``clamp`` clips the output to ``[0, 1]``. Differentiable w.r.t. the model's tensors.
    """
    height, width = output_size(g.size, height, width, scale)
    means_px, cov_px = project(g, height, width, window)
    conic, _ = conic_from_covariance(cov_px)
    out = rasterize(means_px, conic, g.colours, height, width, backend=backend)
    if not clamp:
        return out
    if not out.requires_grad and out.device.type == "cpu" and out.dtype == torch.float32 and out.is_contiguous():
        from . import cpu

        cpu.clamp01_(out.numpy())  # on numba's threads: see cpu.clamp01_ (a fresh tensor, so in place is safe)
        return out
    return out.clamp(0.0, 1.0)
