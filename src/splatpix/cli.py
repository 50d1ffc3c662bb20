"""The ``splatpix`` command line.

Every user error ends with one line on stderr (``splatpix: error: ...``) and a non-zero exit code, never a
traceback (set ``SPLATPIX_DEBUG=1`` to see one). Outputs are written to a temporary file and renamed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import SplatpixError

EXIT_ERROR = 2
EXIT_DIVERGED = 3


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return v


def _size(text: str) -> tuple[int, int]:
    """``WxH`` -> (height, width)."""
    try:
        w, h = (int(t) for t in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1536x1024 (WxH), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def _window(text: str) -> tuple[float, float, float, float]:
    try:
        u0, v0, u1, v1 = (float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"crop must be four normalised numbers u0,v0,u1,v1 (e.g. 0.25,0.25,0.75,0.75), got {text!r}"
        ) from None
    if not (u1 > u0 and v1 > v0):
        raise argparse.ArgumentTypeError(f"crop needs u1 > u0 and v1 > v0, got {text!r}")
    return u0, v0, u1, v1


def _report_path_ok(report: str | None, *inputs: str) -> None:
    from .io import check_not_input

    if report:
        check_not_input(report, *inputs)


def _write_json(path: str, data: dict) -> None:
    from .io import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, allow_nan=False)
        f.write("\n")


def _fit_config(args: argparse.Namespace):
    from .fit import FitConfig

    d = FitConfig.__dataclass_fields__
    # the structure-guided options are optional in args so that any caller's Namespace keeps working; None means
    # "the method's default" (FitConfig's, or SGA_FIT_DEFAULTS for encode --method sga)
    defaults = {name: d[name].default for name in (
        "init", "init_scale", "superpixel_area", "colour_solve_init", "colour_solve_every", "colour_solve_iters",
        "geo_weight", "relocate_every", "relocate_fraction", "lr_means_scale", "lr_cov_scale", "lr_colour_scale",
        "lr_means_ref_n", "footprint_weight")}
    if getattr(args, "method", None) == "sga":
        from .codec.sga import SGA_FIT_DEFAULTS

        defaults.update(SGA_FIT_DEFAULTS)
    extra = {name: default if getattr(args, name, None) is None else getattr(args, name)
             for name, default in defaults.items()}
    # fit's -n/--steps default to None so that --model gainer can fall back to its preset; GaussianImage's defaults:
    n = _FIT_DEFAULT_GAUSSIANS if args.gaussians is None else args.gaussians
    steps = _FIT_DEFAULT_STEPS if args.steps is None else args.steps
    return FitConfig(
        n_gaussians=n, steps=steps, lr=args.lr, optimizer=args.optimizer,
        lr_decay_every=args.lr_decay_every, param=args.param, seed=args.seed, log_every=args.log_every,
        backend=args.backend, **extra,
    )


def _finish_fit(report: dict, report_path: str | None, diverged: bool, message: str, model_path: str) -> dict:
    """Write the report (if asked); when training diverged (the last good model already saved), raise the
    one-line error with exit status 3. Returns the report."""
    if report_path:
        _write_json(report_path, report)
    if diverged:
        err = SplatpixError(f"{message}; saved it to {model_path}")
        err.exit_code = EXIT_DIVERGED  # type: ignore[attr-defined]
        raise err
    return report


def _run_fit(image_path: str, model_path: str, args: argparse.Namespace, report_path: str | None) -> dict:
    """Load, fit, save; returns the report. Raises SplatpixError (exit code attached) on failure."""
    from .fit import fit
    from .io import check_not_input, load_image
    from .model_io import save_model

    check_not_input(model_path, image_path)
    _report_path_ok(report_path, image_path)
    cfg = _fit_config(args)
    image = load_image(image_path, max_pixels=args.max_pixels)
    res = fit(image, cfg, progress=not args.quiet)
    report = res.report()
    report["image"] = str(image_path)
    save_model(res.gaussians, model_path, extra={"fit": {k: report[k] for k in (
        "psnr", "ms_ssim", "seconds", "steps", "n_gaussians", "diverged")}, "source": Path(image_path).name})
    return _finish_fit(report, report_path, res.diverged, res.message, model_path)


# options of ``fit`` that only one model kind uses (GaINeR-only ones default to None, GaussianImage-only ones to
# their parser defaults, stored in the namespace as ``gaussianimage_defaults``)
_GAINER_ONLY = ("preset", "k", "batch", "aggregation", "trainable_means", "ply", "alpha_model", "checkpoint",
                "checkpoint_every", "resume")
_GAINER_MODEL_OPTIONS = ("preset", "gaussians", "k", "batch", "aggregation", "trainable_means", "alpha_model")
_GAUSSIANIMAGE_ONLY = ("lr", "optimizer", "lr_decay_every", "param", "log_every", "init", "init_scale",
                       "superpixel_area", "colour_solve_init", "colour_solve_every", "colour_solve_iters",
                       "geo_weight", "backend", "relocate_every", "relocate_fraction", "lr_means_scale",
                       "lr_cov_scale", "lr_colour_scale", "lr_means_ref_n", "footprint_weight")
_FIT_DEFAULT_GAUSSIANS = 10_000
_FIT_DEFAULT_STEPS = 10_000


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def cmd_fit(args: argparse.Namespace) -> int:
    if getattr(args, "model", "gaussianimage") == "gainer":
        return _cmd_fit_gainer(args)
    for name in _GAINER_ONLY:
        if getattr(args, name, None) is not None:
            raise SplatpixError(f"{_option(name)} applies only to --model gainer")
    report = _run_fit(args.image, args.output, args, args.report)
    ms = report["ms_ssim"]
    ms_txt = f", MS-SSIM {ms:.4f}" if ms is not None else ""
    print(f"{args.image}: {report['n_gaussians']} Gaussians, {report['steps']} steps in {report['seconds']:.1f} s: "
          f"PSNR {report['psnr']:.2f} dB{ms_txt} -> {args.output}")
    return 0


def _gainer_train_config(args: argparse.Namespace):
    """The GaINeR training config of ``fit --model gainer``: the preset with the command line's overrides."""
    from dataclasses import replace

    from .gainer import GainerTrainConfig

    defaults = getattr(args, "gaussianimage_defaults", {})
    for name in _GAUSSIANIMAGE_ONLY:
        if name in defaults and getattr(args, name, None) != defaults[name]:
            raise SplatpixError(f"{_option(name)} applies only to --model gaussianimage")
    if args.resume:
        given = [name for name in _GAINER_MODEL_OPTIONS if getattr(args, name, None) is not None]
        if given:
            raise SplatpixError(f"{_option(given[0])} cannot be changed when resuming: the checkpoint holds the "
                                "config (only --steps and --checkpoint-every may be given)")
        from .gainer.checkpoint import load_checkpoint

        ck = load_checkpoint(args.resume)
        saved = GainerTrainConfig.from_dict(ck.config)
        over = {}
        if args.steps is not None:
            over["steps"] = args.steps
        if args.checkpoint_every is not None:
            over["checkpoint_every"] = args.checkpoint_every
        return replace(saved, **over), ck
    base = GainerTrainConfig.preset(args.preset or "cpu")
    model_over: dict = {}
    if args.gaussians is not None:
        model_over["n_gaussians"] = args.gaussians
    if args.k is not None:
        model_over["k"] = args.k
    if args.aggregation is not None:
        model_over["aggregation"] = args.aggregation
    if args.trainable_means:
        model_over["trainable_means"] = True
    if args.alpha_model is not None:
        model_over["alpha_model"] = args.alpha_model
    over: dict = {"model": replace(base.model, **model_over), "seed": args.seed}  # replace() validates
    if args.steps is not None:
        over["steps"] = args.steps
    if args.batch is not None:
        over["batch"] = args.batch
    if args.checkpoint:
        over["checkpoint_every"] = 500 if args.checkpoint_every is None else args.checkpoint_every
    elif args.checkpoint_every is not None:
        raise SplatpixError("--checkpoint-every needs --checkpoint PATH")
    return GainerTrainConfig.preset(args.preset or "cpu", **over), None


def _run_fit_gainer(image_path: str, model_path: str, args: argparse.Namespace, report_path: str | None) -> dict:
    """Load, train a GaINeR field, bake, save (and the report / PLY); returns the report. Raises SplatpixError
    (exit code attached) on failure; on divergence the last good field is saved first."""
    from .gainer import export_ply, fit_gainer, save_gainer
    from .io import check_not_input, load_image

    check_not_input(model_path, image_path)
    if report_path:
        check_not_input(report_path, image_path, model_path)
    if args.ply:
        check_not_input(args.ply, image_path, model_path, report_path)
    if args.checkpoint:
        check_not_input(args.checkpoint, image_path, model_path, report_path, args.ply)
    cfg, ck = _gainer_train_config(args)
    image = load_image(image_path, max_pixels=args.max_pixels)
    res = fit_gainer(image, cfg, progress=not args.quiet, checkpoint_path=args.checkpoint or None, resume=ck)
    field = res.field.bake()
    report = res.report()
    report["config"]["model"]["channels"] = field.channels
    report.update(image=str(image_path), model="gainer", preset=None if args.resume else (args.preset or "cpu"))
    if args.resume:
        report["resumed_from"] = str(args.resume)
    save_gainer(field, model_path, extra={"fit": {k: report[k] for k in (
        "psnr", "psnr_float", "seconds", "steps", "n_gaussians", "diverged")}, "preset": report["preset"],
        "source": Path(image_path).name})
    report["model_bytes"] = os.path.getsize(model_path)
    if args.ply:
        export_ply(field, args.ply)
    return _finish_fit(report, report_path, res.diverged, res.message, model_path)


def _cmd_fit_gainer(args: argparse.Namespace) -> int:
    report = _run_fit_gainer(args.image, args.output, args, args.report)
    p = report["psnr"]
    p_txt = "inf" if p is None else f"{p:.2f}"
    print(f"{args.image}: GaINeR, {report['n_gaussians']} Gaussians, {report['steps']} steps in "
          f"{report['seconds']:.1f} s: PSNR {p_txt} dB, {report['model_bytes']} bytes -> {args.output}")
    return 0


_GAINER_FORMAT = "splatpix-gainer"


def _model_format(path: str) -> str | None:
    from .st_container import peek_format

    return peek_format(path)


def _output_size(h0: int, w0: int, args: argparse.Namespace) -> tuple[int, int]:
    """Output (height, width) of a render from --size / --scale / --crop and the native size."""
    height = width = None
    if args.size is not None:
        height, width = args.size
    scale = args.scale
    if height is None and scale is None and args.crop is not None:
        scale = 1.0
    if scale is not None:
        u0, v0, u1, v1 = args.crop if args.crop is not None else (0.0, 0.0, 1.0, 1.0)
        height = max(1, round(h0 * scale * (v1 - v0)))
        width = max(1, round(w0 * scale * (u1 - u0)))
    height = h0 if height is None else height
    width = w0 if width is None else width
    if height * width > args.max_pixels:
        raise SplatpixError(f"output {width}x{height} exceeds the pixel limit {args.max_pixels} (--max-pixels)")
    return height, width


def _render_gainer_to(model_path: str, out_path: str, args: argparse.Namespace) -> tuple[float, tuple[int, int]]:
    from .gainer import load_gainer
    from .io import save_image

    field = load_gainer(model_path)
    field.backend = getattr(args, "backend", "auto")
    height, width = _output_size(*field.size, args)
    t0 = time.perf_counter()
    img = field.render(height, width, window=args.crop).clamp(0.0, 1.0)
    seconds = time.perf_counter() - t0
    save_image(img, out_path, bits=getattr(args, "bits", 8))
    return seconds, (height, width)


def _render_to(model_path: str, out_path: str, args: argparse.Namespace) -> tuple[float, tuple[int, int]]:
    import torch

    from .io import check_not_input, save_image
    from .model_io import load_model
    from .render import render

    check_not_input(out_path, model_path)
    if _model_format(model_path) == _GAINER_FORMAT:
        return _render_gainer_to(model_path, out_path, args)
    g = load_model(model_path)
    height, width = _output_size(*g.size, args)
    t0 = time.perf_counter()
    with torch.no_grad():
        img = render(g, height, width, window=args.crop, clamp=True, backend=args.backend)
    seconds = time.perf_counter() - t0
    save_image(img, out_path, bits=getattr(args, "bits", 8))
    return seconds, (height, width)


def cmd_render(args: argparse.Namespace) -> int:
    seconds, (h, w) = _render_to(args.model, args.output, args)
    print(f"{args.model}: rendered {w}x{h} in {1e3 * seconds:.1f} ms -> {args.output}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .codec.bitstream import MAGIC

    with open(args.model, "rb") as f:
        head = f.read(4)
    if head == MAGIC:
        print(json.dumps(_spix_info(args.model), indent=2))
        return 0
    if _model_format(args.model) == _GAINER_FORMAT:
        from .gainer import read_gainer_metadata

        print(json.dumps(read_gainer_metadata(args.model), indent=2))
        return 0
    from .model_io import read_model_metadata

    meta = read_model_metadata(args.model)
    print(json.dumps(meta, indent=2))
    return 0


def _spix_info(path: str) -> dict:
    import numpy as np

    from .codec import bitstream as bs
    from .codec.spix import unpack

    header, sections = bs.read_spix_file(path)  # size cap and container checks before reading it all
    data = Path(path).read_bytes()
    q, meta = unpack(data, source=path)
    pixels = header.width * header.height
    return {
        "format": "spix", "method": bs.METHOD_NAMES.get(header.method, header.method), "width": header.width,
        "height": header.height, "channels": header.channels, "n_gaussians": header.n_gaussians,
        "bytes": len(data), "bpp": len(data) * 8 / pixels,
        "sections_bytes": {bs.SECTION_NAMES[k]: len(v) for k, v in sections.items()},
        "bits_per_gaussian": len(data) * 8 / max(1, header.n_gaussians),
        "colour_vq": list(q.codebooks.shape[:2]), "metadata": meta,
    } | ({"cov_bits": q.cov_bits} if header.method == bs.METHOD_GAUSSIANIMAGE else {
        "grid_subdiv": q.subdiv, "tier_bits": q.tier_bits, "tier_counts": np.bincount(
            q.tiers, minlength=len(q.tier_bits)).tolist()})


def _encode_cli(args: argparse.Namespace):
    from .codec.qat import QATConfig
    from .codec.spix import encode, gaussians_for_bpp
    from .io import load_image

    image = load_image(args.image, max_pixels=args.max_pixels)
    fit_cfg = _fit_config(argparse.Namespace(**{**vars(args), "gaussians": args.gaussians or 1}))
    qat_cfg = QATConfig(steps=args.qat_steps, lr=args.qat_lr, optimizer=args.qat_optimizer, seed=args.seed,
                        vq_stages=args.vq_stages, vq_codebook=args.vq_codebook)
    progress = not args.quiet
    sga_cfg = None
    if args.method == "sga":
        from .codec.sga import SGAConfig

        tb = tuple(args.tier_bits) if args.tier_bits else None
        sga_cfg = SGAConfig(subdiv=args.subdiv, tier_bits=tb, n_tiers=len(tb) if tb else 3,
                            cov_context_bits=args.cov_context_bits)
    kw = {"method": args.method, "fit_config": fit_cfg, "qat_config": qat_cfg, "sga_config": sga_cfg,
          "fixed_length": args.fixed_length, "progress": progress}
    if args.gaussians is not None:
        return encode(image, args.gaussians, **kw)
    # --bpp: start from the 56-bit fixed-length budget, then rescale N by the measured rate (at most 3 encodes)
    h, w = image.shape[1:]
    n = gaussians_for_bpp(args.bpp, h, w, channels=image.shape[0])
    best = None
    for _ in range(3):
        res = encode(image, n, **kw)
        if best is None or abs(res.report["bpp"] - args.bpp) < abs(best.report["bpp"] - args.bpp):
            best = res
        if abs(res.report["bpp"] - args.bpp) <= 0.03 * args.bpp:
            break
        n = max(1, round(n * args.bpp / res.report["bpp"]))
    best.report["target_bpp"] = args.bpp
    return best


def cmd_encode(args: argparse.Namespace) -> int:
    from .io import atomic_write_bytes, check_not_input

    if (args.gaussians is None) == (args.bpp is None):
        raise SplatpixError("give exactly one of --gaussians N or --bpp B")
    if args.gaussians is not None and args.gaussians <= 0:
        raise SplatpixError(f"--gaussians must be positive, got {args.gaussians}")
    if args.bpp is not None and not args.bpp > 0:
        raise SplatpixError(f"--bpp must be positive, got {args.bpp}")
    check_not_input(args.output, args.image)
    _report_path_ok(args.report, args.image)
    t0 = time.perf_counter()
    from .codec.spix import EncodeDiverged

    diverged: EncodeDiverged | None = None
    try:
        res = _encode_cli(args)
    except EncodeDiverged as e:  # write the last good state, then fail (nothing trained is lost)
        res, diverged = e.result, e
    atomic_write_bytes(args.output, res.data)
    report = dict(res.report, image=str(args.image), output=str(args.output), method=args.method,
                  total_seconds=time.perf_counter() - t0)
    if os.path.getsize(args.output) != report["bytes"]:
        raise SplatpixError(f"{args.output}: written size differs from the encoded size")
    if args.report:
        _write_json(args.report, report)
    if diverged is not None:
        err = SplatpixError(f"{diverged}; wrote that state to {args.output} ({report['bpp']:.4f} bpp, PSNR "
                            f"{report['psnr']:.2f} dB)")
        err.exit_code = EXIT_DIVERGED  # type: ignore[attr-defined]
        raise err
    ms = report["ms_ssim"]
    print(f"{args.image}: {report['n_gaussians']} Gaussians, {report['bytes']} bytes = {report['bpp']:.4f} bpp, "
          f"PSNR {report['psnr']:.2f} dB" + (f", MS-SSIM {ms:.4f}" if ms is not None else "")
          + f", {report['encode_seconds']:.1f} s -> {args.output}")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    import torch

    from .codec.bitstream import read_spix_file
    from .codec.spix import unpack
    from .io import check_not_input, save_image
    from .render import render

    check_not_input(args.output, args.input)
    t0 = time.perf_counter()
    read_spix_file(args.input)  # size-capped read + container checks
    data = Path(args.input).read_bytes()
    q, _ = unpack(data, source=args.input)
    g = q.dequantize()
    h0, w0 = g.size
    if args.size is not None:
        height, width = args.size
    elif args.scale is not None:
        height, width = max(1, round(h0 * args.scale)), max(1, round(w0 * args.scale))
    else:
        height, width = h0, w0
    if height * width > args.max_pixels:
        raise SplatpixError(f"output {width}x{height} exceeds the pixel limit {args.max_pixels} (--max-pixels)")
    with torch.no_grad():
        img = render(g, height, width, clamp=True)
    save_image(img, args.output)
    print(f"{args.input}: decoded {width}x{height} in {1e3 * (time.perf_counter() - t0):.1f} ms -> {args.output}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .io import load_image, sample_image_path
    from .metrics import psnr

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = sample_image_path()
    model_path = str(out_dir / "demo.safetensors")
    render_path = str(out_dir / "demo.png")
    print(f"splatpix demo: fitting {args.gaussians} Gaussians to {sample.name} for {args.steps} steps")
    t0 = time.perf_counter()
    report = _run_fit(str(sample), model_path, args, str(out_dir / "demo_report.json"))
    fit_seconds = time.perf_counter() - t0
    render_args = argparse.Namespace(size=None, scale=None, crop=None, backend=args.backend,
                                     max_pixels=args.max_pixels)
    r_seconds, _ = _render_to(model_path, render_path, render_args)
    # PSNR of the PNG written to disk (8-bit) against the original image
    rendered = load_image(render_path)
    target = load_image(str(sample))
    p = psnr(rendered, target)
    big = str(out_dir / "demo_2x.png")
    render_args.scale = 2.0
    r2_seconds, (h2, w2) = _render_to(model_path, big, render_args)
    print(f"fit: {report['seconds']:.1f} s training ({fit_seconds:.1f} s with loading and saving), "
          f"{report['steps']} steps")
    print(f"model: {model_path} ({os.path.getsize(model_path)} bytes)")
    print(f"render: {render_path} in {1e3 * r_seconds:.1f} ms; PSNR {p:.2f} dB (8-bit, vs the original)")
    print(f"render 2x: {big} ({w2}x{h2}) in {1e3 * r2_seconds:.1f} ms")
    return 0


def cmd_bench_kernel(args: argparse.Namespace) -> int:
    from .bench import bench_kernel

    if args.json:
        _report_path_ok(args.json)
    backends = tuple(args.backends.split(","))
    for b in backends:
        if b not in ("numba", "reference"):
            raise SplatpixError(f"unknown backend {b!r} in --backends (use numba,reference)")
    res = bench_kernel(sizes=tuple(args.sizes), height=args.height, width=args.width, backends=backends,
                       repeats=args.repeats, reference_repeats=args.reference_repeats,
                       progress=None if args.quiet else (lambda s: print(s, flush=True)))
    if args.json:
        _write_json(args.json, res)
    for row in res["results"]:
        parts = [f"N={row['n_gaussians']:>7} pairs={row['pairs']:>9}"]
        for b in backends:
            parts.append(f"{b}: fwd {row[b]['forward_ms']:8.1f} ms bwd {row[b]['backward_ms']:8.1f} ms")
        if "speedup_numba_vs_reference" in row:
            parts.append(f"speed-up {row['speedup_numba_vs_reference']:.1f}x")
        print("  ".join(parts))
    return 0


def cmd_eval_rd(args: argparse.Namespace) -> int:
    from .eval.harness import run_rd

    options = None
    if args.method in ("gaussianimage", "sga"):
        options = {"steps": args.steps, "qat_steps": args.qat_steps, "init": args.init,
                   "colour_solve_init": args.colour_solve_init, "colour_solve_every": args.colour_solve_every,
                   "geo_weight": args.geo_weight, "relocate_every": args.relocate_every,
                   "relocate_fraction": args.relocate_fraction, "lr_cov_scale": args.lr_cov_scale,
                   "lr_means_ref_n": args.lr_means_ref_n, "footprint_weight": args.footprint_weight,
                   "subdiv": args.subdiv, "tier_bits": args.tier_bits,
                   "cov_context_bits": args.cov_context_bits, "vq_stages": args.vq_stages,
                   "vq_codebook": args.vq_codebook,
                   "n_tiers": None if args.tier_bits is None else len(args.tier_bits)}
        options = {k: v for k, v in options.items() if v is not None}
    label = args.label or args.method
    curve = run_rd(args.images, args.method, args.out, points=args.points, jobs=args.jobs, limit=args.limit,
                   progress=None if args.quiet else (lambda s: print(s, flush=True)), options=options, label=label)
    for b, p in zip(curve.bpp, curve.psnr, strict=True):
        print(f"{label}: {b:.4f} bpp  {p:.2f} dB")
    print(f"mean curve -> {Path(args.out) / (label + '.json')}")
    return 0


def cmd_eval_bdrate(args: argparse.Namespace) -> int:
    from .eval.bdrate import bd_psnr, bd_rate
    from .eval.rd import load_curve

    anchor, test = load_curve(args.anchor), load_curve(args.test)
    try:
        r = bd_rate(anchor.bpp, anchor.psnr, test.bpp, test.psnr, method=args.interpolation)
        d = bd_psnr(anchor.bpp, anchor.psnr, test.bpp, test.psnr, method=args.interpolation)
    except ValueError as e:
        raise SplatpixError(str(e)) from e
    print(f"BD-rate of {test.name} vs {anchor.name} ({args.interpolation}): {r:+.2f} %   BD-PSNR: {d:+.3f} dB")
    return 0


def cmd_eval_plot(args: argparse.Namespace) -> int:
    from .eval.plots import plot_rd
    from .eval.rd import load_curve, load_published

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


def _add_fit_options(p: argparse.ArgumentParser, gaussians: int, steps: int) -> None:
    from .fit import FitConfig

    d = FitConfig.__dataclass_fields__
    p.add_argument("-n", "--gaussians", type=int, default=gaussians, help=f"number of Gaussians (default {gaussians})")
    p.add_argument("--steps", type=int, default=steps, help=f"optimisation steps (default {steps})")
    p.add_argument("--lr", type=float, default=d["lr"].default, help="learning rate (default %(default)s)")
    p.add_argument("--optimizer", choices=("adan", "adam"), default=d["optimizer"].default)
    p.add_argument("--lr-decay-every", type=int, default=d["lr_decay_every"].default,
                   help="halve the learning rate every this many steps (default %(default)s)")
    p.add_argument("--param", choices=("cholesky", "rs"), default="cholesky", help="covariance parameterisation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=d["log_every"].default, help="PSNR logging interval")
    # structure-guided allocation; values are checked by FitConfig (one-line errors)
    p.add_argument("--init", default=None, metavar="{random,gradient,structure}",
                   help="initialisation: GaussianImage's random one (default; structure for encode --method sga), "
                        "Image-GS's gradient sampling, or structure-guided allocation over SLIC superpixels")
    p.add_argument("--init-scale", type=float, default=d["init_scale"].default,
                   help="gradient/structure init: initial sigma = this times the local spacing (default: the "
                        "measured 1.0 for gradient, 0.7 for structure)")
    p.add_argument("--superpixel-area", type=float, default=d["superpixel_area"].default,
                   help="structure init: target superpixel area in pixels (default %(default)s)")
    p.add_argument("--colour-solve-init", action=argparse.BooleanOptionalAction, default=None,
                   help="least-squares colours (conjugate gradients) right after initialisation (default: off, "
                        "on for encode --method sga)")
    p.add_argument("--colour-solve-every", type=int, default=d["colour_solve_every"].default, metavar="K",
                   help="also solve the colours every K steps (0 = never, the default)")
    p.add_argument("--colour-solve-iters", type=int, default=d["colour_solve_iters"].default,
                   help="CG iterations per colour solve (default %(default)s)")
    p.add_argument("--geo-weight", type=float, default=d["geo_weight"].default, metavar="W",
                   help="weight of the geometry-consistent (Sobel-gradient) loss (default 0: off)")
    p.add_argument("--relocate-every", type=int, default=None, metavar="K",
                   help="error-guided placement: every K steps (in the first half) move the least important "
                        "Gaussians to where the error is largest (default 0: off; 250 for encode --method sga)")
    p.add_argument("--relocate-fraction", type=float, default=None, metavar="F",
                   help=f"fraction of the Gaussians moved each time (default {d['relocate_fraction'].default})")
    p.add_argument("--lr-cov-scale", type=float, default=None, metavar="M",
                   help="learning rate of the covariances as a multiple of --lr (default 1; 10 for encode "
                        "--method sga)")
    p.add_argument("--lr-means-scale", type=float, default=None, metavar="M",
                   help="learning rate of the means as a multiple of --lr (default 1)")
    p.add_argument("--lr-colour-scale", type=float, default=None, metavar="M",
                   help="learning rate of the colours as a multiple of --lr (default 1)")
    p.add_argument("--lr-means-ref-n", type=int, default=None, metavar="R",
                   help="above R Gaussians scale the means' learning rate by sqrt(R/N), keeping a step a fixed "
                        "fraction of their spacing (default 0: off; 1000 for encode --method sga)")
    p.add_argument("--footprint-weight", type=float, default=None, metavar="W",
                   help="penalise the pixels each Gaussian covers (the renderer's work, so decode time): one more "
                        "(pixel, Gaussian) pair per pixel must lower the MSE by the fraction W (default 0: off; "
                        "encode: also during QAT; with --method sga, 0.3 renders at GaussianImage's speed at equal N)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_common(p: argparse.ArgumentParser) -> None:
    from .io import DEFAULT_MAX_PIXELS

    p.add_argument("--backend", choices=("auto", "numba", "reference"), default="auto", help="rasteriser backend")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse images (and renders) with more pixels than this (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="splatpix", description="Images as 2D Gaussians.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fit", help="fit Gaussians to an image and save the model")
    p.add_argument("image", help="input image (PNG 8/16-bit, JPEG; grey, RGB or RGBA)")
    p.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    p.add_argument("--report", help="write a JSON report (psnr, ms_ssim, seconds, steps, n_gaussians, history)")
    p.add_argument("--model", choices=("gaussianimage", "gainer"), default="gaussianimage",
                   help="gaussianimage (rasterised Gaussians, the default) or gainer (GaINeR: Gaussian-weighted "
                        "nearest-neighbour features decoded by an MLP; -n and --steps default to the preset's)")
    _add_fit_options(p, gaussians=_FIT_DEFAULT_GAUSSIANS, steps=_FIT_DEFAULT_STEPS)
    _add_common(p)
    g = p.add_argument_group("GaINeR (--model gainer)")
    g.add_argument("--preset", choices=("cpu", "paper"), default=None,
                   help="training schedule and model size (default cpu: 20k Gaussians, K 8, 2000 steps)")
    g.add_argument("--k", type=int, default=None, help="neighbours per query (default: the preset's)")
    g.add_argument("--batch", type=int, default=None, help="pixels per step, 0 = whole image (default: the preset's)")
    g.add_argument("--aggregation", choices=("sum", "mean"), default=None,
                   help="sum (GaINeR's code, the default) or mean (weighted average) of the neighbours' features")
    g.add_argument("--trainable-means", action="store_true", default=None, help="also train the Gaussian means")
    g.add_argument("--ply", help="also export the means as an ASCII PLY point cloud")
    g.add_argument("--alpha-model", choices=("head", "separate"), default=None,
                   help="RGBA images: a separate mask model (its own hash grid and MLP on the same Gaussians; "
                        "the default) or alpha as a 4th output of the colour MLP (head: smaller, faster)")
    g.add_argument("--checkpoint", help="write a resumable training checkpoint here (every --checkpoint-every "
                                        "steps, default 500, and at the end)")
    g.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    g.add_argument("--resume", help="continue training from a checkpoint written by --checkpoint (same image; "
                                    "the config comes from the checkpoint, --steps may extend it)")
    p.set_defaults(func=cmd_fit, gaussians=None, steps=None,
                   gaussianimage_defaults={name: p.get_default(name) for name in _GAUSSIANIMAGE_ONLY})

    p = sub.add_parser("render", help="render a model to an image, at any size or crop")
    p.add_argument("model", help="model file (.safetensors; Gaussian or GaINeR)")
    p.add_argument("-o", "--output", required=True, help="image to write (.png, .jpg)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scale", type=_positive_float, help="scale factor relative to the model's native size")
    g.add_argument("--size", type=_size, help="output size WxH in pixels")
    p.add_argument("--crop", type=_window, help="normalised window u0,v0,u1,v1 to render (default: whole image)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="bits per channel of a PNG output")
    _add_common(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("encode", help="compress an image to a .spix file (fit + QAT + entropy coding)")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True, help=".spix file to write")
    p.add_argument("--method", choices=("gaussianimage", "sga"), default="gaussianimage",
                   help="gaussianimage (GaussianImage's codec) or sga (structure-guided: structure-guided "
                        "initialisation, grid positions coded as a set, adaptive-bitwidth covariance)")
    p.add_argument("--subdiv", type=int, default=4, help="sga: position grid steps per pixel (default 4)")
    p.add_argument("--cov-context-bits", type=int, default=2,
                   help="sga: widest l11 context for coding l21/l22 (0 = none; default 2)")
    p.add_argument("--tier-bits", type=int, nargs="+",
                   help="sga: fixed covariance bits per tier, e.g. 6 6 6 (default: chosen RD-aware per image)")
    p.add_argument("--bpp", type=float, help="target rate: N is searched (up to 3 encodes)")
    p.add_argument("--report", help="JSON report: bpp, bytes, psnr, ms_ssim, encode_seconds, n_gaussians, ...")
    p.add_argument("--fixed-length", action="store_true",
                   help="GaussianImage's fixed-length symbols (no entropy coding)")
    p.add_argument("--qat-steps", type=int, default=2000, help="quantisation-aware fine-tuning steps")
    p.add_argument("--qat-lr", type=float, default=1e-3)
    p.add_argument("--qat-optimizer", choices=("adan", "adam"), default="adam")
    p.add_argument("--vq-stages", type=int, default=2, help="colour residual VQ stages (default 2, GaussianImage's)")
    p.add_argument("--vq-codebook", type=int,
                   help="codewords per colour VQ stage (default: 8 for gaussianimage, GaussianImage's; 16 for sga)")
    _add_fit_options(p, gaussians=None, steps=2000)
    _add_common(p)
    p.set_defaults(func=cmd_encode, optimizer="adam", lr=1e-2, lr_decay_every=1000)

    p = sub.add_parser("decode", help="decode a .spix file to an image, at any size")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scale", type=_positive_float)
    g.add_argument("--size", type=_size, help="WxH")
    _add_common(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("info", help="print a model file's or a .spix file's metadata")
    p.add_argument("model")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="fit the bundled sample image, save, render back, print PSNR and time")
    p.add_argument("--out", default="splatpix-demo", help="output folder (default %(default)s)")
    _add_fit_options(p, gaussians=4000, steps=1500)
    _add_common(p)
    p.set_defaults(func=cmd_demo, lr=1e-2, optimizer="adam")

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
    e.add_argument("--method", required=True, help="gaussianimage, sga, jpeg, webp, jpeg2000, avif, jpegxl")
    e.add_argument("--points", type=float, nargs="+",
                   help="numbers of Gaussians (gaussianimage, sga; default 800 1000 3000 5000 7000 9000) or target "
                        "bpp values (classical codecs; default GaussianImage's rates 0.118 ... 1.286)")
    e.add_argument("--label", help="name of the run: its folder and curve file (default: the method), for ablations")
    e.add_argument("--steps", type=int, default=2000, help="gaussianimage/sga: fitting steps per point")
    e.add_argument("--qat-steps", type=int, default=1000, help="gaussianimage/sga: QAT steps per point")
    e.add_argument("--init", choices=("random", "gradient", "structure"),
                   help="gaussianimage/sga: initialisation (default: random for gaussianimage, structure for sga)")
    e.add_argument("--colour-solve-init", action=argparse.BooleanOptionalAction, default=None,
                   help="gaussianimage/sga: closed-form colours after initialisation (default: on for sga)")
    e.add_argument("--colour-solve-every", type=int, help="gaussianimage/sga: closed-form colours every K steps")
    e.add_argument("--geo-weight", type=float, help="gaussianimage/sga: geometry-consistent loss weight")
    e.add_argument("--relocate-every", type=int, metavar="K",
                   help="gaussianimage/sga: error-guided placement every K steps (default: 0, off, for "
                        "gaussianimage; 250 for sga)")
    e.add_argument("--relocate-fraction", type=float, metavar="F",
                   help="gaussianimage/sga: fraction of the Gaussians moved each time (default 0.05)")
    e.add_argument("--lr-cov-scale", type=float, metavar="M",
                   help="gaussianimage/sga: covariance learning rate as a multiple of the fit's (default: 1 for "
                        "gaussianimage, 10 for sga)")
    e.add_argument("--lr-means-ref-n", type=int, metavar="R",
                   help="gaussianimage/sga: above R Gaussians the means' rate scales by sqrt(R/N) (default: off "
                        "for gaussianimage, 1000 for sga)")
    e.add_argument("--footprint-weight", type=float, metavar="W",
                   help="gaussianimage/sga: penalise the renderer's pairs per pixel in fit and QAT (default 0: off; "
                        "sga at 0.3 renders at GaussianImage's speed at equal N)")
    e.add_argument("--subdiv", type=int, help="sga: position grid steps per pixel")
    e.add_argument("--cov-context-bits", type=int, help="sga: widest l11 context for coding l21/l22 (default 2)")
    e.add_argument("--tier-bits", type=int, nargs="+",
                   help="sga: fixed covariance bits per tier (default: chosen RD-aware per image)")
    e.add_argument("--vq-stages", type=int, help="gaussianimage/sga: colour residual VQ stages (default 2)")
    e.add_argument("--vq-codebook", type=int,
                   help="gaussianimage/sga: codewords per colour VQ stage (default: 8 for gaussianimage, 16 for sga)")
    e.add_argument("--out", required=True, help="output folder (per-image JSON and the mean curve)")
    e.add_argument("--jobs", type=int, default=1, help="worker processes")
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

    from .cli_edit import add_parsers as add_edit_parsers

    add_edit_parsers(sub)  # edit, animate
    from .cli_simulate import add_parsers as add_simulate_parsers

    add_simulate_parsers(sub)  # simulate
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SplatpixError as e:
        print(f"splatpix: error: {e}", file=sys.stderr)
        return int(getattr(e, "exit_code", EXIT_ERROR))
    except KeyboardInterrupt:
        print("splatpix: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, OSError, ValueError, RuntimeError) as e:
        if os.environ.get("SPLATPIX_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"splatpix: error: {msg}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
