"""What every ``splatpix`` command shares: exit codes, argument types, output checks, the render size."""

from __future__ import annotations

import argparse
import json
import os

from ..errors import SplatpixError

__all__ = ["EXIT_DIVERGED", "EXIT_ERROR", "EXIT_INTERNAL", "add_common", "check_outputs", "diverged", "option",
           "output_size", "positive_float", "report_path_ok", "size", "window", "write_json"]

EXIT_ERROR = 2
"""A user error (bad input, bad option, a limit): one line on stderr."""
EXIT_DIVERGED = 3
"""Training diverged; the last good state was written."""
EXIT_INTERNAL = 1
"""An unexpected exception (a bug): one line asking for a report."""


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return v


def size(text: str) -> tuple[int, int]:
    """``WxH`` -> (height, width)."""
    try:
        w, h = (int(t) for t in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 768x512 (WxH), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def window(text: str) -> tuple[float, float, float, float]:
    try:
        u0, v0, u1, v1 = (float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"crop must be four normalised numbers u0,v0,u1,v1 (e.g. 0.25,0.25,0.75,0.75), got {text!r}"
        ) from None
    if not (u1 > u0 and v1 > v0):
        raise argparse.ArgumentTypeError(f"crop needs u1 > u0 and v1 > v0, got {text!r}")
    return u0, v0, u1, v1


def option(name: str) -> str:
    """The command-line spelling of an option's destination name."""
    return "--" + name.replace("_", "-")


def report_path_ok(report: str | None, *inputs: str) -> None:
    from ..io import check_not_input

    if report:
        check_not_input(report, *inputs)


def check_outputs(outputs: list[str | None], inputs: list[str | None]) -> None:
    """Refuse an output that is one of the inputs, or two outputs at the same path."""
    from ..io import check_not_input

    outs = [o for o in outputs if o]
    for o in outs:
        check_not_input(o, *inputs)
    for i, a in enumerate(outs):
        for b in outs[i + 1:]:
            if os.path.realpath(a) == os.path.realpath(b):
                raise SplatpixError(f"{a}: the same path is given for two outputs")


def write_json(path: str, data: dict) -> None:
    from ..io import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, allow_nan=False)
        f.write("\n")


def diverged(message: str) -> SplatpixError:
    """The one-line error of a run whose training diverged (its last good state already written): exit status 3."""
    err = SplatpixError(message)
    err.exit_code = EXIT_DIVERGED  # type: ignore[attr-defined]
    return err


def output_size(h0: int, w0: int, args: argparse.Namespace) -> tuple[int, int]:
    """Output (height, width) of a render from ``--size`` / ``--scale`` / ``--crop`` and the native size, checked
    against ``--max-pixels``."""
    height = width = None
    crop = getattr(args, "crop", None)
    if args.size is not None:
        height, width = args.size
    scale = args.scale
    if height is None and scale is None and crop is not None:
        scale = 1.0
    if scale is not None:
        u0, v0, u1, v1 = crop if crop is not None else (0.0, 0.0, 1.0, 1.0)
        height = max(1, round(h0 * scale * (v1 - v0)))
        width = max(1, round(w0 * scale * (u1 - u0)))
    height = h0 if height is None else height
    width = w0 if width is None else width
    if height * width > args.max_pixels:
        raise SplatpixError(f"output {width}x{height} exceeds the pixel limit {args.max_pixels} (--max-pixels)")
    return height, width


def add_common(p: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--max-pixels``, which every command that renders or loads images takes."""
    from ..io import DEFAULT_MAX_PIXELS

    p.add_argument("--backend", choices=("auto", "numba", "reference"), default="auto", help="rasteriser backend")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse images (and renders) with more pixels than this (default %(default)s)")
