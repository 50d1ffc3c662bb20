"""The ``splatpix edit`` and ``splatpix animate`` subcommands (wired into :mod:`splatpix.cli` by ``add_parsers``).

::

    splatpix edit MODEL --op OP [op options] [--region SPEC] [--feather PX] [--no-cov-transform]
                  [--background original|IMAGE|#rrggbb] [--object-only] [--size WxH] -o OUT.png
                  [--save-model OUT.safetensors]
    splatpix edit MODEL --spec EDITS.yaml [--time T] ... -o OUT.png
    splatpix animate MODEL SPEC.yaml -o OUT.mp4|OUT.gif|OUTDIR/ [--quiet]

``--op`` takes one operation with its options (``--angle``, ``--centre u,v``, ...; units of
:mod:`splatpix.edit.ops`: positions normalised, lengths in fractions of the shorter side, angles in degrees). A
composed edit is a spec file (:mod:`splatpix.edit.spec`, the animation format without timing), evaluated at
``--time`` (default 0). Command-line ``--region``/``--feather``/``--background``/``--size``/``--object-only``/
``--no-cov-transform`` override the spec's. The model kind (GaussianImage or GaINeR) is read from the file.
Errors are :class:`~splatpix.errors.SplatpixError`; outputs are written atomically and never over an input.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

from ..errors import SplatpixError
from .common import check_outputs, full_size, option, plain

__all__ = ["EDIT_OPTIONS", "add_parsers", "cmd_animate", "cmd_edit", "load_any_model", "save_any_model"]

# op parameter -> (command-line option, parser); parameters of splatpix.edit.ops
EDIT_OPTIONS: dict[str, str] = {
    "angle": "number", "centre": "vec2", "offset": "vec2", "factor": "number_or_vec2", "axis": "number",
    "radius": "number", "amplitude": "number", "wavelength": "number", "phase": "number", "mode": "string",
    "gap": "number", "slide": "number", "image": "string", "max_displacement": "number", "strength": "number",
}


def _numbers(text: str) -> float | tuple[float, ...]:
    try:
        vals = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or numbers separated by commas, got {text!r}") from None
    return vals[0] if len(vals) == 1 else vals


def load_any_model(path: str) -> Any:
    """A :class:`~splatpix.model.gaussians.Gaussians` model or a :class:`~splatpix.gainer.field.GainerField`, by the
    file's format (``peek_format``)."""
    from ..gainer.io import GAINER_FORMAT
    from ..model.container import peek_format

    if peek_format(path) == GAINER_FORMAT:
        from ..gainer.io import load_gainer

        return load_gainer(path)
    from ..model.files import load_model

    return load_model(path)


def save_any_model(model: Any, path: str, extra: dict | None = None) -> None:
    from ..edit.apply import model_kind

    if model_kind(model) == "gainer":
        from ..gainer.io import save_gainer

        save_gainer(model, path, extra)
    else:
        from ..model.files import save_model

        save_model(model, path, extra)


def _input_files(args: argparse.Namespace) -> list[str | None]:
    files: list[str | None] = [args.model, getattr(args, "spec", None), getattr(args, "image", None)]
    region, background = getattr(args, "region", None), getattr(args, "background", None)
    if region and region.strip().startswith("mask:"):
        files.append(region.strip()[5:].strip())
    if background and background.strip() != "original" and not background.strip().startswith("#"):
        files.append(background.strip())
    return files


def _cli_spec(args: argparse.Namespace) -> Any:
    """An :class:`~splatpix.edit.spec.EditSpec` from ``--spec`` or from ``--op`` and its options."""
    from ..edit.ops import OPS
    from ..edit.spec import EditSpec, EditTrack, load_spec

    given = {k: getattr(args, k) for k in EDIT_OPTIONS if getattr(args, k, None) is not None}
    if args.spec is not None:
        if args.op is not None or given:
            extra = "--op" if args.op is not None else option(next(iter(given)))
            raise SplatpixError(f"{extra} cannot be combined with --spec (put the edits in the spec)")
        return load_spec(args.spec, timing=False)
    if args.op is None:
        raise SplatpixError("give an edit: --op OP (with its options) or --spec EDITS.yaml")
    schema = OPS[args.op]
    for k in given:
        if k not in schema:
            raise SplatpixError(f"{option(k)} does not apply to --op {args.op} (its options: "
                                f"{', '.join(option(n) for n in schema)})")
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in given.items()}
    return EditSpec([EditTrack(args.op, params, "linear", None, f"--op {args.op}", option)])


def _apply_overrides(spec: Any, args: argparse.Namespace) -> None:
    from ..edit.region import parse_region

    if args.feather is not None and args.region is None and spec.region is None:
        raise SplatpixError("--feather needs a region (--region SPEC)")
    if args.region is not None:
        spec.region = parse_region(args.region, args.feather or 0.0)
    elif args.feather is not None:
        spec.region.feather = parse_region("all", args.feather).feather  # validated like --region's
    if args.background is not None:
        spec.background = args.background
    if args.size is not None:
        spec.size = args.size
    if args.object_only:
        spec.object_only = True
    if args.no_cov_transform:
        spec.transform_covariance = False


def cmd_edit(args: argparse.Namespace) -> int:
    from ..edit.animate import default_background, render_at
    from ..edit.apply import apply_edit, gaussian_selection
    from ..edit.composite import resolve_background
    from ..io import save_image

    check_outputs([args.output, args.save_model], _input_files(args))
    if not math.isfinite(args.time):
        raise SplatpixError(f"--time must be a finite number of seconds, got {args.time}")
    if args.save_model and os.path.splitext(args.save_model)[1].lower() in (".png", ".jpg", ".jpeg", ".webp"):
        raise SplatpixError(f"{args.save_model}: --save-model writes a model file (.safetensors), not an image")
    spec = _cli_spec(args)
    _apply_overrides(spec, args)
    model = load_any_model(args.model)
    spec.check(model.size)
    h, w = spec.size if spec.size is not None else model.size
    t0 = time.perf_counter()
    bg = resolve_background(spec.background or default_background(spec), model, h, w, spec.base_dir)
    sel = gaussian_selection(model, spec.region) if spec.object_only and spec.region is not None else None
    img = render_at(model, spec, float(args.time), h, w, bg, sel)
    seconds = time.perf_counter() - t0
    save_image(img, args.output)
    if args.save_model:
        edited = apply_edit(model, spec.steps_at(float(args.time), model.size), spec.region,
                            spec.transform_covariance)
        save_any_model(edited, args.save_model)
    ops = ", ".join(t.op for t in spec.edits)
    saved = f" and {args.save_model}" if args.save_model else ""
    print(f"{args.model}: {ops} edited and rendered {w}x{h} in {seconds:.2f} s -> {args.output}{saved}")
    return 0


def cmd_animate(args: argparse.Namespace) -> int:
    from ..edit.animate import animate
    from ..edit.spec import load_spec

    check_outputs([args.output], [args.model, args.spec])
    spec = load_spec(args.spec, timing=True)
    model = load_any_model(args.model)
    report = animate(model, spec, args.output, progress=not args.quiet)
    print(f"{args.model}: {report['frames']} frames {report['width']}x{report['height']} at {report['fps']:g} fps "
          f"in {report['seconds']:.1f} s -> {args.output}")
    return 0


def _add_op_options(p: argparse.ArgumentParser) -> None:
    from ..edit.ops import OPS

    g = p.add_argument_group("operation (--op) options; units: positions normalised u,v, lengths in fractions of "
                             "the shorter side, angles in degrees counter-clockwise")
    g.add_argument("--op", choices=tuple(OPS), help="the operation")
    helps = {
        "angle": "rotate/twist/bend: angle in degrees", "centre": "centre u,v (default 0.5,0.5)",
        "offset": "translate: du,dv (fractions of the width and height)",
        "factor": "scale: f or fx,fy; stretch: f", "axis": "stretch/bend/wave/cut: direction in degrees",
        "radius": "twist: radius (default 0.5)", "amplitude": "wave: amplitude",
        "wavelength": "wave: wavelength (default 0.25)", "phase": "wave: phase in degrees",
        "mode": "wave: transverse (default) or longitudinal", "gap": "cut: gap between the two sides",
        "slide": "cut: slide of the sides along the cut", "image": "field: displacement image (R, G = dx, dy)",
        "max_displacement": "field: displacement of a channel value 0 or 1 (default 0.05)",
        "strength": "field/lattice: multiplier (default 1)",
    }
    for name, kind in EDIT_OPTIONS.items():
        typ = str if kind == "string" else _numbers
        metavar = "U,V" if kind == "vec2" else None
        g.add_argument(option(name), dest=name, type=typ, metavar=metavar, help=helps[name])


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", help="region: all | box:u0,v0,u1,v1 | polygon:u,v;u,v;u,v | ellipse:u,v,ru,rv | "
                                    "mask:PATH.png (normalised coordinates)")
    p.add_argument("--feather", type=float, help="soft border of the region, in native pixels (default 0)")
    p.add_argument("--no-cov-transform", action="store_true",
                   help="move the means only, keep the covariances (GaINeR's code)")
    p.add_argument("--background", help="original (the unedited model; the default with a region), an image path "
                                        "or #rrggbb (default #000000 without a region)")
    p.add_argument("--object-only", action="store_true", help="render only the region's Gaussians over the background")
    p.add_argument("--size", type=full_size, help="output size WxH (default: the model's native size)")


def add_parsers(sub: Any) -> None:
    """Add ``edit`` and ``animate`` to an ``argparse`` subparsers object; each sets ``func`` to its handler."""
    p = sub.add_parser("edit", help="deform a model (or a region of it) and render the result",
                       description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model file (.safetensors; Gaussian or GaINeR)")
    p.add_argument("-o", "--output", required=True, help="image to write (.png, .jpg)")
    p.add_argument("--spec", help="edit spec (YAML or JSON): a composed edit, instead of --op")
    p.add_argument("--time", type=float, default=0.0, help="time (seconds) at which the spec is evaluated")
    p.add_argument("--save-model", help="also save the edited model (.safetensors)")
    _add_op_options(p)
    _add_output_options(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("animate", help="render a keyframed edit spec to MP4, GIF or PNG frames")
    p.add_argument("model", help="model file (.safetensors; Gaussian or GaINeR)")
    p.add_argument("spec", help="animation spec (YAML or JSON)")
    p.add_argument("-o", "--output", required=True, help="OUT.mp4, OUT.gif or a folder OUTDIR/ of PNG frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_animate)
