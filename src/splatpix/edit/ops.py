"""Named edit operations with resolution-independent parameters (the units of specs and the command line).

Units (converted to the native pixels of :mod:`splatpix.edit.deform` with the model's size ``(H, W)``):

* positions (``centre``): normalised ``(u, v)``, ``x = u W``, ``y = v H``; default ``(0.5, 0.5)``, the centre;
* ``offset`` (translate) and lattice displacements: normalised per axis, ``(du W, dv H)`` pixels;
* lengths (``radius``, ``amplitude``, ``wavelength``, ``gap``, ``slide``, ``max_displacement``): fractions of the
  shorter side ``min(H, W)`` (so a circle stays a circle on a non-square image);
* angles (``angle``, ``axis``, ``phase``): degrees, counter-clockwise on screen; ``axis`` 0 is along +x;
* ``bend.angle``: the total turning of the bent axis across the image, i.e. curvature ``radians(angle) / E`` with
  ``E = |W cos(axis)| + |H sin(axis)|`` the image's extent along the axis.

=============  ==========================================================================================
op             parameters (``*`` required)
=============  ==========================================================================================
``translate``  ``offset*``
``rotate``     ``angle*``, ``centre``
``scale``      ``factor*`` (a number, or ``[fx, fy]``), ``centre``
``stretch``    ``factor*``, ``axis`` (0), ``centre``
``bend``       ``angle*``, ``axis`` (0), ``centre``
``twist``      ``angle*`` (at the centre), ``radius`` (0.5), ``centre``
``wave``       ``amplitude*``, ``wavelength`` (0.25), ``axis`` (0: travels along x), ``phase`` (0),
               ``mode`` (``transverse`` | ``longitudinal``), ``centre`` (the phase origin)
``field``      ``image*`` (a PNG, channels R, G = x, y displacement, 0.5 = none), ``max_displacement`` (0.05),
               ``strength`` (1)
``lattice``    ``displacements*`` (rows x cols x 2 nested lists, rows, cols >= 2), ``strength`` (1)
``cut``        ``gap*``, ``slide`` (0), ``axis`` (90: a vertical cut), ``centre`` (a point on the cut line)
=============  ==========================================================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..checks import is_number
from ..errors import SplatpixError
from .deform import (
    Bend,
    Cut,
    Deformation,
    DisplacementField,
    Lattice,
    Rotate,
    Scale,
    Stretch,
    Translate,
    Twist,
    Wave,
)

__all__ = ["OPS", "DeformationFactory", "Param", "is_number"]

_REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """A parameter: ``kind`` is ``number``, ``vec2``, ``number_or_vec2``, ``string`` or ``lattice``; ``default``
    (``_REQUIRED`` when none); ``choices`` for strings. Numbers and vectors can be animated (keyframes)."""

    kind: str
    default: Any = _REQUIRED
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def animatable(self) -> bool:
        return self.kind in ("number", "vec2", "number_or_vec2")


_CENTRE = Param("vec2", (0.5, 0.5))

OPS: dict[str, dict[str, Param]] = {
    "translate": {"offset": Param("vec2")},
    "rotate": {"angle": Param("number"), "centre": _CENTRE},
    "scale": {"factor": Param("number_or_vec2"), "centre": _CENTRE},
    "stretch": {"factor": Param("number"), "axis": Param("number", 0.0), "centre": _CENTRE},
    "bend": {"angle": Param("number"), "axis": Param("number", 0.0), "centre": _CENTRE},
    "twist": {"angle": Param("number"), "radius": Param("number", 0.5), "centre": _CENTRE},
    "wave": {"amplitude": Param("number"), "wavelength": Param("number", 0.25), "axis": Param("number", 0.0),
             "phase": Param("number", 0.0), "mode": Param("string", "transverse", ("transverse", "longitudinal")),
             "centre": _CENTRE},
    "field": {"image": Param("string"), "max_displacement": Param("number", 0.05), "strength": Param("number", 1.0)},
    "lattice": {"displacements": Param("lattice"), "strength": Param("number", 1.0)},
    "cut": {"gap": Param("number"), "slide": Param("number", 0.0), "axis": Param("number", 90.0),
            "centre": _CENTRE},
}


def _is_vec2(x: Any) -> bool:
    return isinstance(x, list | tuple) and len(x) == 2 and all(is_number(t) for t in x)


def check_value(p: Param, value: Any, name: str) -> Any:
    """The validated (static) value of parameter ``p``; ``name`` is its path in messages."""
    if p.kind == "number":
        if not is_number(value):
            raise SplatpixError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if p.kind == "vec2":
        if not _is_vec2(value):
            raise SplatpixError(f"{name}: expected two numbers [a, b], got {value!r}")
        return (float(value[0]), float(value[1]))
    if p.kind == "number_or_vec2":
        if is_number(value):
            return float(value)
        if _is_vec2(value):
            return (float(value[0]), float(value[1]))
        raise SplatpixError(f"{name}: expected a number or two numbers [a, b], got {value!r}")
    if p.kind == "string":
        if not isinstance(value, str) or not value:
            raise SplatpixError(f"{name}: expected a string, got {value!r}")
        if p.choices and value not in p.choices:
            raise SplatpixError(f"{name}: expected one of {', '.join(p.choices)}, got {value!r}")
        return value
    if p.kind == "lattice":
        try:
            t = (value.detach().to(torch.float64) if isinstance(value, torch.Tensor)
                 else torch.tensor(value, dtype=torch.float64))
        except (TypeError, ValueError, RuntimeError):
            raise SplatpixError(f"{name}: expected rows x cols x 2 nested lists of numbers") from None
        if t.dim() != 3 or t.shape[2] != 2 or t.shape[0] < 2 or t.shape[1] < 2 or not bool(torch.isfinite(t).all()):
            raise SplatpixError(f"{name}: expected rows x cols x 2 nested lists of finite numbers (rows, cols >= 2), "
                                f"got shape {tuple(t.shape)}")
        return t
    raise AssertionError(p.kind)


class DeformationFactory:
    """Builds :class:`~.deform.Deformation` objects from ``(op, params)`` for a model of native ``size = (H, W)``
    (module docstring for the units); field images are loaded once (relative paths from ``base_dir``)."""

    def __init__(self, size: tuple[int, int], base_dir: str | os.PathLike[str] | None = None) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.base_dir = base_dir
        self._images: dict[str, torch.Tensor] = {}

    def _image(self, path: str) -> torch.Tensor:
        full = path if self.base_dir is None or os.path.isabs(path) else os.path.join(os.fspath(self.base_dir), path)
        if full not in self._images:
            from ..io import load_image

            self._images[full] = load_image(full)
        return self._images[full]

    def build(self, op: str, params: Mapping[str, Any], name: Callable[[str], str] = lambda n: n,
              where: str = "edit") -> Deformation:
        """The deformation ``op`` with ``params`` (static values; defaults filled in). ``name(param)`` gives each
        parameter's path in messages, ``where`` the edit's."""
        schema = OPS.get(op) if isinstance(op, str) else None
        if schema is None:
            raise SplatpixError(f"{where}: unknown op {op!r}; use one of {', '.join(OPS)}")
        for key in params:
            if key not in schema:
                raise SplatpixError(f"{name(key)}: unknown parameter for {op} (use {', '.join(schema)})")
        v: dict[str, Any] = {}
        for key, p in schema.items():
            if key in params and params[key] is not None:
                v[key] = check_value(p, params[key], name(key))
            elif p.required:
                raise SplatpixError(f"{name(key)}: required by {op}")
            else:
                v[key] = p.default
        try:
            return self._make(op, v)
        except SplatpixError as e:
            raise SplatpixError(f"{where}: {e}") from None

    def _make(self, op: str, v: dict[str, Any]) -> Deformation:
        h, w = self.size
        side = float(min(h, w))
        c = (v["centre"][0] * w, v["centre"][1] * h) if "centre" in v else None
        if op == "translate":
            return Translate((v["offset"][0] * w, v["offset"][1] * h))
        if op == "rotate":
            return Rotate(v["angle"], c)
        if op == "scale":
            return Scale(v["factor"], c)
        if op == "stretch":
            return Stretch(v["factor"], v["axis"], c)
        if op == "bend":
            a = math.radians(v["axis"])
            extent = abs(w * math.cos(a)) + abs(h * math.sin(a))
            return Bend(math.radians(v["angle"]) / extent, c, v["axis"])
        if op == "twist":
            return Twist(v["angle"], c, v["radius"] * side)
        if op == "wave":
            return Wave(v["amplitude"] * side, v["wavelength"] * side, v["axis"], v["phase"], c, v["mode"])
        if op == "field":
            return DisplacementField.from_image(self._image(v["image"]), self.size, v["max_displacement"] * side,
                                                v["strength"])
        if op == "lattice":
            d = v["displacements"] * torch.tensor((float(w), float(h)), dtype=torch.float64)
            return Lattice(d, self.size, v["strength"])
        if op == "cut":
            return Cut(v["gap"] * side, c, v["axis"], v["slide"] * side)
        raise AssertionError(op)
