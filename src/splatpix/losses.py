"""Training losses.

``clamped_mse(out, target)`` is GaussianImage's training loss: the mean squared error of the render clamped to
``[0, 1]``. Written naively in torch it costs four full-image passes forward and more backward (clamp, subtract,
square, mean, then their gradients), which dominates a CPU training step when N is small. The numba path does
the loss and its gradient in one parallel pass and keeps the gradient for backward; the torch expression is
the reference the tests compare against.

``GeometryLoss(target)`` / ``geometry_loss(out, target)`` is the geometry-consistent regulariser (see
:class:`GeometryLoss`); ``fit`` adds ``geo_weight`` times it to the clamped MSE.

``footprint(cov_params, param, H, W)`` is the rasteriser's work per pixel; ``fit`` and QAT add
``footprint_weight * mse.detach() * footprint(...)`` (:func:`footprint_penalty`) so that the Gaussians stay as
small as the image allows.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange
from torch import Tensor

__all__ = ["GeometryLoss", "clamped_mse", "clamped_mse_reference", "footprint", "footprint_penalty", "geometry_loss",
           "geometry_loss_reference", "sobel"]

FOOTPRINT_SIGMA = 3.0
"""The rasteriser's support: a Gaussian touches the pixels inside its 3-sigma ellipse (:mod:`splatpix.render`)."""
FOOTPRINT_FLOOR = 0.25
"""``sqrt(det Sigma)`` (px^2) below which :func:`footprint` stops shrinking a Gaussian (sigma 0.5 px, under a pixel):
the Cholesky factors of the fit may cross zero, and a penalty that pushed them all the way made the covariance
singular (a non-finite loss on kodim01 at N = 7000, weight 0.3)."""


def clamped_mse_reference(out: Tensor, target: Tensor, clamp: bool = True) -> Tensor:
    pred = out.clamp(0.0, 1.0) if clamp else out
    return torch.mean((pred - target) ** 2)


# no fast-math: a NaN or infinite render must give a NaN loss (the NaN guard relies on it)
@njit(cache=True, parallel=True)
def _clamped_mse(out, target, grad, clamp):
    n = out.shape[0]
    n_chunks = 64
    partial = np.zeros(n_chunks, dtype=np.float64)
    scale = np.float32(2.0 / n)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for k in prange(n_chunks):
        acc = np.float32(0.0)
        for i in range(k * n // n_chunks, (k + 1) * n // n_chunks):
            o = out[i]
            v = min(max(o, zero), one) if clamp else o
            d = v - target[i]
            acc += d * d + (o - o)  # o - o is NaN exactly when o is NaN or infinite
            # zero gradient where the clamp is active (v differs from o); NaN stays NaN
            grad[i] = scale * d if not (v != o) else zero
        partial[k] = acc
    return partial.sum() / n


class _ClampedMSE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out: Tensor, target: Tensor, clamp: bool) -> Tensor:
        o = out.detach().contiguous().view(-1).numpy()
        t = target.detach().contiguous().view(-1).numpy()
        grad = np.empty_like(o)
        loss = _clamped_mse(o, t, grad, clamp)
        ctx.grad = torch.from_numpy(grad).view(out.shape)
        return torch.tensor(loss, dtype=out.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        return ctx.grad * g, None, None


def clamped_mse(out: Tensor, target: Tensor, clamp: bool = True) -> Tensor:
    """``mean((clamp(out, 0, 1) - target)^2)``, differentiable w.r.t. ``out`` (zero gradient where clamped).

    The gradient w.r.t. ``target`` is not computed (it is data). Uses the fused numba kernel for float32 CPU
    tensors, the torch expression otherwise.
    """
    if out.shape != target.shape:
        raise ValueError(f"shape mismatch {tuple(out.shape)} vs {tuple(target.shape)}")
    fast = (out.device.type == "cpu" and out.dtype == torch.float32 and target.dtype == torch.float32
            and not target.requires_grad)
    if fast:
        return _ClampedMSE.apply(out, target, clamp)
    return clamped_mse_reference(out, target, clamp)


# ------------------------------------------------------------------------------------------ geometry loss

_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def sobel(img: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel Sobel derivatives ``(Sx, Sy)`` of ``(C, H, W)`` (or ``(B, C, H, W)``) images, same shape.

    ``Sx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` correlated with the image (x to the right), ``Sy`` its
    transpose (y downwards); unnormalised kernels; the border is replicated (``F.pad(mode="replicate")``), so
    a constant image has zero derivatives everywhere. Differentiable (a ``conv2d`` with one group per channel).
    """
    x = img if img.ndim == 4 else img.unsqueeze(0)
    c = x.shape[1]
    kx = torch.tensor(_SOBEL_X, dtype=x.dtype, device=x.device)
    k = torch.stack((kx, kx.t()))[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3): x then y for each channel
    d = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=c)
    sx, sy = d[:, 0::2], d[:, 1::2]
    return (sx, sy) if img.ndim == 4 else (sx[0], sy[0])


class GeometryLoss:
    """Geometry-consistent regulariser: target-gradient-weighted mismatch of the Sobel derivatives.

        L_geo(R) = mean_{c, y, x} ( |Sx(I)| (Sx(R) - Sx(I))^2 + |Sy(I)| (Sy(R) - Sy(I))^2 ),

    with ``I`` the target, ``R`` the render clamped to ``[0, 1]`` (when ``clamp``; zero gradient where clamped, as
    in :func:`clamped_mse`), ``Sx, Sy`` the per-channel Sobel derivatives of :func:`sobel` and the mean over all
    ``C H W`` entries. It asks the render to reproduce the target's edges, weighting each pixel by how strong the
    edge is there, so it acts where the plain MSE is dominated by flat areas; it is the "public formulation" of
    the structure-guided-allocation paper's geometry-consistency term (the paper itself does not publish its
    formula). The weights ``|Sx(I)|``, ``|Sy(I)|`` and the target derivatives are computed once here.
    """

    def __init__(self, target: Tensor):
        t = target.detach()
        self.sx, self.sy = sobel(t)
        self.wx, self.wy = self.sx.abs(), self.sy.abs()

    def __call__(self, out: Tensor, clamp: bool = True) -> Tensor:
        r = out.clamp(0.0, 1.0) if clamp else out
        rx, ry = sobel(r)
        dx, dy = rx - self.sx.to(rx.dtype), ry - self.sy.to(ry.dtype)
        return torch.mean(self.wx.to(rx.dtype) * dx * dx + self.wy.to(ry.dtype) * dy * dy)


def geometry_loss(out: Tensor, target: Tensor, clamp: bool = True) -> Tensor:
    """:class:`GeometryLoss` in one call (recomputes the target's derivatives; use the class in a loop)."""
    if out.shape != target.shape:
        raise ValueError(f"shape mismatch {tuple(out.shape)} vs {tuple(target.shape)}")
    return GeometryLoss(target)(out, clamp)


def geometry_loss_reference(out: Tensor, target: Tensor, clamp: bool = True) -> Tensor:
    """The same loss written out pixel by pixel with explicit index shifts (the test oracle; slow)."""
    r = out.clamp(0.0, 1.0) if clamp else out

    def derivs(img: Tensor) -> tuple[Tensor, Tensor]:
        c, h, w = img.shape
        ys = torch.arange(h)
        xs = torch.arange(w)

        def at(dy: int, dx: int) -> Tensor:  # img[y + dy, x + dx] with the border replicated
            yy = (ys + dy).clamp(0, h - 1)
            xx = (xs + dx).clamp(0, w - 1)
            return img[:, yy][:, :, xx]

        gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
        gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
        return gx, gy

    ix, iy = derivs(target)
    rx, ry = derivs(r)
    return torch.mean(ix.abs() * (rx - ix) ** 2 + iy.abs() * (ry - iy) ** 2)


def footprint(cov_params: Tensor, param: str, height: int, width: int) -> Tensor:
    """Differentiable estimate of the rasteriser's (pixel, Gaussian) pairs per pixel at the native size.

    A Gaussian's 3-sigma ellipse has area ``9 pi sqrt(det Sigma)`` pixels; summed over the Gaussians and divided by
    ``H W`` this is the number of pairs the kernels evaluate per pixel (:func:`splatpix.bench.count_pairs` counts
    them exactly; the estimate ignores clipping at the image border and pixel-centre rounding). With
    ``sqrt(det Sigma) = |l11 l22|`` (Cholesky) or ``|s1 s2|`` (rotation-scale) it is smooth in the parameters;
    each Gaussian counts at least :data:`FOOTPRINT_FLOOR` (no gradient below it).
    Decoding time is proportional to it at a given N (docs/benchmarks.md), so ``fit`` can penalise it.
    """
    if param == "cholesky":
        root_det = (cov_params[:, 0] * cov_params[:, 2]).abs()
    elif param == "rs":
        root_det = (cov_params[:, 0] * cov_params[:, 1]).abs()
    else:
        raise ValueError(f"unknown covariance parameterisation {param!r}")
    return root_det.clamp_min(FOOTPRINT_FLOOR).sum() * (FOOTPRINT_SIGMA ** 2 * np.pi / (int(height) * int(width)))


def footprint_penalty(mse: Tensor, cov_params: Tensor, param: str, height: int, width: int, weight: float) -> Tensor:
    """``weight * mse.detach() * footprint``: a footprint term relative to the current error, so that ``weight`` is
    scale-free -- at the optimum one more pair per pixel must lower the MSE by the fraction ``weight`` (0.01: one
    pair per pixel is worth 1 % of the MSE, 0.043 dB)."""
    return weight * mse.detach() * footprint(cov_params, param, height, width)
