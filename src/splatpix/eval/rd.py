"""Rate–distortion curves in CompressAI's JSON result format.

A curve file holds one JSON object::

    {"name": "...", "description": "...",
     "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...], "encoding_time": [...], ...}}

with one list entry per rate point (quality setting), each the mean over a dataset (or, in per-image files,
the value for one image). ``"psnr"`` and ``"ms-ssim"`` are accepted in place of ``"psnr-rgb"`` and
``"ms-ssim-rgb"`` (older CompressAI files); files are written with the ``-rgb`` keys. Other keys are kept.

Curve files are treated as untrusted input: every problem (unreadable file, invalid JSON, missing keys, lists
of unequal lengths, non-numeric or non-finite values, non-positive bpp) raises
:class:`~splatpix.errors.SplatpixError` with a one-line message that names the file.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import is_real
from ..errors import SplatpixError
from ..io.files import atomic_write_bytes, check_readable_file

__all__ = ["MAX_JSON_BYTES", "RDCurve", "load_curve", "load_published", "mean_curve", "save_curve"]

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Largest curve file :func:`load_curve` reads."""

PathLike = str | os.PathLike[str]

_PSNR_KEYS = ("psnr-rgb", "psnr")
_MSSSIM_KEYS = ("ms-ssim-rgb", "ms-ssim")


@dataclass
class RDCurve:
    """One rate–distortion curve: a codec's (or one image's) points, in file order.

    ``bpp``, ``psnr`` (dB, 8-bit RGB) and ``ms_ssim`` (in ``[0, 1]``, or ``None`` when not measured) have one
    entry per rate point. ``raw`` is the whole JSON object as read (or built), so that other keys
    (``encoding_time``, ``source``...) survive a :func:`save_curve`. ``published`` marks reference curves
    from the literature (:func:`load_published` sets it; plots draw them dashed); it is not saved.

    Construction validates and normalises the lists (floats, equal lengths, finite, bpp > 0, MS-SSIM <= 1)
    and raises :class:`SplatpixError` otherwise.
    """

    name: str
    description: str
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float] | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    published: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check and normalise the fields (run on construction and before writing); see the class docstring."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise SplatpixError(f"curve name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.description, str):
            raise SplatpixError(f"curve {self.name!r}: description must be a string")
        if not isinstance(self.raw, dict):
            raise SplatpixError(f"curve {self.name!r}: raw must be a dict")
        self.bpp = _numbers(self.bpp, "bpp")
        self.psnr = _numbers(self.psnr, "psnr")
        if self.ms_ssim is not None:
            self.ms_ssim = _numbers(self.ms_ssim, "ms-ssim")
        n = len(self.bpp)
        if n == 0:
            raise SplatpixError(f"curve {self.name!r}: no rate points")
        for key, values in (("psnr", self.psnr), ("ms-ssim", self.ms_ssim)):
            if values is not None and len(values) != n:
                raise SplatpixError(f"curve {self.name!r}: {len(values)} {key} values but {n} bpp values")
        if min(self.bpp) <= 0:
            raise SplatpixError(f"curve {self.name!r}: bpp values must be positive, got {min(self.bpp):g}")
        if self.ms_ssim is not None and max(self.ms_ssim) > 1.0:
            raise SplatpixError(
                f"curve {self.name!r}: MS-SSIM values must be at most 1, got {max(self.ms_ssim):g} "
                "(is it in dB?)"
            )

    def __len__(self) -> int:
        return len(self.bpp)

    def to_dict(self) -> dict[str, Any]:
        """The CompressAI JSON object for this curve: ``raw`` with name, description and results updated.

        Raises :class:`SplatpixError` if another list in ``raw["results"]`` does not have one entry per point.
        """
        self.validate()
        raw = copy.deepcopy(self.raw)
        old_results = raw.pop("results", None)
        results: dict[str, Any] = dict(old_results) if isinstance(old_results, dict) else {}
        for canonical, legacy in (_PSNR_KEYS, _MSSSIM_KEYS):
            if canonical not in results:
                results.pop(legacy, None)  # it was the source of the field we now write under `canonical`
        results["bpp"] = list(self.bpp)
        results["psnr-rgb"] = list(self.psnr)
        if self.ms_ssim is None:
            results.pop("ms-ssim-rgb", None)
        else:
            results["ms-ssim-rgb"] = list(self.ms_ssim)
        for key, values in results.items():
            if isinstance(values, list) and len(values) != len(self):
                raise SplatpixError(
                    f"curve {self.name!r}: results[{key!r}] has {len(values)} values but the curve has "
                    f"{len(self)} points"
                )
        raw.pop("name", None)
        raw.pop("description", None)
        return {"name": self.name, "description": self.description, **raw, "results": results}


def load_curve(path: PathLike) -> RDCurve:
    """Read a CompressAI-format RD curve JSON file; raise :class:`SplatpixError` if it is missing or invalid.

    A missing ``"name"`` defaults to the file's stem and a missing ``"description"`` to ``""``.
    """
    name = os.fspath(path)
    size = check_readable_file(name, "a JSON")
    if size > MAX_JSON_BYTES:
        raise SplatpixError(f"{name}: file too large for an RD curve ({size} bytes; the limit is {MAX_JSON_BYTES})")
    try:
        with open(name, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except OSError as e:
        raise SplatpixError(f"{name}: cannot read ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise SplatpixError(f"{name}: not a UTF-8 text file, not an RD curve JSON file") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SplatpixError(f"{name}: invalid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except RecursionError as e:
        raise SplatpixError(f"{name}: invalid JSON (nested too deeply)") from e
    try:
        return _curve_from_dict(data, default_name=Path(name).stem)
    except SplatpixError as e:
        raise SplatpixError(f"{name}: {e}") from e


def save_curve(curve: RDCurve, path: PathLike) -> None:
    """Write ``curve`` as CompressAI-format JSON (indented, UTF-8), atomically: see :func:`RDCurve.to_dict`."""
    name = os.fspath(path)
    data = curve.to_dict()
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise SplatpixError(f"{name}: curve {curve.name!r} cannot be written as JSON ({e})") from e
    atomic_write_bytes(name, (text + "\n").encode("utf-8"))


def mean_curve(per_image: list[RDCurve], name: str | None = None, description: str | None = None) -> RDCurve:
    """Point-wise mean of per-image curves (CompressAI's convention for dataset curves).

    All curves must have the same number of rate points, point ``i`` being the same codec setting for every
    image. bpp, PSNR and MS-SSIM are each averaged over the images (MS-SSIM only if every curve has it), as
    are the other numeric lists every curve's results share (``encoding_time``...). ``name`` defaults to the
    curves' common name (the first curve's if they differ) and ``description`` to a note of the average.
    """
    if not per_image:
        raise SplatpixError("mean_curve: no curves to average")
    for c in per_image:
        if not isinstance(c, RDCurve):
            raise SplatpixError(f"mean_curve: expected RDCurve objects, got {type(c).__name__}")
    n = len(per_image[0])
    for c in per_image[1:]:
        if len(c) != n:
            raise SplatpixError(
                f"mean_curve: curve {c.name!r} has {len(c)} rate points but {per_image[0].name!r} has {n}; "
                "every image must be coded at the same settings"
            )
    names = {c.name for c in per_image}
    out_name = name if name is not None else (names.pop() if len(names) == 1 else per_image[0].name)
    out_desc = description if description is not None else f"mean over {len(per_image)} images"

    def mean(rows: list[list[float]]) -> list[float]:
        return [float(v) for v in np.mean(np.asarray(rows, dtype=np.float64), axis=0)]

    bpp = mean([c.bpp for c in per_image])
    psnr = mean([c.psnr for c in per_image])
    ms_ssim = None
    if all(c.ms_ssim is not None for c in per_image):
        ms_ssim = mean([c.ms_ssim for c in per_image if c.ms_ssim is not None])

    # Other numeric lists shared by every curve (timings...).
    skip = {"bpp", *_PSNR_KEYS, *_MSSSIM_KEYS}
    all_results = [c.raw.get("results") if isinstance(c.raw.get("results"), dict) else {} for c in per_image]
    extra: dict[str, list[float]] = {}
    for key in all_results[0]:
        if key in skip:
            continue
        rows = [r.get(key) for r in all_results]
        if all(_is_number_list(v) and len(v) == n for v in rows):
            extra[key] = mean(rows)  # type: ignore[arg-type]
    results: dict[str, Any] = {"bpp": bpp, "psnr-rgb": psnr}
    if ms_ssim is not None:
        results["ms-ssim-rgb"] = ms_ssim
    results.update(extra)
    raw = {"name": out_name, "description": out_desc, "results": results}
    return RDCurve(name=out_name, description=out_desc, bpp=bpp, psnr=psnr, ms_ssim=ms_ssim, raw=raw)


def load_published(directory: PathLike) -> dict[str, RDCurve]:
    """Load every ``*.json`` curve of ``directory`` (sorted by file name), keyed by curve name.

    The curves are marked ``published=True``. Raises :class:`SplatpixError` if the directory is missing, holds
    no JSON file, holds an invalid one, or two files have the same curve name.
    """
    name = os.fspath(directory)
    if not os.path.isdir(name):
        raise SplatpixError(f"{name}: no such directory")
    files = sorted(p for p in Path(name).glob("*.json") if p.is_file())
    if not files:
        raise SplatpixError(f"{name}: no *.json RD curve files in the directory")
    curves: dict[str, RDCurve] = {}
    origin: dict[str, Path] = {}
    for p in files:
        curve = load_curve(p)
        if curve.name in curves:
            raise SplatpixError(f"{p}: curve name {curve.name!r} is already used by {origin[curve.name]}")
        curve.published = True
        curves[curve.name] = curve
        origin[curve.name] = p
    return curves


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def _is_number_list(v: object) -> bool:
    return isinstance(v, list) and all(is_real(x) for x in v)


def _numbers(values: object, key: str) -> list[float]:
    """``values`` as a list of finite floats, or :class:`SplatpixError` naming ``key``."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, list | tuple):
        raise SplatpixError(f"{key} must be a list of numbers, got {type(values).__name__}")
    out: list[float] = []
    for i, v in enumerate(values):
        if not is_real(v):
            raise SplatpixError(f"{key}[{i}] is not a number ({v!r})")
        f = float(v)
        if not math.isfinite(f):
            raise SplatpixError(f"{key}[{i}] is not finite ({v!r})")
        out.append(f)
    return out


def _curve_from_dict(data: object, default_name: str) -> RDCurve:
    if not isinstance(data, dict):
        raise SplatpixError(f"expected a JSON object with 'name' and 'results', got a JSON {_json_type(data)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise SplatpixError(f"'name' must be a non-empty string, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise SplatpixError(f"'description' must be a string, got a JSON {_json_type(description)}")
    results = data.get("results")
    if results is None:
        raise SplatpixError("no 'results' object")
    if not isinstance(results, dict):
        raise SplatpixError(f"'results' must be a JSON object, got a JSON {_json_type(results)}")
    if "bpp" not in results:
        raise SplatpixError("results has no 'bpp' list")
    psnr_key = next((k for k in _PSNR_KEYS if k in results), None)
    if psnr_key is None:
        raise SplatpixError("results has no 'psnr-rgb' (or 'psnr') list")
    ms_key = next((k for k in _MSSSIM_KEYS if k in results), None)

    # Every list in results must be numeric, with one entry per rate point.
    lists: dict[str, list[float]] = {}
    for key, values in results.items():
        if isinstance(values, list) or key in ("bpp", psnr_key, ms_key):
            lists[key] = _numbers(values, f"results[{key!r}]")
    n = len(lists["bpp"])
    for key, values in lists.items():
        if len(values) != n:
            raise SplatpixError(f"results[{key!r}] has {len(values)} values but results['bpp'] has {n}")
    return RDCurve(
        name=name,
        description=description,
        bpp=lists["bpp"],
        psnr=lists[psnr_key],
        ms_ssim=lists[ms_key] if ms_key is not None else None,
        raw=data,
    )


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    return "number"
