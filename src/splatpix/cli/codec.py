"""``splatpix encode`` and ``splatpix decode``: images to ``.spix`` files and back."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from ..errors import SplatpixError
from .common import (
    add_budget,
    add_common,
    add_compare,
    add_ellipses,
    add_engine,
    check_outputs,
    check_pairs,
    diverged,
    output_size,
    positive_float,
    render_engine,
    report_path_ok,
    size,
    start_engine,
    window,
    write_compare,
    write_ellipses,
    write_json,
    write_render,
)
from .options import add_codec_options, add_fit_options, codec_options

__all__ = ["add_parsers", "cmd_decode", "cmd_encode", "encode_settings"]


def encode_settings(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The fit config, QAT config and method options ``splatpix encode`` runs with (those of
    :func:`splatpix.codec.api.encode_configs` for the command line's preset, method and options)."""
    from ..codec.api import encode_configs

    return encode_configs(args.method, args.preset, codec_options(args, args.method))


def _encode(args: argparse.Namespace):
    from ..codec.api import encode, encode_at_bpp
    from ..io import load_image

    fit_cfg, qat_cfg, opts = encode_settings(args)
    image = load_image(args.image, max_pixels=args.max_pixels)
    kw = {"method": args.method, "fit_config": fit_cfg, "qat_config": qat_cfg, "options": opts,
          "fixed_length": args.fixed_length, "progress": not args.quiet}
    if args.gaussians is not None:
        return encode(image, args.gaussians, **kw)

    def trial(res: Any) -> None:  # each search step, as it ends (the progress bars are per step)
        r = res.report
        print(f"{args.image}: trial N = {r['n_gaussians']}: {r['bpp']:.4f} bpp, PSNR {r['psnr']:.2f} dB, "
              f"{r['encode_seconds']:.1f} s (target {args.bpp:g} bpp)", flush=True)

    return encode_at_bpp(image, args.bpp, on_trial=trial, **kw)


def cmd_encode(args: argparse.Namespace) -> int:
    from ..codec.api import EncodeDiverged
    from ..io import atomic_write_bytes

    if (args.gaussians is None) == (args.bpp is None):
        raise SplatpixError("give exactly one of --gaussians N or --bpp B")
    if args.gaussians is not None and args.gaussians <= 0:
        raise SplatpixError(f"--gaussians must be positive, got {args.gaussians}")
    if args.bpp is not None and not args.bpp > 0:
        raise SplatpixError(f"--bpp must be positive, got {args.bpp}")
    check_outputs([args.output, args.compare], [args.image])
    report_path_ok(args.report, args.image)
    t0 = time.perf_counter()
    failure: EncodeDiverged | None = None
    try:
        res = _encode(args)
    except EncodeDiverged as e:  # write the last good state, then fail (nothing trained is lost)
        res, failure = e.result, e
    atomic_write_bytes(args.output, res.data)
    report = dict(res.report, image=str(args.image), output=str(args.output), method=args.method,
                  preset=args.preset, total_seconds=time.perf_counter() - t0)
    if os.path.getsize(args.output) != report["bytes"]:
        raise SplatpixError(f"{args.output}: written size differs from the encoded size")
    if args.compare:
        _encode_compare(args, res.data, report)
    if args.report:
        write_json(args.report, report)
    if failure is not None:
        raise diverged(f"{failure}; wrote that state to {args.output} ({report['bpp']:.4f} bpp, PSNR "
                       f"{report['psnr']:.2f} dB)")
    ms = report["ms_ssim"]
    print(f"{args.image}: {report['n_gaussians']} Gaussians, {report['bytes']} bytes = {report['bpp']:.4f} bpp, "
          f"PSNR {report['psnr']:.2f} dB" + (f", MS-SSIM {ms:.4f}" if ms is not None else "")
          + (f", {report['encode_seconds']:.1f} s" if "trials" not in report else
             f", best of {len(report['trials'])} trial{'s' if len(report['trials']) > 1 else ''}, "
             f"{report['total_seconds']:.1f} s in all")
          + f" -> {args.output}")
    return 0


def _encode_compare(args: argparse.Namespace, data: bytes, report: dict[str, Any]) -> None:
    """``encode --compare``: the original, the decoded file, its error map, JPEG and WebP at the same bytes; their
    numbers go into the report (``compare``)."""
    from ..codec.decoding import decode_bytes_arrays
    from ..eval.compare import classical_at_bytes
    from ..io import load_image
    from ..render.arrays import render_array

    image = load_image(args.image, max_pixels=args.max_pixels)
    decoded = render_array(decode_bytes_arrays(data), clamp=True)
    classical = classical_at_bytes(image, len(data)) if image.shape[0] == 3 else []
    report["compare"] = [{k: c[k] for k in ("codec", "bytes", "bpp", "psnr")} for c in classical]
    write_compare(args.compare, image, decoded, f"splatpix {args.method}: {report['psnr']:.2f} dB, "
                  f"{report['bpp']:.3f} bpp", classical)


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode with numpy (and the numba kernels for a large render): no torch (docs/architecture.md, "The decode
    path")."""
    from ..codec.bitstream import read_spix_file
    from ..codec.decoding import dequantize_arrays, unpack
    from ..jit import engine
    from ..render.arrays import render_array
    from ..render.bands import estimated_pairs

    check_outputs([args.output, args.compare], [args.input, args.reference])
    if bool(args.compare) != bool(args.reference):
        raise SplatpixError("decode --compare needs --reference IMAGE (the original), and --reference needs --compare")
    t0 = time.perf_counter()
    start_engine(args.engine)
    limits = {"max_pixels": args.max_pixels, "max_gaussians": args.max_gaussians}
    read_spix_file(args.input, **limits)  # size-capped read + container checks
    data = Path(args.input).read_bytes()
    q, _ = unpack(data, source=args.input, max_memory=args.max_memory, **limits)
    g = dequantize_arrays(q, args.input)
    height, width = output_size(*g.size, args)
    pairs = estimated_pairs(g, height, width, args.crop)
    check_pairs(pairs, args, args.input)
    render_engine(args.engine, pairs)

    def band(h: int, w: int, win: Any) -> Any:
        return render_array(g, h, w, window=win, clamp=True)

    if args.ellipses:
        write_ellipses(band, g, height, width, args.crop, args.output, args.ellipses, args, getattr(q, "tiers", None))
    else:
        write_render(band, g.channels, height, width, args.crop, args.output, 8, args)
    print(f"{args.input}: decoded {width}x{height} in {1e3 * (time.perf_counter() - t0):.1f} ms ({engine()}) -> "
          f"{args.output}")
    if args.compare:  # loading and scoring the reference imports torch (the decode itself does not)
        import torch

        from ..io import load_image
        from ..metrics import psnr

        ref = load_image(args.reference, max_pixels=args.max_pixels)
        if tuple(ref.shape[1:]) != tuple(g.size) or ref.shape[0] != g.channels:
            raise SplatpixError(f"{args.reference}: {ref.shape[2]}x{ref.shape[1]}, {ref.shape[0]} channels; the file "
                                f"holds a {g.size[1]}x{g.size[0]} image of {g.channels} channels")
        out = render_array(g, clamp=True)
        write_compare(args.compare, ref, out, f"decoded: {psnr(torch.from_numpy(out), ref):.2f} dB, "
                      f"{8 * len(data) / (g.size[0] * g.size[1]):.3f} bpp")
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``encode`` and ``decode`` to an ``argparse`` subparsers object."""
    from ..codec import registry
    from ..presets import DEFAULT_CODEC_METHOD

    p = sub.add_parser("encode", help="compress an image to a .spix file (fit + QAT + entropy coding)")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True, help=".spix file to write")
    p.add_argument("--method", choices=registry.names(), default=DEFAULT_CODEC_METHOD,
                   help="; ".join(f"{m}: {registry.get(m).summary}" for m in registry.names())
                   + " (default %(default)s)")
    p.add_argument("-n", "--gaussians", type=int, default=None, help="number of Gaussians")
    p.add_argument("--bpp", type=float, help="target rate: N is searched (up to 3 encodes)")
    p.add_argument("--report", help="JSON report: bpp, bytes, psnr, ms_ssim, encode_seconds, n_gaussians, ...")
    p.add_argument("--fixed-length", action="store_true",
                   help="GaussianImage's fixed-length symbols (no entropy coding)")
    add_codec_options(p)
    add_fit_options(p, codec=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_compare(p, classical=True)
    add_common(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="decode a .spix file to an image, at any size")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scale", type=positive_float)
    g.add_argument("--size", type=size, help="WxH, or W or xH (the other side keeps the aspect ratio)")
    p.add_argument("--crop", type=window, help="normalised window u0,v0,u1,v1 to decode (default: the whole image)")
    add_ellipses(p, tier=True)
    add_compare(p, reference=True)
    add_engine(p)
    add_common(p)
    add_budget(p)
    p.set_defaults(func=cmd_decode)
