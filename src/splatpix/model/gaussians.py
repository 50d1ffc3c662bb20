"""The Gaussian image model: N 2-D Gaussians with a mean, a covariance and a colour.

Geometry is resolution independent. Means are stored in *normalised image coordinates*:
``(u, v)`` with ``u = x / W`` and ``v = y / H`` where ``(x, y)`` are pixel coordinates whose pixel
centres lie at ``j + 0.5`` / ``i + 0.5``; the image covers ``[0, 1] x [0, 1]``. Covariance
parameters are stored in the pixel units of the model's *native size* ``(H0, W0)`` (as GaussianImage
does, so that its training schedule applies unchanged); :meth:`Gaussians.covariance_normalised`
converts them to normalised units, and :func:`project` maps the whole model onto any output grid
(another size, another aspect ratio, or a crop window), scaling the covariances accordingly.

Two covariance parameterisations, as in GaussianImage:

* ``"cholesky"``: ``(l11, l21, l22)``, ``Sigma = L L^T`` with ``L = [[l11, 0], [l21, l22]]``.
* ``"rs"``: ``(s1, s2, theta)``, ``Sigma = R(theta) diag(s1^2, s2^2) R(theta)^T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .arrays import PARAMETERISATIONS, GaussianArrays, check_fields

__all__ = ["PARAMETERISATIONS", "Gaussians", "conic_from_covariance", "covariance_from_params",
           "params_from_covariance", "project"]


@dataclass
class Gaussians:
    """A set of N Gaussians.

    Attributes:
        means: ``(N, 2)`` normalised ``(u, v)`` positions; the image spans ``[0, 1]^2``.
        cov_params: ``(N, 3)`` covariance parameters in native-pixel units (see module docs).
        colours: ``(N, C)`` colours (C = 1, 3 or 4), summed with Gaussian weights at render time.
        param: ``"cholesky"`` or ``"rs"``.
        size: native ``(height, width)`` in pixels: the default render size and the unit of ``cov_params``.
    """

    means: Tensor
    cov_params: Tensor
    colours: Tensor
    param: str = "cholesky"
    size: tuple[int, int] = (512, 512)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.size = check_fields(tuple(self.means.shape), tuple(self.cov_params.shape), tuple(self.colours.shape),
                                 self.param, self.size)

    @property
    def n(self) -> int:
        return int(self.means.shape[0])

    @property
    def channels(self) -> int:
        return int(self.colours.shape[1])

    def covariance_native(self) -> Tensor:
        """``(N, 3)`` covariance ``(sxx, sxy, syy)`` in native pixel units (differentiable)."""
        return covariance_from_params(self.cov_params, self.param)

    def covariance_normalised(self) -> Tensor:
        """``(N, 3)`` covariance ``(sxx, sxy, syy)`` in normalised image units (differentiable)."""
        h0, w0 = self.size
        s = self.covariance_native()
        return torch.stack((s[:, 0] / (w0 * w0), s[:, 1] / (w0 * h0), s[:, 2] / (h0 * h0)), dim=1)

    @classmethod
    def from_arrays(cls, a: GaussianArrays) -> Gaussians:
        """The torch model of a numpy :class:`~splatpix.model.arrays.GaussianArrays` (CPU float32 tensors sharing
        its memory)."""
        return cls(torch.from_numpy(a.means), torch.from_numpy(a.cov_params), torch.from_numpy(a.colours), a.param,
                   a.size, dict(a.meta))

    def detach(self) -> Gaussians:
        return Gaussians(
            self.means.detach(), self.cov_params.detach(), self.colours.detach(), self.param, self.size,
            dict(self.meta),
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Gaussians:
        return Gaussians(
            self.means.to(device=device, dtype=dtype),
            self.cov_params.to(device=device, dtype=dtype),
            self.colours.to(device=device, dtype=dtype),
            self.param,
            self.size,
            dict(self.meta),
        )

    @classmethod
    def from_covariance(
        cls,
        means: Tensor,
        cov_normalised: Tensor,
        colours: Tensor,
        size: tuple[int, int],
        param: str = "cholesky",
    ) -> Gaussians:
        """Build a model from normalised means and normalised covariances ``(sxx, sxy, syy)``."""
        h0, w0 = size
        c = cov_normalised
        native = torch.stack((c[:, 0] * w0 * w0, c[:, 1] * w0 * h0, c[:, 2] * h0 * h0), dim=1)
        return cls(means, params_from_covariance(native, param), colours, param, (int(h0), int(w0)))


def covariance_from_params(p: Tensor, param: str) -> Tensor:
    """Covariance ``(sxx, sxy, syy)`` from Cholesky ``(l11, l21, l22)`` or RS ``(s1, s2, theta)``."""
    if param == "cholesky":
        l11, l21, l22 = p[:, 0], p[:, 1], p[:, 2]
        return torch.stack((l11 * l11, l11 * l21, l21 * l21 + l22 * l22), dim=1)
    if param == "rs":
        s1, s2, th = p[:, 0], p[:, 1], p[:, 2]
        c, s = torch.cos(th), torch.sin(th)
        v1, v2 = s1 * s1, s2 * s2
        return torch.stack((c * c * v1 + s * s * v2, c * s * (v1 - v2), s * s * v1 + c * c * v2), dim=1)
    raise ValueError(f"unknown covariance parameterisation {param!r}")


def params_from_covariance(cov: Tensor, param: str) -> Tensor:
    """Inverse of :func:`covariance_from_params` (Cholesky factor, or eigen-decomposition for RS)."""
    sxx, sxy, syy = cov[:, 0], cov[:, 1], cov[:, 2]
    if param == "cholesky":
        l11 = torch.sqrt(sxx.clamp_min(0))
        l21 = torch.where(l11 > 0, sxy / l11.clamp_min(1e-30), torch.zeros_like(sxy))
        l22 = torch.sqrt((syy - l21 * l21).clamp_min(0))
        return torch.stack((l11, l21, l22), dim=1)
    if param == "rs":
        th = 0.5 * torch.atan2(2 * sxy, sxx - syy)
        tr = 0.5 * (sxx + syy)
        disc = torch.sqrt((0.5 * (sxx - syy)) ** 2 + sxy * sxy)
        s1 = torch.sqrt((tr + disc).clamp_min(0))
        s2 = torch.sqrt((tr - disc).clamp_min(0))
        return torch.stack((s1, s2, th), dim=1)
    raise ValueError(f"unknown covariance parameterisation {param!r}")


def project(
    g: Gaussians,
    height: int,
    width: int,
    window: tuple[float, float, float, float] | None = None,
) -> tuple[Tensor, Tensor]:
    """Map the model onto an output grid of ``height x width`` pixels.

    ``window = (u0, v0, u1, v1)`` selects the normalised region shown (default: the whole image,
    ``(0, 0, 1, 1)``); a crop is a window inside it. Returns pixel-space means ``(N, 2)`` and pixel-space
    covariances ``(N, 3)``, differentiable with respect to the model's tensors.
    """
    u0, v0, u1, v1 = (0.0, 0.0, 1.0, 1.0) if window is None else tuple(float(t) for t in window)
    if not (u1 > u0 and v1 > v0) or not all(math.isfinite(t) for t in (u0, v0, u1, v1)):
        raise ValueError(f"invalid window {window}: need u1 > u0 and v1 > v0")
    sx = width / (u1 - u0)
    sy = height / (v1 - v0)
    means_px = torch.stack(((g.means[:, 0] - u0) * sx, (g.means[:, 1] - v0) * sy), dim=1)
    cn = g.covariance_normalised()
    cov_px = torch.stack((cn[:, 0] * (sx * sx), cn[:, 1] * (sx * sy), cn[:, 2] * (sy * sy)), dim=1)
    return means_px, cov_px


def conic_from_covariance(cov: Tensor, min_det: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Inverse covariance ``(a, b, c)`` (so that ``power = 0.5 (a dx^2 + 2 b dx dy + c dy^2)``) and a
    validity mask. Degenerate covariances (determinant <= ``min_det`` relative to the trace squared, or
    non-finite) are marked invalid and get a zero conic; renderers skip them."""
    sxx, sxy, syy = cov[:, 0], cov[:, 1], cov[:, 2]
    det = sxx * syy - sxy * sxy
    tr = sxx + syy
    valid = torch.isfinite(det) & (det > min_det * tr * tr) & (det > 0) & (sxx > 0) & (syy > 0)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    inv = 1.0 / safe_det
    conic = torch.stack((syy * inv, -sxy * inv, sxx * inv), dim=1)
    conic = torch.where(valid[:, None], conic, torch.zeros_like(conic))
    return conic, valid
