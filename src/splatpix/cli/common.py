"""What every ``splatpix`` command shares: exit codes, argument types, output checks, the render size."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..errors import SplatpixError

__all__ = ["EXIT_DIVERGED", "EXIT_ERROR", "EXIT_INTERNAL", "add_budget", "add_common", "byte_size", "check_outputs",
           "check_pairs", "diverged", "option", "output_size", "plain", "positive_float", "positive_int",
           "report_path_ok", "size", "window", "write_json", "write_render"]

EXIT_ERROR = 2
"""A user error (bad input, bad option, a limit): one line on stderr."""
EXIT_DIVERGED = 3
"""Training diverged; the last good state was written."""
EXIT_INTERNAL = 1
"""An unexpected exception (a bug): one line asking for a report."""

DEFAULT_MAX_PAIRS = 2e10
"""The default work budget of a render, in estimated (pixel, Gaussian) pairs: at the numba forward's measured rate
(about 2.4e8 pairs per second on 2 cores, docs/results.md "Rasteriser kernel") one to one and a half minutes."""
BAND_BYTES = 256 << 20
"""Whole-frame renders whose buffers exceed this are rendered in bands (PNG outputs)."""


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return v


def size(text: str) -> tuple[int | None, int | None]:
    """``WxH`` -> (height, width); ``W`` (or ``Wx``) and ``xH`` give one side, the other keeps the aspect ratio
    (``None`` here, filled in by :func:`output_size`)."""
    parts = text.lower().split("x")
    try:
        if len(parts) == 1:
            parts.append("")
        if len(parts) != 2 or not (parts[0] or parts[1]):
            raise ValueError
        w, h = (int(t) if t else None for t in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 768x512 (WxH), 768 or x512 (the other side keeps the "
                                         f"aspect ratio), got {text!r}") from None
    if (w is not None and w <= 0) or (h is not None and h <= 0):
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def full_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (height, width), both sides required (sizes stored in specs and scenes)."""
    h, w = size(text)
    if h is None or w is None:
        raise argparse.ArgumentTypeError(f"size must give both sides, WxH (e.g. 768x512), got {text!r}")
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


def plain(doc: str | None) -> str:
    """A docstring as help text: Sphinx roles and double back-quotes removed (``:mod:`x``` and ````x```` -> ``x``)."""
    import re

    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", doc or "")
    return text.replace("``", "").replace("::\n", "\n")


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
        u0, v0, u1, v1 = crop if crop is not None else (0.0, 0.0, 1.0, 1.0)
        aspect = (w0 * (u1 - u0)) / (h0 * (v1 - v0))  # of the region shown, in pixels
        if height is None:
            height = max(1, round(width / aspect))
        elif width is None:
            width = max(1, round(height * aspect))
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


def byte_size(text: str) -> int:
    """``4G``, ``512M``, ``64K`` or a plain number of bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    try:
        v = float(t[:-1] if scale > 1 else t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 4G, 512M or 1000000, got {text!r}") from None
    if not v >= 1 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive size, got {text!r}")
    return int(v)


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:.0f} bytes"


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def add_budget(p: argparse.ArgumentParser, *, gaussians: bool = True) -> None:
    """The decode budget of commands that read untrusted files: ``--max-gaussians`` (``.spix`` readers),
    ``--max-memory`` and ``--max-pairs`` (the work of a render)."""
    from ..codec.bitstream import DEFAULT_MAX_GAUSSIANS
    from ..codec.decoding import DEFAULT_MAX_MEMORY

    if gaussians:
        p.add_argument("--max-gaussians", type=positive_int, default=DEFAULT_MAX_GAUSSIANS,
                       help="refuse files that declare more Gaussians (default %(default)s)")
    p.add_argument("--max-memory", type=byte_size, default=DEFAULT_MAX_MEMORY,
                   help="memory budget of the decode and of a whole-frame render, e.g. 4G (default 2G); larger PNG "
                        "outputs are rendered and written in bands")
    p.add_argument("--max-pairs", type=positive_float, default=DEFAULT_MAX_PAIRS,
                   help="work budget of a render: (pixel, Gaussian) pairs, estimated before rendering from each "
                        "Gaussian's 3-sigma box (default %(default).0e)")


def write_render(render_window: Any, channels: int, height: int, width: int,
                 window: tuple[float, float, float, float] | None, out_path: str, bits: int,
                 args: argparse.Namespace) -> None:
    """Render ``render_window(rows, width, window)`` to ``out_path``: as one frame when its buffers fit
    ``--max-memory`` (and it is under the band size), else, for a PNG, in bands written as they are made."""
    from ..io import PngStreamWriter, save_image
    from ..render.bands import BYTES_PER_SAMPLE, band_rows, band_windows

    budget = getattr(args, "max_memory", None) or (2 << 30)
    frame = height * width * channels * BYTES_PER_SAMPLE
    is_png = os.path.splitext(out_path)[1].lower() == ".png"
    if frame <= min(budget, BAND_BYTES) or not is_png:
        if frame > budget:
            raise SplatpixError(f"{out_path}: a {width}x{height} render needs about {human_bytes(frame)}, over the "
                                f"memory budget of {human_bytes(budget)} (--max-memory); a .png output is written in "
                                "bands")
        save_image(render_window(height, width, window), out_path, bits=bits)
        return
    # a band holds half the budget: the allocator and the PNG compressor keep some memory of the previous band
    rows = band_rows(width, max(1, min(budget, BAND_BYTES) // (2 * channels * BYTES_PER_SAMPLE)))
    with PngStreamWriter(out_path, width, height, channels, bits) as writer:
        for n_rows, win in band_windows(height, rows, window):
            writer.write(render_window(n_rows, width, win))


def start_engine(choice: str = "auto") -> None:
    """Select the decode path's engine for a one-shot command: ``"numba"``, ``"numpy"``, or ``"auto"``: numpy unless
    numba is loaded already (it costs ~0.7 s to load; parsing a file with numpy takes milliseconds); the render may
    switch to numba (:func:`render_engine`)."""
    from .. import jit

    jit.set_engine(("numba" if jit.numba_loaded() else "numpy") if choice == "auto" else choice)


def render_engine(choice: str, pairs: float) -> None:
    """For ``"auto"``: render with numba when the estimated ``pairs`` make it faster than numpy even with its
    start-up (:data:`splatpix.render.vectorised.ONE_SHOT_PAIRS`)."""
    from .. import jit
    from ..render.vectorised import ONE_SHOT_PAIRS

    if choice == "auto" and pairs > ONE_SHOT_PAIRS:
        jit.set_engine("numba")


def add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("auto", "numba", "numpy"), default="auto",
                   help="numba kernels or numpy (no numba: it costs ~0.7 s to load); auto: numpy unless the render is "
                   "large (default %(default)s)")


def add_ellipses(p: argparse.ArgumentParser, *, tier: bool = False) -> None:
    choices = ("size", "tier", "white") if tier else ("size", "white")
    p.add_argument("--ellipses", nargs="?", const="size", choices=choices, default=None,
                   help="draw each Gaussian's 1-sigma ellipse over the image, coloured by size (the default; blue "
                   "small, red large)" + (", by sga covariance tier" if tier else "") + " or white")


def write_ellipses(render_window: Any, g: Any, height: int, width: int, window: Any, out_path: str,
                   colouring: str, args: argparse.Namespace, tiers: Any = None) -> None:
    """The render with the Gaussians' 1-sigma ellipses over it (:mod:`splatpix.render.overlay`), as one frame (the
    memory budget applies), 8-bit RGB."""
    import numpy as np

    from ..io import save_image
    from ..render.bands import BYTES_PER_SAMPLE
    from ..render.overlay import draw_ellipses, ellipse_colours

    budget = getattr(args, "max_memory", None) or (2 << 30)
    if height * width * 4 * BYTES_PER_SAMPLE > budget:
        raise SplatpixError(f"{out_path}: a {width}x{height} render with ellipses needs about "
                            f"{human_bytes(height * width * 4 * BYTES_PER_SAMPLE)}, over the memory budget of "
                            f"{human_bytes(budget)} (--max-memory)")
    img = np.asarray(render_window(height, width, window), dtype=np.float64)
    rgb = img[:3] if img.shape[0] >= 3 else np.repeat(img[:1], 3, axis=0)
    rgb8 = np.round(np.clip(np.nan_to_num(rgb), 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    try:
        colours = ellipse_colours(g, colouring, tiers)
    except ValueError as e:
        raise SplatpixError(str(e)) from None
    out = draw_ellipses(rgb8, g, colours, window)
    save_image(out.transpose(2, 0, 1).astype(np.float64) / 255.0, out_path)


def add_compare(p: argparse.ArgumentParser, *, reference: bool = False, classical: bool = False) -> None:
    what = "the original | the result | its error map" + (" | JPEG and WebP at the same bytes" if classical else "")
    p.add_argument("--compare", metavar="OUT.png", help=f"also write a comparison picture: {what}")
    if reference:
        p.add_argument("--reference", metavar="IMAGE", help="the original image, for --compare")


def write_compare(path: str, original: Any, result: Any, caption: str,
                  classical: list[dict[str, Any]] | None = None) -> None:
    """The comparison picture of ``--compare`` (:mod:`splatpix.eval.compare`): original, result (``caption``), error
    map, then each of ``classical`` (:func:`~splatpix.eval.compare.classical_at_bytes`)."""
    import numpy as np

    from ..eval.compare import ERROR_GAIN, compare_image, error_map, to_rgb8
    from ..io import save_image

    ref, res = to_rgb8(original), to_rgb8(result)
    if ref.shape != res.shape:
        raise SplatpixError(f"--compare: the result is {res.shape[1]}x{res.shape[0]}, the original "
                            f"{ref.shape[1]}x{ref.shape[0]}: compare at the native size")
    panels = [(f"original {ref.shape[1]}x{ref.shape[0]}", ref), (caption, res),
              (f"|error| x{ERROR_GAIN:g}", error_map(res, ref))]
    for c in classical or []:
        panels.append((f"{c['codec'].upper()}: {c['psnr']:.2f} dB, {c['bpp']:.3f} bpp", c["image"]))
    save_image(compare_image(panels).transpose(2, 0, 1).astype(np.float64) / 255.0, path)


def check_pairs(pairs: float, args: argparse.Namespace, source: str) -> None:
    """Refuse a render whose estimated pairs exceed ``--max-pairs``."""
    budget = getattr(args, "max_pairs", None) or DEFAULT_MAX_PAIRS
    if pairs > budget:
        raise SplatpixError(f"{source}: this render needs about {pairs:.2g} (pixel, Gaussian) pairs, over the work "
                            f"budget of {budget:.2g} (--max-pairs)")
