"""The Gaussian image model as numpy arrays: what a decoder produces, with no torch.

:class:`GaussianArrays` holds the same fields as :class:`~splatpix.model.gaussians.Gaussians` (normalised means,
covariance parameters in native-pixel units, colours, the parameterisation and the native size) as float32 numpy
arrays. ``splatpix decode``, ``info`` and ``render`` of a GaussianImage-kind model work on it end to end, so that
they import no torch (docs/architecture.md, "The decode path"); ``Gaussians.from_arrays`` gives the torch model for
training and editing. :func:`project` and :func:`conic_from_covariance` are the float32 numpy forms of
the torch functions of the same names in :mod:`.gaussians` (same operations in the same order; the tests compare
the two bit for bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PARAMETERISATIONS", "GaussianArrays", "as_arrays", "check_fields", "conic_from_covariance",
           "covariance_from_params", "project"]

_F = np.float32
PARAMETERISATIONS = ("cholesky", "rs")


def check_fields(means: tuple[int, ...], cov_params: tuple[int, ...], colours: tuple[int, ...], param: str,
                 size: tuple[int, int]) -> tuple[int, int]:
    """Check the shapes, parameterisation and native size of a model (both model classes); return the size as
    ints. Raises ValueError."""
    if param not in PARAMETERISATIONS:
        raise ValueError(f"unknown covariance parameterisation {param!r}; use one of {PARAMETERISATIONS}")
    n = means[0] if len(means) else 0
    if tuple(means) != (n, 2):
        raise ValueError(f"means must have shape (N, 2), got {tuple(means)}")
    if tuple(cov_params) != (n, 3):
        raise ValueError(f"cov_params must have shape (N, 3), got {tuple(cov_params)}")
    if len(colours) != 2 or colours[0] != n:
        raise ValueError(f"colours must have shape (N, C), got {tuple(colours)}")
    h, w = size
    if int(h) <= 0 or int(w) <= 0:
        raise ValueError(f"native size must be positive, got {size}")
    return int(h), int(w)


@dataclass
class GaussianArrays:
    """N Gaussians as float32 arrays (the fields of :class:`~splatpix.model.gaussians.Gaussians`)."""

    means: np.ndarray
    cov_params: np.ndarray
    colours: np.ndarray
    param: str = "cholesky"
    size: tuple[int, int] = (512, 512)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.means = np.ascontiguousarray(self.means, dtype=_F)
        self.cov_params = np.ascontiguousarray(self.cov_params, dtype=_F)
        self.colours = np.ascontiguousarray(self.colours, dtype=_F)
        self.size = check_fields(self.means.shape, self.cov_params.shape, self.colours.shape, self.param, self.size)

    @property
    def n(self) -> int:
        return int(self.means.shape[0])

    @property
    def channels(self) -> int:
        return int(self.colours.shape[1])

    def covariance_normalised(self) -> np.ndarray:
        """``(N, 3)`` covariance ``(sxx, sxy, syy)`` in normalised image units."""
        h0, w0 = self.size
        s = covariance_from_params(self.cov_params, self.param)
        return np.stack((s[:, 0] / (w0 * w0), s[:, 1] / (w0 * h0), s[:, 2] / (h0 * h0)), axis=1)


def as_arrays(g: Any) -> GaussianArrays:
    """``g`` as :class:`GaussianArrays`: itself, or the detached CPU float32 values of a torch ``Gaussians``."""
    if isinstance(g, GaussianArrays):
        return g

    def arr(t: Any) -> np.ndarray:
        return t.detach().to("cpu").float().numpy()

    return GaussianArrays(arr(g.means), arr(g.cov_params), arr(g.colours), g.param, g.size, dict(g.meta))


def covariance_from_params(p: np.ndarray, param: str) -> np.ndarray:
    """Covariance ``(sxx, sxy, syy)`` from Cholesky ``(l11, l21, l22)`` or RS ``(s1, s2, theta)`` (float32)."""
    if param == "cholesky":
        l11, l21, l22 = p[:, 0], p[:, 1], p[:, 2]
        return np.stack((l11 * l11, l11 * l21, l21 * l21 + l22 * l22), axis=1)
    if param == "rs":
        s1, s2, th = p[:, 0], p[:, 1], p[:, 2]
        c, s = np.cos(th), np.sin(th)
        v1, v2 = s1 * s1, s2 * s2
        return np.stack((c * c * v1 + s * s * v2, c * s * (v1 - v2), s * s * v1 + c * c * v2), axis=1)
    raise ValueError(f"unknown covariance parameterisation {param!r}")


def project(g: GaussianArrays, height: int, width: int,
            window: tuple[float, float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-space means ``(N, 2)`` and covariances ``(N, 3)`` of ``g`` on a ``height x width`` grid showing
    ``window = (u0, v0, u1, v1)`` (default the whole image); :func:`splatpix.model.gaussians.project` in numpy."""
    u0, v0, u1, v1 = (0.0, 0.0, 1.0, 1.0) if window is None else tuple(float(t) for t in window)
    if not (u1 > u0 and v1 > v0) or not all(math.isfinite(t) for t in (u0, v0, u1, v1)):
        raise ValueError(f"invalid window {window}: need u1 > u0 and v1 > v0")
    sx = width / (u1 - u0)
    sy = height / (v1 - v0)
    # float32 arithmetic with the Python floats as float32 scalars, as torch does with a float32 tensor
    means_px = np.stack(((g.means[:, 0] - _F(u0)) * _F(sx), (g.means[:, 1] - _F(v0)) * _F(sy)), axis=1)
    cn = g.covariance_normalised()
    cov_px = np.stack((cn[:, 0] * _F(sx * sx), cn[:, 1] * _F(sx * sy), cn[:, 2] * _F(sy * sy)), axis=1)
    return means_px, cov_px


def conic_from_covariance(cov: np.ndarray, min_det: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Inverse covariance ``(a, b, c)`` and a validity mask (degenerate covariances get a zero conic);
    :func:`splatpix.model.gaussians.conic_from_covariance` in numpy."""
    sxx, sxy, syy = cov[:, 0], cov[:, 1], cov[:, 2]
    with np.errstate(all="ignore"):
        det = sxx * syy - sxy * sxy
        tr = sxx + syy
        valid = np.isfinite(det) & (det > _F(min_det) * tr * tr) & (det > 0) & (sxx > 0) & (syy > 0)
        inv = _F(1.0) / np.where(valid, det, _F(1.0))
        conic = np.stack((syy * inv, -sxy * inv, sxx * inv), axis=1)
    conic = np.where(valid[:, None], conic, _F(0.0)).astype(_F)
    return conic, valid
