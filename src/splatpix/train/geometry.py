"""The geometry-consistent regulariser of structure-guided allocation: the render's Sobel edges against the target's.

``GeometryLoss(target)`` / ``geometry_loss(out, target)`` (see :class:`GeometryLoss`); ``fit`` adds ``geo_weight``
times it to the clamped MSE. :func:`geometry_loss_reference` writes it out pixel by pixel (the test oracle).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GeometryLoss", "geometry_loss", "geometry_loss_reference", "sobel"]

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
