"""Edit and animation specs (YAML or JSON): validated into :class:`EditSpec`, evaluated at any time ``t``.

Shape (every field checked; a bad one raises :class:`SplatpixError` naming it, e.g.
``spec.edits[1].params.angle: expected a number, two numbers or a keyframe list [[t, value], ...]``)::

    fps: 24                  # frames per second (animation; default 24)
    duration: 2.0            # seconds -- or frames: 48 (exactly one of them for an animation)
    size: [768, 512]         # output [width, height] or "768x512" (default: the model's native size)
    background: original     # original (the unedited model), "#rrggbb", or an image path (relative to the spec)
    region: "box:0.2,0.2,0.6,0.6"   # optional: the object the whole composition moves (weights at the
    feather: 8                      #   original positions), soft border in native pixels
    object_only: false       # render only the region's Gaussians over the background
    transform_covariance: true
    edits:                   # applied in order, each evaluated at the frame's time
      - op: rotate           # splatpix.edit.ops for the ops, parameters and units
        params:
          angle: [[0, 0], [2, 90]]     # keyframes [[t seconds, value], ...], or a constant
          centre: [0.4, 0.5]
        easing: ease-in-out  # linear | ease-in | ease-out | ease-in-out, between keyframes
        region: "ellipse:0.4,0.5,0.2,0.2"   # optional: a region for this step (weights at its input
        feather: 4                          #   positions), string or {box: [...]}/{polygon: [[u, v], ...]}/...

A parameter value is a number, two numbers ``[a, b]`` (vector parameters) or a keyframe list
``[[t, value], ...]`` with strictly increasing times; before the first key the first value holds, after the last the
last. Between keys ``k`` and ``k + 1``: ``value = v_k + (v_{k+1} - v_k) e((t - t_k) / (t_{k+1} - t_k))`` with the
edit's easing ``e``: ``s``, ``s^2``, ``1 - (1 - s)^2`` or ``3 s^2 - 2 s^3``. Regions are not animated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..checks import is_number
from ..errors import SplatpixError
from .apply import EditStep
from .deform import Deformation
from .ops import OPS, DeformationFactory, Param, check_value
from .region import BoxRegion, MaskRegion, PolygonRegion, Region, ellipse_region, parse_region

__all__ = ["EASINGS", "EditSpec", "EditTrack", "Keyframes", "load_spec", "parse_spec"]

EASINGS: dict[str, Callable[[float], float]] = {
    "linear": lambda s: s,
    "ease-in": lambda s: s * s,
    "ease-out": lambda s: 1 - (1 - s) * (1 - s),
    "ease-in-out": lambda s: s * s * (3 - 2 * s),
}
MAX_FRAMES = 100_000
MAX_SIDE = 1 << 15
_TOP_KEYS = ("fps", "duration", "frames", "size", "background", "region", "feather", "object_only",
             "transform_covariance", "edits")
_EDIT_KEYS = ("op", "params", "easing", "region", "feather")


@dataclass
class Keyframes:
    """``[(t, value), ...]`` with strictly increasing ``t``; ``value`` a float or a 2-tuple."""

    keys: list[tuple[float, Any]]

    def at(self, t: float, easing: Callable[[float], float]) -> Any:
        ks = self.keys
        if t <= ks[0][0]:
            return ks[0][1]
        if t >= ks[-1][0]:
            return ks[-1][1]
        for (t0, v0), (t1, v1) in zip(ks, ks[1:], strict=False):
            if t0 <= t <= t1:
                s = easing((t - t0) / (t1 - t0))
                if isinstance(v0, tuple) or isinstance(v1, tuple):
                    a = v0 if isinstance(v0, tuple) else (v0, v0)
                    b = v1 if isinstance(v1, tuple) else (v1, v1)
                    return tuple(x + (y - x) * s for x, y in zip(a, b, strict=True))
                return v0 + (v1 - v0) * s
        return ks[-1][1]


@dataclass
class EditTrack:
    """One edit of a spec: its op, parameters (static values or :class:`Keyframes`), easing and region."""

    op: str
    params: dict[str, Any]
    easing: str = "linear"
    region: Region | None = None
    where: str = "spec.edits[0]"
    param_name: Callable[[str], str] | None = None  # a parameter's name in messages (default: where.params.NAME)

    def params_at(self, t: float) -> dict[str, Any]:
        e = EASINGS[self.easing]
        return {k: (v.at(t, e) if isinstance(v, Keyframes) else v) for k, v in self.params.items()}

    def name(self, param: str) -> str:
        return self.param_name(param) if self.param_name is not None else f"{self.where}.params.{param}"

    def key_times(self) -> list[float]:
        return sorted({t for v in self.params.values() if isinstance(v, Keyframes) for t, _ in v.keys})


@dataclass
class EditSpec:
    """A validated spec (module docstring). ``frames`` is ``None`` without timing (a still edit)."""

    edits: list[EditTrack]
    fps: float = 24.0
    frames: int | None = None
    size: tuple[int, int] | None = None  # (height, width)
    background: str | None = None
    region: Region | None = None
    object_only: bool = False
    transform_covariance: bool = True
    base_dir: str | None = None
    _factories: dict[tuple[int, int], DeformationFactory] = field(default_factory=dict, repr=False)

    def factory(self, size: tuple[int, int]) -> DeformationFactory:
        key = (int(size[0]), int(size[1]))
        if key not in self._factories:
            self._factories[key] = DeformationFactory(key, self.base_dir)
        return self._factories[key]

    def steps_at(self, t: float, size: tuple[int, int]) -> list[EditStep]:
        """The edit steps at time ``t`` (seconds) for a model of native ``size``."""
        f = self.factory(size)
        out = []
        for tr in self.edits:
            d: Deformation = f.build(tr.op, tr.params_at(t), tr.name, tr.where)
            out.append(EditStep(d, tr.region))
        return out

    def check(self, size: tuple[int, int]) -> None:
        """Build every edit at ``t = 0`` and at each of its keyframe times (raises on a bad value)."""
        for tr in self.edits:
            f = self.factory(size)
            for t in [0.0, *tr.key_times()]:
                f.build(tr.op, tr.params_at(t), tr.name, tr.where)


# ------------------------------------------------------------------------------------------------ parsing


def _bad(where: str, msg: str) -> SplatpixError:
    return SplatpixError(f"{where}: {msg}")


def _check_keys(d: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for k in d:
        if k not in allowed:
            raise _bad(f"{where}.{k}" if isinstance(k, str) else where,
                       f"unknown key (use {', '.join(allowed)})")


def _number(v: Any, where: str, *, positive: bool = False, minimum: float | None = None) -> float:
    if not is_number(v):
        raise _bad(where, f"expected a number, got {v!r}")
    if positive and not v > 0:
        raise _bad(where, f"must be > 0, got {v!r}")
    if minimum is not None and v < minimum:
        raise _bad(where, f"must be >= {minimum}, got {v!r}")
    return float(v)


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise _bad(where, f"expected true or false, got {v!r}")
    return v


def _size(v: Any, where: str) -> tuple[int, int]:
    """``[width, height]`` or ``"WxH"`` -> (height, width)."""
    if isinstance(v, str):
        try:
            w, h = (int(t) for t in v.lower().split("x"))
        except ValueError:
            raise _bad(where, f"expected [width, height] or 'WxH', got {v!r}") from None
    elif isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(t, int) and not isinstance(t, bool)
                                                             for t in v):
        w, h = v
    else:
        raise _bad(where, f"expected [width, height] or 'WxH', got {v!r}")
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise _bad(where, f"width and height must be in 1..{MAX_SIDE}, got {v!r}")
    return int(h), int(w)


def parse_region_value(v: Any, feather: float, where: str, base_dir: str | None) -> Region:
    """A region from a spec value: a string (:func:`~.region.parse_region`) or a one-key mapping
    ``{box: [u0, v0, u1, v1]}``, ``{polygon: [[u, v], ...]}``, ``{ellipse: [u, v, ru, rv]}``, ``{mask: PATH}``."""
    try:
        if isinstance(v, str):
            return parse_region(v, feather, base_dir)
        if isinstance(v, Mapping) and len(v) == 1:
            (kind, arg), = v.items()
            nums = isinstance(arg, list) and all(is_number(t) for t in arg)
            if kind == "box" and nums and len(arg) == 4:
                return BoxRegion(*arg, feather=feather)
            if kind == "ellipse" and nums and len(arg) == 4 and arg[2] > 0 and arg[3] > 0:
                return ellipse_region(*arg, feather=feather)
            if kind == "polygon" and isinstance(arg, list) and len(arg) >= 3 and all(
                    isinstance(p, list) and len(p) == 2 and all(is_number(t) for t in p) for p in arg):
                return PolygonRegion(arg, feather)
            if kind == "mask" and isinstance(arg, str) and arg:
                path = arg if base_dir is None or os.path.isabs(arg) else os.path.join(base_dir, arg)
                return MaskRegion.from_file(path, feather)
            if kind in ("box", "ellipse", "polygon", "mask"):
                raise _bad(where, f"invalid {kind} {arg!r}")
    except SplatpixError as e:
        msg = str(e)
        raise (e if msg.startswith(where) else _bad(where, msg)) from None
    raise _bad(where, "expected a region string (all, box:u0,v0,u1,v1, polygon:u,v;..., ellipse:u,v,ru,rv, "
                      "mask:PATH) or a mapping like {box: [u0, v0, u1, v1]}")


def _param_value(p: Param, v: Any, where: str) -> Any:
    if isinstance(v, list) and v and all(isinstance(k, list) for k in v) and p.animatable:
        keys = []
        for i, k in enumerate(v):
            if len(k) != 2 or not is_number(k[0]):
                raise _bad(f"{where}[{i}]", f"a keyframe must be [t, value] with t a number, got {k!r}")
            keys.append((float(k[0]), check_value(p, k[1], f"{where}[{i}][1]")))
        for i in range(1, len(keys)):
            if not keys[i][0] > keys[i - 1][0]:
                raise _bad(f"{where}[{i}][0]", "keyframe times must increase strictly")
        return Keyframes(keys)
    try:
        return check_value(p, v, where)
    except SplatpixError:
        if not p.animatable:
            raise
        expect = {"number": "a number", "vec2": "two numbers [a, b]",
                  "number_or_vec2": "a number or two numbers [a, b]"}[p.kind]
        raise _bad(where, f"expected {expect} or a keyframe list [[t, value], ...], got {v!r}") from None


def _edit(d: Any, where: str, base_dir: str | None) -> EditTrack:
    if not isinstance(d, Mapping):
        raise _bad(where, f"an edit must be a mapping with op and params, got {d!r}")
    _check_keys(d, _EDIT_KEYS, where)
    op = d.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise _bad(f"{where}.op", f"expected one of {', '.join(OPS)}, got {op!r}")
    raw = d.get("params", {})
    if not isinstance(raw, Mapping):
        raise _bad(f"{where}.params", f"expected a mapping of parameter values, got {raw!r}")
    schema = OPS[op]
    params: dict[str, Any] = {}
    for k, v in raw.items():
        if k not in schema:
            raise _bad(f"{where}.params.{k}", f"unknown parameter for {op} (use {', '.join(schema)})")
        params[k] = _param_value(schema[k], v, f"{where}.params.{k}")
    for k, p in schema.items():
        if p.required and k not in params:
            raise _bad(f"{where}.params.{k}", f"required by {op}")
    easing = d.get("easing", "linear")
    if not isinstance(easing, str) or easing not in EASINGS:
        raise _bad(f"{where}.easing", f"expected one of {', '.join(EASINGS)}, got {easing!r}")
    feather = _number(d.get("feather", 0), f"{where}.feather", minimum=0)
    region = None
    if d.get("region") is not None:
        region = parse_region_value(d["region"], feather, f"{where}.region", base_dir)
    elif "feather" in d:
        raise _bad(f"{where}.feather", "needs a region")
    return EditTrack(op, params, easing, region, where)


def parse_spec(data: Any, base_dir: str | None = None, *, timing: bool = True, where: str = "spec") -> EditSpec:
    """Validate a spec (the parsed YAML/JSON object, module docstring). ``timing``: an animation, which needs
    exactly one of ``duration``/``frames``; without it they are optional (a still edit)."""
    if not isinstance(data, Mapping):
        raise _bad(where, f"expected a mapping (fps, duration, edits, ...), got {type(data).__name__}")
    _check_keys(data, _TOP_KEYS, where)
    fps = _number(data.get("fps", 24), f"{where}.fps", positive=True)
    frames = None
    if "duration" in data and "frames" in data:
        raise _bad(f"{where}.frames", "give duration or frames, not both")
    if "duration" in data:
        frames = max(1, round(_number(data["duration"], f"{where}.duration", positive=True) * fps))
    elif "frames" in data:
        f = data["frames"]
        if not (isinstance(f, int) and not isinstance(f, bool) and f >= 1):
            raise _bad(f"{where}.frames", f"expected an integer >= 1, got {f!r}")
        frames = f
    elif timing:
        raise _bad(f"{where}.duration", "an animation needs duration (seconds) or frames")
    if frames is not None and frames > MAX_FRAMES:
        raise _bad(f"{where}.frames", f"at most {MAX_FRAMES} frames, got {frames}")
    size = _size(data["size"], f"{where}.size") if data.get("size") is not None else None
    background = data.get("background")
    if background is not None and (not isinstance(background, str) or not background.strip()):
        raise _bad(f"{where}.background", f"expected original, #rrggbb or an image path, got {background!r}")
    feather = _number(data.get("feather", 0), f"{where}.feather", minimum=0)
    region = None
    if data.get("region") is not None:
        region = parse_region_value(data["region"], feather, f"{where}.region", base_dir)
    elif "feather" in data:
        raise _bad(f"{where}.feather", "needs a region")
    object_only = _bool(data.get("object_only", False), f"{where}.object_only")
    tcov = _bool(data.get("transform_covariance", True), f"{where}.transform_covariance")
    edits = data.get("edits")
    if not isinstance(edits, list) or not edits:
        raise _bad(f"{where}.edits", "expected a non-empty list of edits")
    tracks = [_edit(e, f"{where}.edits[{i}]", base_dir) for i, e in enumerate(edits)]
    return EditSpec(tracks, fps, frames, size, background, region, object_only, tcov, base_dir)


def load_spec(path: str | os.PathLike[str], *, timing: bool = True) -> EditSpec:
    """Read and validate a spec file: ``.json`` as JSON, anything else as YAML (safe loader). Relative paths in it
    (mask regions, field images, the background) are taken from the file's folder."""
    from ..io.files import read_spec_file

    name = os.fspath(path)
    data = read_spec_file(name, "spec")
    reject_non_finite(data, "spec")
    return parse_spec(data, os.path.dirname(os.path.abspath(name)), timing=timing)


def reject_non_finite(v: Any, where: str) -> None:
    if isinstance(v, float) and not math.isfinite(v):
        raise _bad(where, f"non-finite number {v!r}")
    if isinstance(v, Mapping):
        for k, x in v.items():
            reject_non_finite(x, f"{where}.{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            reject_non_finite(x, f"{where}[{i}]")
