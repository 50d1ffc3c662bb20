"""``splatpix batch encode|fit IN_DIR OUT_DIR``: a folder of images, on local processes or a Ray cluster
(:mod:`splatpix.batch`). Each takes the options of ``encode`` / ``fit`` (the per-image ones, ``-o``, ``--report``,
``--compare``, ... aside), copied from those commands' parsers so the two never drift apart."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import SplatpixError
from .common import positive_int

__all__ = ["add_parsers", "add_ray_options", "cmd_batch_encode", "cmd_batch_fit", "ray_address"]

# options of ``encode`` / ``fit`` that name one image's files, or that continue one image's run
_PER_IMAGE = ("image", "output", "report", "compare", "ply", "resume", "checkpoint", "checkpoint_every", "help")
# options that do not change the outputs (not kept in the manifest)
_NOT_SETTINGS = ("in_dir", "out_dir", "command", "batch", "func", "threads", "jobs", "ray", "retries", "quiet",
                 "limit", "gaussianimage_defaults", *_PER_IMAGE)


def add_ray_options(p: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and ``--retries N`` (``batch`` and ``eval rd``)."""
    from ..batch.runner import DEFAULT_RETRIES

    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the jobs as Ray tasks: on the cluster at ADDRESS (ray start --head's, or auto), or on a "
                   "local Ray instance started for the run; each task asks for --threads CPUs (default 1) "
                   "(pip install 'splatpix[ray]')")
    p.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                   help="resubmit a job whose worker died up to N times (default %(default)s)")


def ray_address(args: argparse.Namespace) -> str | None:
    """``--ray``'s address (``""``: a local instance; ``None``: no Ray), refusing a folder taken for an address."""
    address = getattr(args, "ray", None)
    if getattr(args, "out_dir", "") is None:  # batch's OUT_DIR (optional only so that this can be said)
        if address and os.path.isdir(address):
            raise SplatpixError(f"--ray took the folder {address!r} for its address: put --ray after the folders, or "
                                "write --ray=ADDRESS")
        raise SplatpixError("the following arguments are required: OUT_DIR")
    if address and os.path.isdir(address):
        raise SplatpixError(f"--ray took the folder {address!r} for its address: put --ray after the folders, or "
                            "write --ray=ADDRESS")
    if getattr(args, "retries", 0) < 0:
        raise SplatpixError(f"--retries must be 0 or more, got {args.retries}")
    if address is not None:
        from ..batch.executors import import_ray

        import_ray()
    return address


def _summary(kind: str, s: Any, quiet: bool) -> int:
    d = s.as_dict()
    psnr = f", mean PSNR {d['mean_psnr']:.2f} dB" if d["mean_psnr"] is not None else ""
    bpp = f", mean {d['mean_bpp']:.4f} bpp" if "mean_bpp" in d else ""
    print(f"batch {kind}: {d['finished']} of {d['images']} images finished ({d['ran'] - d['failed']} now, "
          f"{d['skipped']} earlier){psnr}{bpp}, {d['bytes']} bytes; {d['failed']} failed; "
          f"{d['wall_seconds']:.1f} s -> {s.manifest}")
    for name, message in s.diverged:
        print(f"splatpix: note: {_named(name, message)}", file=sys.stderr)
    for name, message in s.failed:
        print(f"splatpix: failed: {_named(name, message)}", file=sys.stderr)
    if s.failed:
        raise SplatpixError(f"{len(s.failed)} of {d['images']} images failed (first: {_named(*s.failed[0])}); the "
                            "manifest has each error; a re-run retries them")
    return 0


def _named(name: str, message: str) -> str:
    return message if message.startswith(name) else f"{name}: {message}"


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from ..batch.folder import fit_settings

    return fit_settings(args, _NOT_SETTINGS)


def cmd_batch_encode(args: argparse.Namespace) -> int:
    from ..batch.folder import executor_for, run_folder
    from ..batch.tasks import encode_image
    from .codec import encode_settings
    from .options import codec_options

    address = ray_address(args)
    if (args.gaussians is None) == (args.bpp is None):
        raise SplatpixError("give exactly one of --gaussians N or --bpp B")
    if args.gaussians is not None and args.gaussians <= 0:
        raise SplatpixError(f"--gaussians must be positive, got {args.gaussians}")
    if args.bpp is not None and not args.bpp > 0:
        raise SplatpixError(f"--bpp must be positive, got {args.bpp}")
    encode_settings(args)  # the options' errors now, not once per image
    task_options = {"method": args.method, "preset": args.preset, "options": codec_options(args, args.method),
                    "gaussians": args.gaussians, "bpp": args.bpp, "fixed_length": args.fixed_length,
                    "max_pixels": args.max_pixels}
    summary = run_folder("encode", args.in_dir, args.out_dir, encode_image, task_options, _settings(args),
                         executor_for(address, args.jobs, args.threads), retries=args.retries, limit=args.limit,
                         bar=not args.quiet)
    return _summary("encode", summary, args.quiet)


def cmd_batch_fit(args: argparse.Namespace) -> int:
    from ..batch.folder import executor_for, run_folder
    from ..batch.tasks import fit_image
    from .model import check_fit_options

    address = ray_address(args)
    for name in ("resume", "checkpoint", "checkpoint_every", "compare", "ply"):
        setattr(args, name, None)
    check_fit_options(args)  # the options' errors now, not once per image
    summary = run_folder("fit", args.in_dir, args.out_dir, fit_image, args, _settings(args),
                         executor_for(address, args.jobs, args.threads), retries=args.retries, limit=args.limit,
                         bar=not args.quiet)
    return _summary("fit", summary, args.quiet)


def _leaf(module: Any, command: str) -> argparse.ArgumentParser:
    """The parser ``module.add_parsers`` makes for ``command``."""
    parser = argparse.ArgumentParser(add_help=False)
    sub = parser.add_subparsers()
    module.add_parsers(sub)
    return sub.choices[command]


def _copy_options(src: argparse.ArgumentParser, dst: argparse.ArgumentParser) -> None:
    for action in src._actions:
        if action.dest not in _PER_IMAGE and not isinstance(action, argparse._HelpAction):
            dst._add_action(action)
    dst.set_defaults(**{k: v for k, v in src._defaults.items() if k != "func"})


def _folders_and_run(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("in_dir", metavar="IN_DIR", help="folder of images (.png, .jpg, .jpeg)")
    p.add_argument("out_dir", metavar="OUT_DIR", nargs="?", help=f"output folder: {what}, NAME.report.json per "
                   "image and manifest.json (resumable: finished images are skipped)")
    p.add_argument("--jobs", type=positive_int, default=1, help="local worker processes (without --ray; default 1)")
    add_ray_options(p)
    p.add_argument("--limit", type=positive_int, help="only the first K images (sorted by name)")


def add_parsers(sub: Any) -> None:
    """Add ``batch encode`` and ``batch fit`` to an ``argparse`` subparsers object."""
    from . import codec, model

    p = sub.add_parser("batch", help="encode or fit a folder of images (local processes or a Ray cluster)")
    bsub = p.add_subparsers(dest="batch", required=True, metavar="BATCH")
    e = bsub.add_parser("encode", help="splatpix encode every image of a folder: OUT_DIR/NAME.spix")
    _folders_and_run(e, "NAME.spix")
    _copy_options(_leaf(codec, "encode"), e)
    e.set_defaults(func=cmd_batch_encode)
    f = bsub.add_parser("fit", help="splatpix fit every image of a folder (either --model): OUT_DIR/NAME.safetensors")
    _folders_and_run(f, "NAME.safetensors")
    _copy_options(_leaf(model, "fit"), f)
    f.set_defaults(func=cmd_batch_fit)
