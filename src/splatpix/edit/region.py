"""Regions: which part of an image an edit applies to, with an optional soft border.

Coordinates
-----------
Regions are defined in *normalised* image coordinates ``(u, v)`` in ``[0, 1]`` (``u = x / W``, ``v = y / H``, y
down), so a region spec means the same thing at any resolution. They are evaluated on native-pixel points
(:mod:`splatpix.edit.deform`'s frame): :meth:`Region.weights` takes ``(P, 2)`` pixel points and the native
``size = (H, W)`` and scales the region to pixels first.

Weights
-------
Each spatial region has a signed distance ``sd(x)`` in pixels, positive inside: exact for polygons (distance to
the nearest edge, sign from the even-odd rule), the distance to the nearest side for boxes (only its sign matters
outside), and for masks the Euclidean distance transform of the thresholded mask (``sd = d_in - 1/2`` on
selected pixels, ``-(d_out - 1/2)`` elsewhere, the border lying between pixel centres), bilinearly interpolated.
The weight of a point is

    w(x) = 1[sd(x) >= 0]                     (feather = 0: a hard selection)
    w(x) = S(clamp(sd(x) / feather, 0, 1))   (feather > 0 pixels), S(t) = 3 t^2 - 2 t^3 (smoothstep),

so ``w`` is 0 outside the region, rises smoothly (``C^1``) over a band ``feather`` pixels wide *inside* its
border, and is 1 deeper inside: an edit never touches what lies outside the region. ``w`` is differentiable in
the point (for the Jacobian of a blended edit).

A :class:`PredicateRegion` selects Gaussians instead of places: a callable on the Gaussians' pixel means
``(N, 2)``, pixel covariances ``(N, 3)`` ``(sxx, sxy, syy)`` and colours ``(N, C)`` (``None`` for GaINeR fields,
whose Gaussians carry features, not colours) returning a boolean (or ``[0, 1]``) mask ``(N,)``. Its weights are
per Gaussian and constant (no gradient), and it has no :meth:`~Region.weights` at arbitrary points.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import SplatpixError

__all__ = [
    "AllRegion",
    "BoxRegion",
    "EllipseRegion",
    "MaskRegion",
    "PolygonRegion",
    "PredicateRegion",
    "Region",
    "ellipse_region",
    "parse_region",
    "smoothstep",
]

Size = tuple[int, int]
_CHUNK = 1 << 14


def smoothstep(t: Tensor) -> Tensor:
    """``3 t^2 - 2 t^3`` of ``t`` clamped to ``[0, 1]``."""
    t = t.clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _check_feather(feather: float) -> float:
    try:
        f = float(feather)
    except (TypeError, ValueError):
        raise SplatpixError(f"feather must be a number of pixels, got {feather!r}") from None
    if isinstance(feather, bool) or not (math.isfinite(f) and f >= 0):
        raise SplatpixError(f"feather must be a finite number of pixels >= 0, got {feather!r}")
    return f


def _px_scale(size: Size, like: Tensor) -> Tensor:
    h, w = size
    return like.new_tensor((float(w), float(h)))


class Region(ABC):
    """Base class: a selection with a signed distance (pixels, positive inside) and a feather (pixels)."""

    def __init__(self, feather: float = 0.0) -> None:
        self.feather = _check_feather(feather)

    @abstractmethod
    def signed_distance(self, points: Tensor, size: Size) -> Tensor:
        """``(P,)`` signed distance in pixels of ``(P, 2)`` native-pixel points to the border (positive inside)."""

    def weights(self, points: Tensor, size: Size) -> Tensor:
        """``(P,)`` weights in ``[0, 1]`` of ``(P, 2)`` native-pixel points (module docstring); differentiable."""
        if points.dim() != 2 or points.shape[1] != 2:
            raise SplatpixError(f"points must be a (P, 2) tensor, got {tuple(points.shape)}")
        sd = self.signed_distance(points, size)
        if self.feather <= 0:
            return (sd >= 0).to(points.dtype)
        return smoothstep(sd / self.feather)

    def gaussian_weights(self, means: Tensor, cov: Tensor, colours: Tensor | None, size: Size) -> Tensor:
        """``(N,)`` weights of Gaussians with pixel means ``(N, 2)``: the weights at their means (constant for a
        :class:`PredicateRegion`)."""
        return self.weights(means, size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(feather={self.feather})"


class AllRegion(Region):
    """Everything: weight 1 everywhere."""

    def signed_distance(self, points: Tensor, size: Size) -> Tensor:
        return torch.full((points.shape[0],), math.inf, dtype=points.dtype, device=points.device)

    def weights(self, points: Tensor, size: Size) -> Tensor:
        return torch.ones(points.shape[0], dtype=points.dtype, device=points.device)


class BoxRegion(Region):
    """The axis-aligned box ``[u0, u1] x [v0, v1]`` (normalised)."""

    def __init__(self, u0: float, v0: float, u1: float, v1: float, feather: float = 0.0) -> None:
        super().__init__(feather)
        vals = tuple(float(t) for t in (u0, v0, u1, v1))
        if not all(math.isfinite(t) for t in vals) or not (vals[2] > vals[0] and vals[3] > vals[1]):
            raise SplatpixError(f"a box needs finite u0 < u1 and v0 < v1, got {vals}")
        self.box = vals

    def signed_distance(self, points: Tensor, size: Size) -> Tensor:
        u0, v0, u1, v1 = self.box
        h, w = size
        x, y = points[:, 0], points[:, 1]
        return torch.minimum(torch.minimum(x - u0 * w, u1 * w - x), torch.minimum(y - v0 * h, v1 * h - y))

    def __repr__(self) -> str:
        return f"BoxRegion({self.box}, feather={self.feather})"


class PolygonRegion(Region):
    """A simple (or self-intersecting, even-odd rule) polygon with normalised vertices ``[(u, v), ...]``."""

    def __init__(self, vertices: Sequence[Sequence[float]], feather: float = 0.0) -> None:
        super().__init__(feather)
        try:
            v = torch.tensor([[float(a), float(b)] for a, b in vertices], dtype=torch.float64)
        except (TypeError, ValueError):
            raise SplatpixError("polygon vertices must be pairs of numbers (u, v)") from None
        if v.shape[0] < 3:
            raise SplatpixError(f"a polygon needs at least 3 vertices, got {v.shape[0]}")
        if not bool(torch.isfinite(v).all()):
            raise SplatpixError("polygon vertices must be finite")
        self.vertices = v

    def signed_distance(self, points: Tensor, size: Size) -> Tensor:
        v = self.vertices.to(points) * _px_scale(size, points)
        ax, ay = v[:, 0], v[:, 1]
        bx, by = torch.roll(ax, -1), torch.roll(ay, -1)
        ex, ey = bx - ax, by - ay
        inv_len2 = 1.0 / (ex * ex + ey * ey).clamp_min(1e-300)
        straddle_dy = torch.where(ay == by, torch.ones_like(ey), ey)
        out = []
        for s in range(0, points.shape[0], _CHUNK):
            p = points[s:s + _CHUNK]
            with torch.no_grad():  # the nearest edge and the even-odd count, on all (point, edge) pairs
                px, py = p[:, 0:1], p[:, 1:2]
                qx, qy = px - ax, py - ay  # (P, E)
                t = ((qx * ex + qy * ey) * inv_len2).clamp(0.0, 1.0)
                dx, dy = qx - t * ex, qy - t * ey
                nearest = (dx * dx + dy * dy).argmin(1)
                straddle = (ay > py) != (by > py)
                x_cross = ax + (py - ay) * ex / straddle_dy
                inside = ((straddle & (px < x_cross)).sum(1) % 2) == 1
            # the distance to the nearest edge, differentiably (the gradient of the min is that of its argmin)
            qx, qy = p[:, 0] - ax[nearest], p[:, 1] - ay[nearest]
            sx, sy = ex[nearest], ey[nearest]
            t = ((qx * sx + qy * sy) * inv_len2[nearest]).clamp(0.0, 1.0)
            dx, dy = qx - t * sx, qy - t * sy
            dist = torch.sqrt((dx * dx + dy * dy).clamp_min(1e-300))
            out.append(torch.where(inside, dist, -dist))
        if not out:
            return points.new_zeros(0)
        return torch.cat(out)

    def __repr__(self) -> str:
        return f"PolygonRegion({self.vertices.shape[0]} vertices, feather={self.feather})"


class EllipseRegion(Region):
    """The ellipse of centre ``(u, v)`` and semi-axes ``ru`` (along u), ``rv`` (along v), normalised. Signed distance
    (pixels) by the first-order estimate ``(1 - rho) rho / |g|`` with ``rho^2 = (dx / a)^2 + (dy / b)^2`` and
    ``g = (dx / a^2, dy / b^2)`` (``a, b`` the semi-axes in pixels): exact for circles, exact to first order at the
    border of any ellipse, so the feather band is right when it is thin compared with the semi-axes."""

    def __init__(self, u: float, v: float, ru: float, rv: float, feather: float = 0.0) -> None:
        super().__init__(feather)
        vals = tuple(float(t) for t in (u, v, ru, rv))
        if not all(math.isfinite(t) for t in vals):
            raise SplatpixError(f"an ellipse needs finite u, v, ru, rv, got {vals}")
        if not (vals[2] > 0 and vals[3] > 0):
            raise SplatpixError(f"ellipse radii must be > 0, got {vals[2]}, {vals[3]}")
        self.ellipse = vals

    def signed_distance(self, points: Tensor, size: Size) -> Tensor:
        h, w = size
        u, v, ru, rv = self.ellipse
        a, b = ru * w, rv * h
        dx, dy = points[:, 0] - u * w, points[:, 1] - v * h
        q = (dx / a) ** 2 + (dy / b) ** 2
        g2 = (dx / (a * a)) ** 2 + (dy / (b * b)) ** 2
        centre = g2 <= 1e-24 / (min(a, b) ** 2)
        one = torch.ones_like(q)
        rho = torch.sqrt(torch.where(centre, one, q))
        sd = (1 - rho) * rho / torch.sqrt(torch.where(centre, one, g2))
        return torch.where(centre, torch.full_like(q, min(a, b)), sd)

    def __repr__(self) -> str:
        return f"EllipseRegion({self.ellipse}, feather={self.feather})"


def ellipse_region(u: float, v: float, ru: float, rv: float, feather: float = 0.0) -> EllipseRegion:
    """:class:`EllipseRegion` of centre ``(u, v)`` and semi-axes ``ru``, ``rv`` (normalised)."""
    return EllipseRegion(u, v, ru, rv, feather)


class MaskRegion(Region):
    """A mask image (white = selected): ``(h, w)`` or ``(C, h, w)`` values in ``[0, 1]`` (colour channels
    averaged, alpha ignored), resampled (bilinear, antialiased) to the model's native size and thresholded at
    0.5; signed distance from its Euclidean distance transform (module docstring), cached per size."""

    def __init__(self, mask: Tensor, feather: float = 0.0, name: str = "mask") -> None:
        super().__init__(feather)
        m = torch.as_tensor(mask, dtype=torch.float32)
        if m.dim() == 3:
            m = m[: min(3, m.shape[0])].mean(0) if m.shape[0] != 2 else m[0]
        if m.dim() != 2 or min(m.shape) < 1:
            raise SplatpixError(f"{name}: a mask must be an (h, w) or (C, h, w) image")
        self.mask = m
        self.name = name
        self._sdf: dict[Size, Tensor] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], feather: float = 0.0) -> MaskRegion:
        from ..io import load_image

        return cls(load_image(path), feather, name=os.fspath(path))

    def sdf(self, size: Size) -> Tensor:
        """``(H, W)`` float64 signed distance (pixels) at the pixel centres of the native grid."""
        size = (int(size[0]), int(size[1]))
        if size not in self._sdf:
            from scipy.ndimage import distance_transform_edt

            m = self.mask
            if tuple(m.shape) != size:
                m = F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False,
                                  antialias=True)[0, 0]
            inside = (m >= 0.5).numpy()
            if inside.all():
                sd = np.full(size, 1e9)
            elif not inside.any():
                sd = np.full(size, -1e9)
            else:
                sd = np.where(inside, distance_transform_edt(inside) - 0.5, -(distance_transform_edt(~inside) - 0.5))
            self._sdf[size] = torch.from_numpy(np.ascontiguousarray(sd, dtype=np.float64))
        return self._sdf[size]

    def signed_distance(self, points: Tensor, size: Size) -> Tensor:
        h, w = size
        sdf = self.sdf(size).to(points)
        g = torch.stack((2 * points[:, 0] / w - 1, 2 * points[:, 1] / h - 1), 1)
        out = F.grid_sample(sdf[None, None], g[None, None], mode="bilinear", padding_mode="border",
                            align_corners=False)
        return out[0, 0, 0]

    def __repr__(self) -> str:
        return f"MaskRegion({self.name!r}, feather={self.feather})"


class PredicateRegion(Region):
    """Gaussians chosen by ``predicate(means_px, cov_px, colours) -> (N,)`` bool or [0, 1] mask (module
    docstring). Selects by Gaussian identity, so its weights do not change as the Gaussians move."""

    def __init__(self, predicate: Callable[[Tensor, Tensor, Tensor | None], Tensor], name: str = "predicate"):
        super().__init__(0.0)
        if not callable(predicate):
            raise SplatpixError(f"a predicate region needs a callable, got {type(predicate).__name__}")
        self.predicate = predicate
        self.name = name

    def signed_distance(self, points: Tensor, size: Size) -> Tensor:
        raise SplatpixError(f"{self.name}: a predicate region selects Gaussians, not points; it has no weights at "
                            "arbitrary points")

    def weights(self, points: Tensor, size: Size) -> Tensor:
        return self.signed_distance(points, size)

    def gaussian_weights(self, means: Tensor, cov: Tensor, colours: Tensor | None, size: Size) -> Tensor:
        with torch.no_grad():
            out = self.predicate(means, cov, colours)
        out = torch.as_tensor(out)
        if out.shape != (means.shape[0],):
            raise SplatpixError(f"{self.name}: the predicate must return one value per Gaussian, shape "
                                f"({means.shape[0]},), got {tuple(out.shape)}")
        out = out.to(device=means.device, dtype=means.dtype)
        if not bool(((out >= 0) & (out <= 1)).all()):
            raise SplatpixError(f"{self.name}: the predicate's values must be booleans or weights in [0, 1]")
        return out

    def __repr__(self) -> str:
        return f"PredicateRegion({self.name!r})"


# ------------------------------------------------------------------------------------------------ parsing

REGION_SYNTAX = ("all | box:u0,v0,u1,v1 | polygon:u,v;u,v;u,v[;...] | ellipse:u,v,ru,rv | mask:PATH.png "
                 "(normalised coordinates in [0, 1])")


def _numbers(text: str, spec: str) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",")]
    except ValueError:
        raise SplatpixError(f"region {spec!r}: expected numbers separated by commas; syntax: {REGION_SYNTAX}") from None
    if not all(math.isfinite(t) for t in vals):
        raise SplatpixError(f"region {spec!r}: coordinates must be finite")
    return vals


def parse_region(spec: str, feather: float = 0.0, base_dir: str | os.PathLike[str] | None = None) -> Region:
    """A region from its text form (normalised coordinates), with ``feather`` pixels of soft border:

    ``all`` (or ``everything``), ``box:u0,v0,u1,v1``, ``polygon:u,v;u,v;u,v`` (3 or more vertices),
    ``ellipse:u,v,ru,rv`` (centre and semi-axes), ``mask:PATH`` (an image, white = selected; a relative path is
    taken from ``base_dir`` when given). Bad specs raise :class:`SplatpixError`."""
    if not isinstance(spec, str):
        raise SplatpixError(f"a region must be a string like 'box:0.2,0.2,0.6,0.6', got {type(spec).__name__}")
    text = spec.strip()
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep:
        if kind in ("all", "everything"):
            return AllRegion(feather)
        raise SplatpixError(f"unknown region {spec!r}; syntax: {REGION_SYNTAX}")
    rest = rest.strip()
    if kind == "box":
        vals = _numbers(rest, spec)
        if len(vals) != 4:
            raise SplatpixError(f"region {spec!r}: a box needs 4 numbers u0,v0,u1,v1, got {len(vals)}")
        try:
            return BoxRegion(*vals, feather=feather)
        except SplatpixError as e:
            raise SplatpixError(f"region {spec!r}: {e}") from None
    if kind == "polygon":
        pts = []
        for part in (p for p in rest.split(";") if p.strip()):
            vals = _numbers(part, spec)
            if len(vals) != 2:
                raise SplatpixError(f"region {spec!r}: each polygon vertex needs 2 numbers u,v, got {part!r}")
            pts.append(vals)
        if len(pts) < 3:
            raise SplatpixError(f"region {spec!r}: a polygon needs at least 3 vertices u,v;u,v;u,v")
        return PolygonRegion(pts, feather)
    if kind == "ellipse":
        vals = _numbers(rest, spec)
        if len(vals) != 4 or not (vals[2] > 0 and vals[3] > 0):
            raise SplatpixError(f"region {spec!r}: an ellipse needs u,v,ru,rv with radii > 0")
        return ellipse_region(*vals, feather=feather)
    if kind == "mask":
        if not rest:
            raise SplatpixError(f"region {spec!r}: a mask needs an image path, mask:PATH.png")
        path = rest if base_dir is None or os.path.isabs(rest) else os.path.join(os.fspath(base_dir), rest)
        return MaskRegion.from_file(path, feather)
    raise SplatpixError(f"unknown region kind {kind!r} in {spec!r}; syntax: {REGION_SYNTAX}")
