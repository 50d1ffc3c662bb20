"""``splatpix eval rd|bdrate|plot`` (rate-distortion evaluation) and ``splatpix bench kernel``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import SplatpixError
from .batch import add_ray_options, ray_address
from .common import report_path_ok, write_json
from .options import add_codec_options, add_fit_options, codec_options

__all__ = ["add_parsers", "cmd_bench_kernel", "cmd_eval_bdrate", "cmd_eval_plot", "cmd_eval_rd"]


def cmd_bench_kernel(args: argparse.Namespace) -> int:
    from ..eval.kernel import bench_kernel

    if args.json:
        report_path_ok(args.json)
    backends = tuple(args.backends.split(","))
    for b in backends:
        if b not in ("numba", "reference"):
            raise SplatpixError(f"unknown backend {b!r} in --backends (use numba,reference)")
    res = bench_kernel(sizes=tuple(args.sizes), height=args.height, width=args.width, backends=backends,
                       repeats=args.repeats, reference_repeats=args.reference_repeats,
                       progress=None if args.quiet else (lambda s: print(s, flush=True)))
    if args.json:
        write_json(args.json, res)
    for row in res["results"]:
        parts = [f"N={row['n_gaussians']:>7} pairs={row['pairs']:>9}"]
        for b in backends:
            parts.append(f"{b}: fwd {row[b]['forward_ms']:8.1f} ms bwd {row[b]['backward_ms']:8.1f} ms")
        if "speedup_numba_vs_reference" in row:
            parts.append(f"speed-up {row['speedup_numba_vs_reference']:.1f}x")
        print("  ".join(parts))
    return 0


def cmd_eval_rd(args: argparse.Namespace) -> int:
    from ..codec import registry
    from ..eval.bdrate import MIN_POINTS
    from ..eval.harness import run_rd

    if args.points is not None and len(args.points) < MIN_POINTS and not args.quiet:
        print(f"splatpix: note: {len(args.points)} points; a BD-rate (eval bdrate) needs at least {MIN_POINTS} per "
              "curve", file=sys.stderr)
    options = None
    if args.method in registry.names():
        options = {"preset": args.preset, **codec_options(args, args.method)}
        if args.compare:
            options["compare_dir"] = str(Path(args.compare) / (args.label or args.method))
    elif args.compare:
        raise SplatpixError("--compare applies to the Gaussian codecs (a classical codec's pictures are its own files)")
    label = args.label or args.method
    address = ray_address(args)
    if address is not None and args.jobs > 1:
        raise SplatpixError("--jobs runs local processes; with --ray, Ray schedules the tasks (--threads CPUs each)")
    curve = run_rd(args.images, args.method, args.out, points=args.points, jobs=args.jobs, limit=args.limit,
                   options=options, label=label, bar=not args.quiet, ray=address, threads=args.threads,
                   retries=args.retries)
    for b, p in zip(curve.bpp, curve.psnr, strict=True):
        print(f"{label}: {b:.4f} bpp  {p:.2f} dB")
    print(f"mean curve -> {Path(args.out) / (label + '.json')}")
    return 0


def cmd_eval_bdrate(args: argparse.Namespace) -> int:
    import warnings

    from ..eval.bdrate import bd_psnr, bd_rate
    from ..eval.rd import load_curve

    anchor, test = load_curve(args.anchor), load_curve(args.test)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            r = bd_rate(anchor.bpp, anchor.psnr, test.bpp, test.psnr, method=args.interpolation)
            d = bd_psnr(anchor.bpp, anchor.psnr, test.bpp, test.psnr, method=args.interpolation)
        except ValueError as e:
            raise SplatpixError(str(e)) from e
    print(f"BD-rate of {test.name} vs {anchor.name} ({args.interpolation}): {r:+.2f} %   BD-PSNR: {d:+.3f} dB")
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)):
        print(f"splatpix: note: {message}", file=sys.stderr)  # one line each, not Python's warning with its source
    return 0


def cmd_eval_plot(args: argparse.Namespace) -> int:
    from ..eval.plots import plot_rd
    from ..eval.rd import load_curve, load_published

    curves = {}
    for f in args.curves:
        c = load_curve(f)
        curves[c.name] = c
    if args.published:
        for name, c in load_published(args.published).items():
            curves.setdefault(f"{name} (published)", c)
    plot_rd(curves, args.output, metric=args.metric, title=args.title)
    print(f"wrote {args.output}")
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``bench`` and ``eval`` to an ``argparse`` subparsers object."""
    from ..codec import registry
    from ..eval.baselines import CODECS
    from ..presets import RD_BPP_POINTS, RD_N_POINTS

    p = sub.add_parser("bench", help="benchmarks")
    bsub = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    b = bsub.add_parser("kernel", help="forward/backward time of each rasteriser backend")
    b.add_argument("--json", help="write results as JSON")
    b.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    b.add_argument("--height", type=int, default=512)
    b.add_argument("--width", type=int, default=768)
    b.add_argument("--backends", default="numba,reference")
    b.add_argument("--repeats", type=int, default=7)
    b.add_argument("--reference-repeats", type=int, default=1)
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_bench_kernel)

    p = sub.add_parser("eval", help="rate-distortion evaluation")
    esub = p.add_subparsers(dest="eval", required=True, metavar="EVAL")
    e = esub.add_parser("rd", help="run a method over a folder of images at several rate points (resumable)")
    e.add_argument("--images", required=True, help="folder of images")
    e.add_argument("--method", required=True,
                   help=f"a codec method ({', '.join(registry.names())}) or a classical codec ({', '.join(CODECS)})")
    e.add_argument("--points", type=float, nargs="+",
                   help="numbers of Gaussians (codec methods; default " + " ".join(map(str, RD_N_POINTS)) + ") or "
                        "target bpp values (classical codecs; default GaussianImage's rates "
                        + " ".join(map(str, RD_BPP_POINTS)) + ")")
    e.add_argument("--label", help="name of the run: its folder and curve file (default: the method), for ablations")
    add_codec_options(e)
    add_fit_options(e, codec=True)
    e.add_argument("--out", required=True, help="output folder (per-image JSON and the mean curve)")
    e.add_argument("--jobs", type=int, default=1, help="worker processes")
    add_ray_options(e)
    e.add_argument("--compare", metavar="DIR", help="also write, per image and point, DIR/LABEL/IMAGE_nN.png: the "
                   "original | the decoded file | its error map | JPEG and WebP at the same bytes")
    e.add_argument("--limit", type=int, help="use only the first K images (sorted by name)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval_rd)
    e = esub.add_parser("bdrate", help="Bjontegaard delta rate between two CompressAI-format curves")
    e.add_argument("anchor")
    e.add_argument("test")
    e.add_argument("--interpolation", choices=("akima", "pchip", "cubic"), default="akima")
    e.set_defaults(func=cmd_eval_bdrate)
    e = esub.add_parser("plot", help="plot RD curves (and published ones) to a PNG")
    e.add_argument("curves", nargs="*", help="CompressAI-format curve files")
    e.add_argument("--published", help="folder of published curves (e.g. ../shared/reference/rd/kodak)")
    e.add_argument("--metric", choices=("psnr", "ms-ssim", "ms-ssim-db"), default="psnr")
    e.add_argument("--title")
    e.add_argument("-o", "--output", required=True)
    e.set_defaults(func=cmd_eval_plot)
