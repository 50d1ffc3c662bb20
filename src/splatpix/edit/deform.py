"""Deformations of the image plane: differentiable point maps ``phi: (P, 2) -> (P, 2)`` in native pixels.

Frame
-----
Every deformation works in the *native pixel frame* of the model it edits: ``x = u W``, ``y = v H`` (``(u, v)`` the
normalised coordinates of :mod:`splatpix.model.gaussians`), x to the right, y **down**, origin at the top-left corner of
the image, pixel centres at ``j + 0.5``. Working in pixels (not in normalised units) keeps a rotation a true rotation
on a non-square image. Angles are in degrees and **counter-clockwise as seen on screen** (like ``PIL.Image.rotate``);
a direction of angle ``a`` is ``dir(a) = (cos a, -sin a)`` in pixel coordinates (y down).

Maps and their inverses
-----------------------
=================  ===================================================================  =======================
deformation        map ``x -> x'`` (``c`` centre, ``d = x - c``)                         inverse
=================  ===================================================================  =======================
``Translate``      ``x + t``                                                             exact
``Rotate``         ``c + M(a) d``, ``M(a) = [[cos a, sin a], [-sin a, cos a]]``           exact
``Scale``          ``c + diag(sx, sy) d``                                                exact (``sx, sy != 0``)
``Stretch``        ``c + (I + (f - 1) e e^T) d``, ``e = dir(axis)``                       exact (``f != 0``)
``Bend``           the axis line through ``c`` becomes a circular arc of curvature ``k``  exact (``k t < 1``)
``Twist``          ``c + M(a (1 - |d|^2 / R^2)^2_+) d`` (rotation decaying to 0 at R)     exact
``Wave``           ``x + A sin(2 pi s / L + p) n``, ``s = d . e``, ``n`` = ``e`` rotated    transverse: exact;
                   by 90 deg (transverse) or ``n = e`` (longitudinal)                    longitudinal: Newton,
                                                                                         needs ``2 pi A < L``
``DisplacementField`` / ``Lattice``  ``x + strength D(x)``, ``D`` Catmull-Rom interpolated   Newton
``Cut``            ``x + sign((x - p) . n) (gap/2 n + slide/2 e)``                        exact (``gap >= 0``)
``Blend``          ``x + w(x) (phi(x) - x)`` with region weights ``w`` in [0, 1]           Newton
``Compose``        ``phi_n o ... o phi_1``                                               inverses reversed
=================  ===================================================================  =======================

Bend, in the local frame ``s = d . e``, ``t = d . n`` (``e = dir(axis)``, ``n = dir(axis + 90)``), with
``theta = k s``: ``s' = sin(theta) / k - t sin(theta)``, ``t' = (1 - cos theta) / k + t cos theta``, i.e. the point at
arc length ``s`` along the axis keeps its distance ``t`` to it; evaluated with ``sinc`` so that ``k -> 0`` is the
identity without cancellation. Its inverse: ``theta = atan2(k s', 1 - k t')``, ``s = theta / k``,
``t = (2 t' - k (s'^2 + t'^2)) / (1 + sqrt((k s')^2 + (1 - k t')^2))`` (principal branch ``|theta| < pi``).

Jacobian
--------
:func:`jacobian` computes ``J(x) = d phi / d x`` ``(P, 2, 2)`` (``J[p, i, j] = d phi_i / d x_j``) by reverse-mode
autograd. Every deformation here is *pointwise* (output point ``p`` depends only on input point ``p``), so the
gradient of ``sum_p phi_i(x_p)`` w.r.t. ``x`` is row ``i`` of every point's Jacobian: two backward passes give all
``P`` Jacobians, for any torch operation (no ``vmap`` restrictions). A region blend's Jacobian
``I + w (J_phi - I) + (phi - x) grad(w)^T`` comes out of the same autograd pass.

Numerical inverses (:class:`NewtonInverse`) run Newton's method ``x <- x - J(x)^-1 (phi(x) - y)`` from ``x = y``
without gradients, then take one last differentiable Newton step with ``J`` detached, so that the inverse's
Jacobian is ``J(x*)^-1``. They raise :class:`SplatpixError` when they do not converge (the map folds there).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import SplatpixError

if TYPE_CHECKING:
    from .region import Region

__all__ = [
    "Bend",
    "Blend",
    "Compose",
    "Cut",
    "Deformation",
    "DisplacementField",
    "Lattice",
    "NewtonInverse",
    "Rotate",
    "Scale",
    "Stretch",
    "Translate",
    "Twist",
    "Wave",
    "direction",
    "jacobian",
    "map_and_jacobian",
]

Vec2 = tuple[float, float]


def _vec2(v: Sequence[float] | Tensor, name: str) -> Vec2:
    try:
        a, b = (float(t) for t in v)
    except (TypeError, ValueError):
        raise SplatpixError(f"{name} must be two numbers, got {v!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise SplatpixError(f"{name} must be finite, got {v!r}")
    return a, b


def _num(v: float, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise SplatpixError(f"{name} must be a number, got {v!r}") from None
    if isinstance(v, bool) or not math.isfinite(f):
        raise SplatpixError(f"{name} must be a finite number, got {v!r}")
    return f


def direction(angle_deg: float) -> Vec2:
    """Unit vector of angle ``angle_deg`` (counter-clockwise on screen from +x) in pixel coordinates (y down)."""
    a = math.radians(angle_deg)
    return math.cos(a), -math.sin(a)


def _check_points(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise SplatpixError(f"points must be a (P, 2) tensor, got {shape}")


# ------------------------------------------------------------------------------------------------ Jacobians


def map_and_jacobian(fn: Callable[[Tensor], Tensor], points: Tensor) -> tuple[Tensor, Tensor]:
    """``(fn(points), J)`` for a pointwise map ``fn`` of ``(P, 2)`` points; ``J`` ``(P, 2, 2)``,
    ``J[p, i, j] = d fn_i / d x_j`` at ``points[p]`` (module docstring), both detached."""
    _check_points(points)
    with torch.enable_grad():
        x = points.detach().clone().requires_grad_(True)
        y = fn(x)
        if y.shape != x.shape:
            raise SplatpixError(f"a deformation must map (P, 2) points to (P, 2), got {tuple(y.shape)}")
        if not y.requires_grad:  # constant map
            return y.detach(), torch.zeros(x.shape[0], 2, 2, dtype=x.dtype, device=x.device)
        rows = []
        for i in range(2):
            (g,) = torch.autograd.grad(y[:, i].sum(), x, retain_graph=i == 0, allow_unused=True)
            rows.append(torch.zeros_like(x) if g is None else g)
    return y.detach(), torch.stack(rows, 1)


def jacobian(fn: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    """``(P, 2, 2)`` Jacobians of the pointwise map ``fn`` at ``points`` (see :func:`map_and_jacobian`)."""
    return map_and_jacobian(fn, points)[1]


# ------------------------------------------------------------------------------------------------ base classes


class Deformation(ABC):
    """A differentiable pointwise map of ``(P, 2)`` native-pixel points (module docstring).

    Subclasses implement :meth:`forward` and, where the map has one, :meth:`inverse`. Parameters are plain floats
    (or tensors for fields), so a map works on points of any float dtype and device; apply_edit uses float64.
    """

    invertible: bool = False

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Implemented by each subclass."""

    def __call__(self, x: Tensor) -> Tensor:
        _check_points(x)
        return self.forward(x)

    def inverse(self) -> Deformation:
        """The inverse map; :class:`SplatpixError` when there is none."""
        raise SplatpixError(f"{type(self).__name__} has no inverse")

    def jacobian(self, x: Tensor) -> Tensor:
        """``(P, 2, 2)`` Jacobians at ``x`` (autograd, :func:`jacobian`)."""
        return jacobian(self, x)

    def then(self, other: Deformation) -> Compose:
        """``other o self``: this map first, then ``other``."""
        return Compose([self, other])

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                           if k != "matrix" and not isinstance(v, Tensor | Deformation))
        return f"{type(self).__name__}({fields})"


class Compose(Deformation):
    """Maps applied in order: ``Compose([a, b])(x) = b(a(x))``; the inverse applies the inverses in reverse."""

    def __init__(self, parts: Sequence[Deformation]) -> None:
        for i, p in enumerate(parts):
            if not isinstance(p, Deformation):
                raise SplatpixError(f"deformation {i} is a {type(p).__name__}, not a Deformation")
        self.parts = list(parts)
        self.invertible = all(p.invertible for p in self.parts)

    def forward(self, x: Tensor) -> Tensor:
        for p in self.parts:
            x = p(x)
        return x

    def inverse(self) -> Deformation:
        return Compose([p.inverse() for p in reversed(self.parts)])

    def __repr__(self) -> str:
        return f"Compose({self.parts!r})"


def _solve(j: Tensor, r: Tensor, phi: Deformation) -> Tensor:
    """``J^-1 r`` per point; a singular ``J`` is a fold of ``phi``."""
    try:
        return torch.linalg.solve(j, r.unsqueeze(-1)).squeeze(-1)
    except RuntimeError as e:  # torch.linalg.LinAlgError
        raise SplatpixError(f"the numerical inverse of {phi!r} met a singular Jacobian: the map folds there") from e


class NewtonInverse(Deformation):
    """Numerical inverse of ``phi`` by Newton's method (module docstring); ``inverse()`` gives ``phi`` back.

    Iterates until ``max |phi(x) - y| <= tol`` pixels (at most ``iters`` times); converges where ``phi`` is locally
    invertible along the path from ``y`` (``det J != 0``); raises :class:`SplatpixError` if the residual is still
    above ``fail_tol`` pixels anywhere. A singular Jacobian on the way gives non-finite steps, also reported."""

    invertible = True

    def __init__(self, phi: Deformation, iters: int = 50, tol: float = 1e-9, fail_tol: float = 1e-4) -> None:
        self.phi = phi
        self.iters = int(iters)
        self.tol = float(tol)
        self.fail_tol = float(fail_tol)

    def forward(self, y: Tensor) -> Tensor:
        if y.shape[0] == 0:
            return y.clone()
        target = y.detach()
        with torch.no_grad():
            x = target.clone()
            for _ in range(self.iters):
                fx, j = map_and_jacobian(self.phi, x)
                r = fx - target
                if not bool(r.abs().amax() > self.tol):  # converged (or NaN: caught below)
                    break
                x = x - _solve(j, r, self.phi)
            fx, j = map_and_jacobian(self.phi, x)
            err = (fx - target).abs().amax(1)
            bad = ~(torch.isfinite(err) & (err <= self.fail_tol))
            if bool(bad.any()):
                raise SplatpixError(f"the numerical inverse of {self.phi!r} did not converge at {int(bad.sum())} "
                                    f"point(s): the map is not invertible there")
        # one differentiable Newton step with J detached: d x / d y = J^-1 at the solution
        return x - _solve(j, self.phi(x) - y, self.phi)

    def inverse(self) -> Deformation:
        return self.phi

    def __repr__(self) -> str:
        return f"NewtonInverse({self.phi!r})"


# ------------------------------------------------------------------------------------------------ affine maps


class Translate(Deformation):
    """``x + offset`` (pixels)."""

    invertible = True

    def __init__(self, offset: Sequence[float]) -> None:
        self.offset = _vec2(offset, "offset")

    def forward(self, x: Tensor) -> Tensor:
        return x + x.new_tensor(self.offset)

    def inverse(self) -> Deformation:
        return Translate((-self.offset[0], -self.offset[1]))


class _Linear(Deformation):
    """``c + A (x - c)`` for a constant 2x2 matrix ``A``."""

    invertible = True

    def __init__(self, matrix: Sequence[Sequence[float]], centre: Sequence[float]) -> None:
        self.centre = _vec2(centre, "centre")
        (a, b), (c, d) = matrix
        self.matrix = ((float(a), float(b)), (float(c), float(d)))

    def forward(self, x: Tensor) -> Tensor:
        c = x.new_tensor(self.centre)
        return c + (x - c) @ x.new_tensor(self.matrix).T

    def _inverse_matrix(self) -> tuple[tuple[float, float], tuple[float, float]]:
        (a, b), (c, d) = self.matrix
        det = a * d - b * c
        if det == 0 or not math.isfinite(det):
            raise SplatpixError(f"{type(self).__name__} with a singular matrix has no inverse")
        return (d / det, -b / det), (-c / det, a / det)

    def inverse(self) -> Deformation:
        return _Linear(self._inverse_matrix(), self.centre)


class Rotate(_Linear):
    """Rotation by ``angle`` degrees (counter-clockwise on screen) about ``centre`` (pixels)."""

    def __init__(self, angle: float, centre: Sequence[float]) -> None:
        self.angle = _num(angle, "angle")
        a = math.radians(self.angle)
        ca, sa = math.cos(a), math.sin(a)
        super().__init__(((ca, sa), (-sa, ca)), centre)

    def inverse(self) -> Deformation:
        return Rotate(-self.angle, self.centre)


class Scale(_Linear):
    """Scaling by ``factor`` (one number, or ``(sx, sy)``) about ``centre`` (pixels)."""

    def __init__(self, factor: float | Sequence[float], centre: Sequence[float]) -> None:
        if isinstance(factor, int | float):
            sx = sy = _num(factor, "factor")
        else:
            sx, sy = _vec2(factor, "factor")
        self.factor = (sx, sy)
        self.invertible = sx != 0 and sy != 0
        super().__init__(((sx, 0.0), (0.0, sy)), centre)

    def inverse(self) -> Deformation:
        sx, sy = self.factor
        if not self.invertible:
            raise SplatpixError(f"Scale by {self.factor} has no inverse")
        return Scale((1.0 / sx, 1.0 / sy), self.centre)


class Stretch(_Linear):
    """Anisotropic stretch by ``factor`` along the direction ``axis`` (degrees), unchanged across it, about
    ``centre``: ``c + (I + (factor - 1) e e^T)(x - c)``, ``e = dir(axis)``."""

    def __init__(self, factor: float, axis: float, centre: Sequence[float]) -> None:
        self.factor = _num(factor, "factor")
        self.axis = _num(axis, "axis")
        ex, ey = direction(self.axis)
        k = self.factor - 1.0
        self.invertible = self.factor != 0
        super().__init__(((1 + k * ex * ex, k * ex * ey), (k * ex * ey, 1 + k * ey * ey)), centre)

    def inverse(self) -> Deformation:
        if not self.invertible:
            raise SplatpixError("Stretch by 0 has no inverse")
        return Stretch(1.0 / self.factor, self.axis, self.centre)


# ------------------------------------------------------------------------------------------------ smooth warps


class _Local(Deformation):
    """Shared local frame: ``s = (x - c) . e``, ``t = (x - c) . n``, ``e = dir(axis)``, ``n = dir(axis + 90)``."""

    def _frame(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c = x.new_tensor(self.centre)
        e = x.new_tensor(direction(self.axis))
        n = x.new_tensor(direction(self.axis + 90.0))
        d = x - c
        return d @ e, d @ n, e, n

    def _unframe(self, s: Tensor, t: Tensor, x: Tensor) -> Tensor:
        c = x.new_tensor(self.centre)
        e = x.new_tensor(direction(self.axis))
        n = x.new_tensor(direction(self.axis + 90.0))
        return c + s[:, None] * e + t[:, None] * n


class Bend(_Local):
    """Bend the line through ``centre`` along ``axis`` into a circular arc of curvature ``curvature`` (1/pixels;
    positive bends towards ``dir(axis + 90)``, the arc's centre at ``c + n / curvature``). Distances to the axis
    and arc lengths along it are kept (module docstring). Invertible on the half-plane ``curvature * t < 1``."""

    invertible = True

    def __init__(self, curvature: float, centre: Sequence[float], axis: float = 0.0) -> None:
        self.curvature = _num(curvature, "curvature")
        self.centre = _vec2(centre, "centre")
        self.axis = _num(axis, "axis")

    def forward(self, x: Tensor) -> Tensor:
        s, t, _, _ = self._frame(x)
        k = self.curvature
        th = k * s
        sin_over_k = s * torch.sinc(th / math.pi)  # sin(k s) / k
        one_minus_cos_over_k = s * torch.sin(0.5 * th) * torch.sinc(th / (2 * math.pi))  # (1 - cos(k s)) / k
        s2 = sin_over_k - t * torch.sin(th)
        t2 = one_minus_cos_over_k + t * torch.cos(th)
        return self._unframe(s2, t2, x)

    def inverse(self) -> Deformation:
        return _BendInverse(self)


class _BendInverse(_Local):
    invertible = True

    def __init__(self, bend: Bend) -> None:
        self.bend = bend
        self.centre, self.axis, self.curvature = bend.centre, bend.axis, bend.curvature

    def forward(self, x: Tensor) -> Tensor:
        s2, t2, _, _ = self._frame(x)
        k = self.curvature
        if k == 0:
            return x.clone()
        a, b = k * s2, 1 - k * t2
        th = torch.atan2(a, b)
        s = th / k
        t = (2 * t2 - k * (s2 * s2 + t2 * t2)) / (1 + torch.sqrt(a * a + b * b))
        return self._unframe(s, t, x)

    def inverse(self) -> Deformation:
        return self.bend

    def __repr__(self) -> str:
        return f"Inverse({self.bend!r})"


class Twist(Deformation):
    """Rotate points about ``centre`` by ``angle (1 - r^2 / R^2)^2`` degrees (``r = |x - c|``, ``R = radius``
    pixels, 0 beyond): a swirl, smooth everywhere (``C^1`` at ``r = R``). Radii are kept, so the inverse is the
    twist by ``-angle``."""

    invertible = True

    def __init__(self, angle: float, centre: Sequence[float], radius: float) -> None:
        self.angle = _num(angle, "angle")
        self.centre = _vec2(centre, "centre")
        self.radius = _num(radius, "radius")
        if self.radius <= 0:
            raise SplatpixError(f"twist radius must be > 0, got {radius!r}")

    def forward(self, x: Tensor) -> Tensor:
        c = x.new_tensor(self.centre)
        d = x - c
        r2 = (d * d).sum(1)
        f = (1 - r2 / (self.radius * self.radius)).clamp_min(0)
        th = math.radians(self.angle) * f * f
        ct, st = torch.cos(th), torch.sin(th)
        dx, dy = d[:, 0], d[:, 1]
        return c + torch.stack((ct * dx + st * dy, -st * dx + ct * dy), 1)

    def inverse(self) -> Deformation:
        return Twist(-self.angle, self.centre, self.radius)


WAVE_MODES = ("transverse", "longitudinal")


class Wave(_Local):
    """Sine displacement ``A sin(2 pi s / L + phase) n`` with ``s = (x - origin) . dir(axis)`` (the propagation
    direction): ``n = dir(axis + 90)`` (``"transverse"``, always a bijection: ``s`` is unchanged, so the inverse
    is exact) or ``n = dir(axis)`` (``"longitudinal"``, a bijection iff ``2 pi A < L``; Newton inverse).
    ``amplitude`` and ``wavelength`` in pixels, ``axis`` and ``phase`` in degrees."""

    def __init__(self, amplitude: float, wavelength: float, axis: float = 0.0, phase: float = 0.0,
                 origin: Sequence[float] = (0.0, 0.0), mode: str = "transverse") -> None:
        self.amplitude = _num(amplitude, "amplitude")
        self.wavelength = _num(wavelength, "wavelength")
        if self.wavelength <= 0:
            raise SplatpixError(f"wavelength must be > 0, got {wavelength!r}")
        self.axis = _num(axis, "axis")
        self.phase = _num(phase, "phase")
        self.centre = _vec2(origin, "origin")
        if mode not in WAVE_MODES:
            raise SplatpixError(f"unknown wave mode {mode!r}; use one of {', '.join(WAVE_MODES)}")
        self.mode = mode
        self.invertible = mode == "transverse" or 2 * math.pi * abs(self.amplitude) < self.wavelength

    def _displacement(self, x: Tensor) -> Tensor:
        s, _, e, n = self._frame(x)
        a = self.amplitude * torch.sin(2 * math.pi * s / self.wavelength + math.radians(self.phase))
        return a[:, None] * (n if self.mode == "transverse" else e)

    def forward(self, x: Tensor) -> Tensor:
        return x + self._displacement(x)

    def inverse(self) -> Deformation:
        if self.mode == "transverse":
            return _TransverseWaveInverse(self)
        if not self.invertible:
            raise SplatpixError(f"a longitudinal wave is invertible only when 2 pi amplitude < wavelength "
                                f"(got amplitude {self.amplitude}, wavelength {self.wavelength})")
        return NewtonInverse(self)


class _TransverseWaveInverse(Deformation):
    invertible = True

    def __init__(self, wave: Wave) -> None:
        self.wave = wave

    def forward(self, x: Tensor) -> Tensor:
        return x - self.wave._displacement(x)  # s is unchanged by the wave, so the displacement is the same

    def inverse(self) -> Deformation:
        return self.wave

    def __repr__(self) -> str:
        return f"Inverse({self.wave!r})"


# ------------------------------------------------------------------------------------------------ free-form


def _catmull_rom(t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Catmull-Rom weights of the nodes at offsets -1, 0, 1, 2 for fractional positions ``t`` in [0, 1)."""
    t2, t3 = t * t, t * t * t
    return (0.5 * (-t3 + 2 * t2 - t), 0.5 * (3 * t3 - 5 * t2 + 2), 0.5 * (-3 * t3 + 4 * t2 + t), 0.5 * (t3 - t2))


def sample_cubic(grid: Tensor, gx: Tensor, gy: Tensor) -> Tensor:
    """Catmull-Rom (C^1, interpolating) sample of ``grid`` ``(C, rows, cols)`` at node coordinates ``(gx, gy)``
    (node ``(i, j)`` at ``gx = j``, ``gy = i``), with edge nodes repeated outside; ``(P, C)``, differentiable
    w.r.t. ``gx``, ``gy`` and ``grid``."""
    _, rows, cols = grid.shape
    fx, fy = torch.floor(gx.detach()), torch.floor(gy.detach())
    wx, wy = _catmull_rom(gx - fx), _catmull_rom(gy - fy)
    ix, iy = fx.long(), fy.long()
    out = 0
    for a in range(4):
        yi = (iy + a - 1).clamp(0, rows - 1)
        for b in range(4):
            xi = (ix + b - 1).clamp(0, cols - 1)
            out = out + (wy[a] * wx[b])[:, None] * grid[:, yi, xi].T
    return out


class DisplacementField(Deformation):
    """``x + strength D(x)`` for a displacement field ``D`` ``(2, h, w)`` in pixels (channel 0 along x, 1 along
    y) sampled at pixel centres over an image of native ``size = (H, W)``, Catmull-Rom interpolated (edge
    values held outside). Inverse: Newton (needs ``|strength grad D| < 1``, no folds)."""

    invertible = True

    def __init__(self, field: Tensor, size: tuple[int, int], strength: float = 1.0) -> None:
        if not isinstance(field, Tensor) or field.dim() != 3 or field.shape[0] != 2 or min(field.shape[1:]) < 1:
            raise SplatpixError(f"a displacement field must be a (2, h, w) tensor, got "
                                f"{tuple(field.shape) if isinstance(field, Tensor) else type(field).__name__}")
        if not bool(torch.isfinite(field).all()):
            raise SplatpixError("the displacement field has non-finite values")
        self.field = field.detach().to(torch.float64)
        self.size = (int(size[0]), int(size[1]))
        self.strength = _num(strength, "strength")

    @classmethod
    def from_image(cls, image: Tensor, size: tuple[int, int], max_displacement: float,
                   strength: float = 1.0) -> DisplacementField:
        """From a ``(C, h, w)`` image in ``[0, 1]`` (C >= 2): ``D = (2 v - 1) max_displacement`` pixels per channel
        (channel 0 -> x, 1 -> y; 0.5 means no displacement; 16-bit PNGs give finer steps)."""
        if image.dim() != 3 or image.shape[0] < 2:
            raise SplatpixError(f"a displacement image needs at least 2 channels, got shape {tuple(image.shape)}")
        return cls((2 * image[:2].to(torch.float64) - 1) * _num(max_displacement, "max_displacement"), size,
                   strength)

    def _displacement(self, x: Tensor) -> Tensor:
        _, h, w = self.field.shape
        hh, ww = self.size
        gx = x[:, 0] * (w / ww) - 0.5
        gy = x[:, 1] * (h / hh) - 0.5
        return self.strength * sample_cubic(self.field.to(x), gx, gy)

    def forward(self, x: Tensor) -> Tensor:
        return x + self._displacement(x)

    def inverse(self) -> Deformation:
        return NewtonInverse(self)


class Lattice(DisplacementField):
    """Free-form deformation by a control lattice: ``displacements`` ``(rows, cols, 2)`` pixels at nodes spread
    evenly from corner to corner of the image (node ``(i, j)`` at ``(j W / (cols - 1), i H / (rows - 1))``),
    Catmull-Rom interpolated (so each node moves exactly by its displacement). Needs ``rows, cols >= 2``."""

    def __init__(self, displacements: Tensor, size: tuple[int, int], strength: float = 1.0) -> None:
        d = torch.as_tensor(displacements, dtype=torch.float64)
        if d.dim() != 3 or d.shape[2] != 2 or d.shape[0] < 2 or d.shape[1] < 2:
            raise SplatpixError(f"lattice displacements must have shape (rows >= 2, cols >= 2, 2), got "
                                f"{tuple(d.shape)}")
        super().__init__(d.permute(2, 0, 1), size, strength)

    def _displacement(self, x: Tensor) -> Tensor:
        _, rows, cols = self.field.shape
        hh, ww = self.size
        gx = x[:, 0] * ((cols - 1) / ww)
        gy = x[:, 1] * ((rows - 1) / hh)
        return self.strength * sample_cubic(self.field.to(x), gx, gy)


# ------------------------------------------------------------------------------------------------ cut


class Cut(Deformation):
    """Split the plane along the line through ``point`` with direction ``dir(axis)`` and move the two sides apart:
    ``x + sign((x - p) . n) (gap / 2 n + slide / 2 e)`` (pixels; ``e = dir(axis)``, ``n = dir(axis + 90)``).
    Points on the line stay. Jacobian: the identity (away from the line). Invertible for ``gap >= 0``: each side
    moves away from the line, so the side of ``x'`` is the side of ``x``."""

    def __init__(self, gap: float, point: Sequence[float], axis: float = 90.0, slide: float = 0.0) -> None:
        self.gap = _num(gap, "gap")
        self.point = _vec2(point, "point")
        self.axis = _num(axis, "axis")
        self.slide = _num(slide, "slide")
        self.invertible = self.gap >= 0

    def _offset(self, x: Tensor, sign: float) -> Tensor:
        e = x.new_tensor(direction(self.axis))
        n = x.new_tensor(direction(self.axis + 90.0))
        side = torch.sign((x.detach() - x.new_tensor(self.point)) @ n)
        return sign * side[:, None] * (0.5 * self.gap * n + 0.5 * self.slide * e)

    def forward(self, x: Tensor) -> Tensor:
        return x + self._offset(x, 1.0)

    def inverse(self) -> Deformation:
        if not self.invertible:
            raise SplatpixError(f"a cut with a negative gap ({self.gap}) overlaps its sides and has no inverse")
        return _CutInverse(self)


class _CutInverse(Deformation):
    invertible = True

    def __init__(self, cut: Cut) -> None:
        self.cut = cut

    def forward(self, x: Tensor) -> Tensor:
        return x + self.cut._offset(x, -1.0)

    def inverse(self) -> Deformation:
        return self.cut

    def __repr__(self) -> str:
        return f"Inverse({self.cut!r})"


# ------------------------------------------------------------------------------------------------ region blend


class Blend(Deformation):
    """``x + w(x) (phi(x) - x)``: ``phi`` applied with the weights ``w = region.weights(x, size)`` in [0, 1]
    (1 inside the region, a smooth falloff in its feather band, 0 outside). Differentiable through ``w``.
    Inverse: Newton (exists when the blend does not fold, e.g. a moderate move with a wide enough feather)."""

    invertible = True

    def __init__(self, phi: Deformation, region: Region, size: tuple[int, int]) -> None:
        self.phi = phi
        self.region = region
        self.size = (int(size[0]), int(size[1]))

    def forward(self, x: Tensor) -> Tensor:
        w = self.region.weights(x, self.size).to(x.dtype)
        return x + w[:, None] * (self.phi(x) - x)

    def inverse(self) -> Deformation:
        return NewtonInverse(self)

    def __repr__(self) -> str:
        return f"Blend({self.phi!r}, {self.region!r})"
