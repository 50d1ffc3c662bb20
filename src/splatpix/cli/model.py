"""``splatpix fit``, ``render``, ``info`` and ``demo``: models (GaussianImage kind or GaINeR) in and out."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import SplatpixError
from ..io.images import DEFAULT_MAX_PIXELS
from ..presets import DEFAULT_FIT_PRESET, DEFAULT_GAINER_PRESET, DEMO_FIT, GAINER_PRESETS
from .common import (
    add_budget,
    add_common,
    add_compare,
    add_ellipses,
    check_outputs,
    check_pairs,
    option,
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
from .common import diverged as diverged_error
from .options import add_fit_options

__all__ = ["add_parsers", "check_fit_options", "cmd_demo", "cmd_fit", "cmd_info", "cmd_render", "fit_config",
           "render_to", "run_fit"]


_FIT_FIELDS = ("lr", "optimizer", "lr_decay_every", "param", "seed", "log_every", "backend", "init", "init_scale",
               "superpixel_area", "colour_solve_init", "colour_solve_every", "colour_solve_iters", "geo_weight",
               "relocate_every", "relocate_fraction", "lr_means_scale", "lr_cov_scale", "lr_colour_scale",
               "lr_means_ref_n", "footprint_weight")


def fit_config(args: argparse.Namespace, size: tuple[int, int] | None = None):
    """The :class:`~splatpix.train.FitConfig` of ``splatpix fit`` / ``demo``: the preset (``--preset``, default
    :data:`splatpix.presets.DEFAULT_FIT_PRESET`) with every option the command line gives on top; ``-n`` defaults to
    the preset's N for an image of ``size`` (height, width)."""
    from ..presets import DEFAULT_FIT_PRESET, FIT_PRESETS, preset_gaussians
    from ..train.config import FitConfig

    name = getattr(args, "preset", None) or DEFAULT_FIT_PRESET
    if name not in FIT_PRESETS:
        raise SplatpixError(f"unknown preset {name!r} for the Gaussian fit; use one of {', '.join(FIT_PRESETS)} "
                            f"({', '.join(GAINER_PRESETS)} are --model gainer's)")
    kw = {k: v for k, v in FIT_PRESETS[name].items() if k not in ("pixels_per_gaussian", "n_gaussians", "lr_decay_at")}
    kw.update({k: getattr(args, k) for k in _FIT_FIELDS if getattr(args, k, None) is not None})
    if args.gaussians is not None:
        n = args.gaussians
    elif size is not None:
        n = preset_gaussians(name, *size)
    else:
        raise SplatpixError("give -n N: the preset's number of Gaussians depends on the image size")
    kw["steps"] = args.steps if args.steps is not None else kw["steps"]
    decay_at = FIT_PRESETS[name].get("lr_decay_at")
    if decay_at is not None and getattr(args, "lr_decay_every", None) is None:
        kw["lr_decay_every"] = max(1, round(kw["steps"] * decay_at))
    return FitConfig(n_gaussians=n, **kw)


def _finish_fit(report: dict, report_path: str | None, diverged: bool, message: str, model_path: str) -> dict:
    """Write the report (if asked); when training diverged (the last good model already saved), raise the
    one-line error with exit status 3. Returns the report."""
    if report_path:
        write_json(report_path, report)
    if diverged:
        raise diverged_error(f"{message}; saved it to {model_path}")
    return report


def run_fit(image_path: str, model_path: str, args: argparse.Namespace, report_path: str | None) -> dict:
    """Load, fit, save; returns the report. Raises SplatpixError (exit code attached) on failure."""
    from ..io import load_image
    from ..model.files import save_model
    from ..train.loop import FitInterrupted, fit

    check_outputs([model_path, getattr(args, "compare", None), getattr(args, "ply", None)],
                  [image_path, getattr(args, "resume", None)])
    report_path_ok(report_path, image_path)
    image = load_image(image_path, max_pixels=args.max_pixels)
    start = None
    if getattr(args, "resume", None):  # continue a saved Gaussian model (its N and parameterisation)
        from ..model.files import load_model

        if (_model_format(args.resume) or "").startswith(_GAINER_FORMAT):
            raise SplatpixError(f"{args.resume}: a GaINeR file; continue a GaINeR checkpoint with --model gainer "
                                "--resume")
        start = load_model(args.resume)
        if args.gaussians is not None and args.gaussians != start.n:
            raise SplatpixError(f"-n {args.gaussians} differs from the {start.n} Gaussians of {args.resume}")
        args.gaussians = start.n
        if getattr(args, "param", None) is None:
            args.param = start.param
    target_psnr = getattr(args, "psnr", None)
    if target_psnr is not None and (args.gaussians is not None or start is not None):
        raise SplatpixError("--psnr chooses N: give it without -n and --resume")
    cfg = fit_config(args, tuple(image.shape[1:]))
    interrupted, trials = None, []
    try:
        while True:
            res = fit(image, cfg, progress=not args.quiet, start=start)
            trials.append({"n_gaussians": cfg.n_gaussians, "psnr": res.psnr, "seconds": res.seconds})
            if target_psnr is None:
                break
            print(f"{image_path}: trial N = {cfg.n_gaussians}: PSNR {res.psnr:.2f} dB in {res.seconds:.1f} s "
                  f"(target {target_psnr:g} dB)", flush=True)
            n_next = _next_n(cfg.n_gaussians, res.psnr, target_psnr, image.shape[1] * image.shape[2])
            if res.psnr >= target_psnr or len(trials) == _PSNR_TRIALS or n_next is None or res.diverged:
                break
            cfg = replace(cfg, n_gaussians=n_next)
    except FitInterrupted as e:  # Ctrl-C / SIGTERM: save the last good model, then stop with the signal's status
        res, interrupted = e.result, e
    report = res.report()
    if target_psnr is not None:
        report.update(target_psnr=target_psnr, trials=trials)
    report["image"] = str(image_path)
    report["preset"] = getattr(args, "preset", None) or DEFAULT_FIT_PRESET
    if interrupted is not None:
        report["interrupted"] = True
    save_model(res.gaussians, model_path, extra={"fit": {k: report[k] for k in (
        "psnr", "ms_ssim", "seconds", "steps", "n_gaussians", "diverged", "preset")}, "source": Path(image_path).name})
    if getattr(args, "ply", None):
        from ..gainer.io import export_ply

        export_ply(res.gaussians, args.ply)
    if getattr(args, "compare", None):
        from ..render.arrays import render_array

        write_compare(args.compare, image, render_array(res.gaussians, clamp=True),
                      f"{cfg.n_gaussians} Gaussians: {res.psnr:.2f} dB")
    if interrupted is not None:
        if report_path:
            write_json(report_path, report)
        raise type(interrupted.signal)(f"{res.message}; saved that model ({res.psnr:.2f} dB) to {model_path}")
    return _finish_fit(report, report_path, res.diverged, res.message, model_path)


_PSNR_TRIALS = 3


def _next_n(n: int, psnr: float, target: float, pixels: int) -> int | None:
    """The N of ``fit --psnr``'s next trial: the MSE falls as ``N^-alpha`` (alpha = 0.69, fitted to Kodak models,
    :data:`splatpix.codec.tiers.ALPHA`), so the target needs ``N 10^((target - psnr) / (10 alpha))``; at least
    1.25x and at most 4x the last N, at most a quarter of the pixels (the fit's saturation bound); None when N
    cannot grow."""
    from ..codec.tiers import ALPHA

    want = n * min(4.0, max(1.25, 10 ** ((target - psnr) / (10 * ALPHA))))
    nxt = int(min(round(want), pixels // 4, 300_000))
    return nxt if nxt > n else None


# options of ``fit`` that only one model kind uses (GaINeR-only ones default to None, GaussianImage-only ones to
# their parser defaults, stored in the namespace as ``gaussianimage_defaults``)
_GAINER_ONLY = ("k", "batch", "aggregation", "trainable_means", "alpha_model", "checkpoint",
                "checkpoint_every")
_GAINER_MODEL_OPTIONS = ("preset", "gaussians", "k", "batch", "aggregation", "trainable_means", "alpha_model")
_GAUSSIANIMAGE_ONLY = ("lr", "optimizer", "lr_decay_every", "param", "log_every", "init", "init_scale",
                       "superpixel_area", "colour_solve_init", "colour_solve_every", "colour_solve_iters",
                       "geo_weight", "backend", "relocate_every", "relocate_fraction", "lr_means_scale",
                       "lr_cov_scale", "lr_colour_scale", "lr_means_ref_n", "footprint_weight", "psnr")


def cmd_fit(args: argparse.Namespace) -> int:
    if getattr(args, "model", "gaussianimage") == "gainer":
        return _cmd_fit_gainer(args)
    for name in _GAINER_ONLY:
        if getattr(args, name, None) is not None:
            raise SplatpixError(f"{option(name)} applies only to --model gainer")
    report = run_fit(args.image, args.output, args, args.report)
    ms = report["ms_ssim"]
    ms_txt = f", MS-SSIM {ms:.4f}" if ms is not None else ""
    print(f"{args.image}: {report['n_gaussians']} Gaussians, {report['steps']} steps in {report['seconds']:.1f} s: "
          f"PSNR {report['psnr']:.2f} dB{ms_txt} -> {args.output}")
    return 0


def check_fit_options(args: argparse.Namespace) -> None:
    """The option errors ``fit`` would stop at, before any image is read (``batch fit`` checks a folder's options
    once): those of the other model kind, the preset, the config values."""
    if getattr(args, "model", "gaussianimage") == "gainer":
        _gainer_train_config(args)
        return
    for name in _GAINER_ONLY:
        if getattr(args, name, None) is not None:
            raise SplatpixError(f"{option(name)} applies only to --model gainer")
    if getattr(args, "psnr", None) is not None and args.gaussians is not None:
        raise SplatpixError("--psnr chooses N: give it without -n and --resume")
    fit_config(args, (64, 64))


def _check_gainer_preset(name: str | None) -> None:
    from ..presets import FIT_PRESETS

    if name is not None and name not in GAINER_PRESETS:
        raise SplatpixError(f"unknown preset {name!r} for --model gainer; use one of {', '.join(GAINER_PRESETS)} "
                            f"({', '.join(FIT_PRESETS)} are the Gaussian fit's)")


def _gainer_train_config(args: argparse.Namespace):
    """The GaINeR training config of ``fit --model gainer``: the preset with the command line's overrides."""
    from dataclasses import replace

    from ..gainer import GainerTrainConfig

    defaults = getattr(args, "gaussianimage_defaults", {})
    for name in _GAUSSIANIMAGE_ONLY:
        if name in defaults and getattr(args, name, None) != defaults[name]:
            raise SplatpixError(f"{option(name)} applies only to --model gaussianimage")
    if args.resume:
        given = [name for name in _GAINER_MODEL_OPTIONS if getattr(args, name, None) is not None]
        if given:
            raise SplatpixError(f"{option(given[0])} cannot be changed when resuming: the checkpoint holds the "
                                "config (only --steps and --checkpoint-every may be given)")
        from ..gainer.checkpoint import load_checkpoint

        ck = load_checkpoint(args.resume)
        saved = GainerTrainConfig.from_dict(ck.config)
        over = {}
        if args.steps is not None:
            over["steps"] = args.steps
        if args.checkpoint_every is not None:
            over["checkpoint_every"] = args.checkpoint_every
        return replace(saved, **over), ck
    _check_gainer_preset(args.preset)
    base = GainerTrainConfig.preset(args.preset or DEFAULT_GAINER_PRESET)
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
    over: dict = {"model": replace(base.model, **model_over), "seed": args.seed or 0}  # replace() validates
    if args.steps is not None:
        over["steps"] = args.steps
    if args.batch is not None:
        over["batch"] = args.batch
    if args.checkpoint:
        over["checkpoint_every"] = 500 if args.checkpoint_every is None else args.checkpoint_every
    elif args.checkpoint_every is not None:
        raise SplatpixError("--checkpoint-every needs --checkpoint PATH")
    return GainerTrainConfig.preset(args.preset or DEFAULT_GAINER_PRESET, **over), None


def run_fit_gainer(image_path: str, model_path: str, args: argparse.Namespace, report_path: str | None) -> dict:
    """Load, train a GaINeR field, bake, save (and the report / PLY); returns the report. Raises SplatpixError
    (exit code attached) on failure; on divergence the last good field is saved first."""
    from ..gainer import export_ply, fit_gainer, save_gainer
    from ..io import load_image
    from ..io.files import check_not_input

    check_outputs([model_path, getattr(args, "compare", None)], [image_path])
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
    report.update(image=str(image_path), model="gainer",
                  preset=None if args.resume else (args.preset or DEFAULT_GAINER_PRESET))
    if args.resume:
        report["resumed_from"] = str(args.resume)
    save_gainer(field, model_path, extra={"fit": {k: report[k] for k in (
        "psnr", "psnr_float", "psnr_alpha", "seconds", "steps", "n_gaussians", "diverged") if k in report},
        "preset": report["preset"],
        "source": Path(image_path).name})
    report["model_bytes"] = os.path.getsize(model_path)
    if getattr(args, "compare", None):
        write_compare(args.compare, image, field.render(*field.size).clamp(0, 1), f"GaINeR: {report['psnr']:.2f} dB")
    if args.ply:
        export_ply(field, args.ply)
    return _finish_fit(report, report_path, res.diverged, res.message, model_path)


def _cmd_fit_gainer(args: argparse.Namespace) -> int:
    report = run_fit_gainer(args.image, args.output, args, args.report)
    def db(p: float | None) -> str:
        return "inf" if p is None else f"{p:.2f}"

    quality = f"PSNR {db(report['psnr'])} dB" if "psnr_alpha" not in report else \
        f"colour PSNR {db(report['psnr'])} dB where visible, alpha PSNR {db(report['psnr_alpha'])} dB"
    print(f"{args.image}: GaINeR, {report['n_gaussians']} Gaussians, {report['steps']} steps in "
          f"{report['seconds']:.1f} s: {quality}, {report['model_bytes']} bytes -> {args.output}")
    return 0


_GAINER_FORMAT = "splatpix-gainer"
_IMAGE_SIGNATURES = ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"RIFF", "RIFF (WebP)"), (b"GIF8", "GIF"))


def _model_format(path: str) -> str | None:
    from ..model.container import peek_format

    return peek_format(path)


def _warm(fn: Any, window: Any) -> float:
    """Render a 2x2 output once, so that the timed render does not include compiling (or loading) the kernels;
    returns the seconds it took."""
    t0 = time.perf_counter()
    fn(2, 2, window)
    return time.perf_counter() - t0


def _compile_note(args: argparse.Namespace) -> str:
    warm = getattr(args, "warm_seconds", 0.0)
    return f" (warm; the first call compiled or loaded the kernels in {1e3 * warm:.0f} ms)" if warm > 0.1 else ""


def _timed(fn: Any) -> tuple[Any, list[float]]:
    """``fn`` and a one-element list that accumulates the seconds spent in it (the render time, not the writing)."""
    spent = [0.0]

    def run(*a: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a)
        finally:
            spent[0] += time.perf_counter() - t0

    return run, spent


def _render_gainer_to(model_path: str, out_path: str, args: argparse.Namespace) -> tuple[float, tuple[int, int]]:
    from ..gainer import load_gainer
    from ..render.bands import estimated_neighbour_pairs

    field = load_gainer(model_path)
    field.backend = getattr(args, "backend", "auto")
    height, width = output_size(*field.size, args)
    check_pairs(estimated_neighbour_pairs(field.means, field.knn_radius(), height, width, args.crop), args, model_path)
    band, spent = _timed(lambda h, w, win: field.render(h, w, window=win).clamp(0.0, 1.0))
    args.warm_seconds = _warm(band, args.crop)
    spent[0] = 0.0
    write_render(band, field.channels, height, width, args.crop, out_path, getattr(args, "bits", 8), args)
    return spent[0], (height, width)


def render_to(model_path: str, out_path: str, args: argparse.Namespace) -> tuple[float, tuple[int, int]]:
    """Render a model file; a GaussianImage-kind model with the numba backend goes through numpy only (no torch)."""
    from ..io.files import check_not_input
    from ..model.files import load_arrays
    from ..render.bands import estimated_pairs

    check_not_input(out_path, model_path)
    if _model_format(model_path) == _GAINER_FORMAT:
        if getattr(args, "ellipses", None):
            raise SplatpixError(f"{model_path}: --ellipses draws Gaussian models and .spix files, not GaINeR fields")
        return _render_gainer_to(model_path, out_path, args)
    g = load_arrays(model_path)
    height, width = output_size(*g.size, args)
    pairs = estimated_pairs(g, height, width, args.crop)
    check_pairs(pairs, args, model_path)
    if args.backend in ("auto", "numba"):  # numpy for a small one-shot render, else the numba kernels
        start_engine(args.backend)
        render_engine(args.backend, pairs)
        band = _array_band(g)
    else:
        band = _tensor_band(g, args.backend)

    args.warm_seconds = _warm(band, args.crop)
    timed, spent = _timed(band)
    if getattr(args, "ellipses", None):
        write_ellipses(timed, g, height, width, args.crop, out_path, args.ellipses, args)
    else:
        write_render(timed, g.channels, height, width, args.crop, out_path, getattr(args, "bits", 8), args)
    return spent[0], (height, width)


def _array_band(g: Any) -> Any:
    from ..render.arrays import render_array

    return lambda h, w, win: render_array(g, h, w, window=win, clamp=True)


def _tensor_band(g: Any, backend: str) -> Any:
    import torch

    from ..model.gaussians import Gaussians
    from ..render import render

    model = Gaussians.from_arrays(g)

    def band(h: int, w: int, win: Any) -> Any:
        with torch.no_grad():
            return render(model, h, w, window=win, clamp=True, backend=backend)

    return band


def cmd_render(args: argparse.Namespace) -> int:
    seconds, (h, w) = render_to(args.model, args.output, args)
    print(f"{args.model}: rendered {w}x{h} in {1e3 * seconds:.1f} ms -> {args.output}" + _compile_note(args))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..codec.bitstream import MAGIC
    from ..io import check_readable_file

    size = check_readable_file(args.model, "a .spix or model")
    start_engine()  # parsing only: numpy unless numba is loaded
    with open(args.model, "rb") as f:
        head = f.read(8)
    if head[:4] == MAGIC:
        print(json.dumps(_spix_info(args.model, args), indent=2))
        return 0
    if len(head) < 8 or not 2 <= int.from_bytes(head, "little") <= size - 8:  # not a safetensors header length
        kind = next((k for sig, k in _IMAGE_SIGNATURES if head.startswith(sig)), None)
        raise SplatpixError(f"{args.model}: " + (f"a {kind} image, " if kind else "")
                            + "not a splatpix model or .spix file")
    if _model_format(args.model) == _GAINER_FORMAT:
        from ..gainer import read_gainer_metadata

        print(json.dumps(read_gainer_metadata(args.model), indent=2))
        return 0
    from ..model.files import read_model_metadata

    meta = read_model_metadata(args.model)
    print(json.dumps(meta, indent=2))
    return 0


def _spix_info(path: str, args: argparse.Namespace) -> dict:
    from ..codec import bitstream as bs
    from ..codec import registry
    from ..codec.decoding import unpack

    limits = {"max_pixels": args.max_pixels, "max_gaussians": args.max_gaussians}
    header, sections = bs.read_spix_file(path, **limits)  # size cap and container checks before reading it all
    data = Path(path).read_bytes()
    q, meta = unpack(data, source=path, max_memory=args.max_memory, **limits)
    pixels = header.width * header.height
    return {
        "format": "spix", "method": registry.by_id(header.method, path).name, "width": header.width,
        "height": header.height, "channels": header.channels, "n_gaussians": header.n_gaussians,
        "bytes": len(data), "bpp": len(data) * 8 / pixels,
        "sections_bytes": {bs.SECTION_NAMES[k]: len(v) for k, v in sections.items()},
        "bits_per_gaussian": len(data) * 8 / max(1, header.n_gaussians),
        **({"colour_vq": list(q.codebooks.shape[:2])} if getattr(q, "codebooks", None) is not None else {}),
        "metadata": meta,
    } | registry.by_id(header.method, path).info(q)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..io import load_image, sample_image_path
    from ..metrics import psnr

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = sample_image_path()
    model_path = str(out_dir / "demo.safetensors")
    render_path = str(out_dir / "demo.png")
    print(f"splatpix demo: fitting {args.gaussians} Gaussians to {sample.name} for {args.steps} steps")
    t0 = time.perf_counter()
    report = run_fit(str(sample), model_path, args, str(out_dir / "demo_report.json"))
    fit_seconds = time.perf_counter() - t0
    render_args = argparse.Namespace(size=None, scale=None, crop=None, backend=args.backend,
                                     max_pixels=args.max_pixels)
    r_seconds, _ = render_to(model_path, render_path, render_args)
    # PSNR of the PNG written to disk (8-bit) against the original image
    rendered = load_image(render_path)
    target = load_image(str(sample))
    p = psnr(rendered, target)
    big = str(out_dir / "demo_2x.png")
    render_args.scale = 2.0
    r2_seconds, (h2, w2) = render_to(model_path, big, render_args)
    print(f"fit: {report['seconds']:.1f} s training ({fit_seconds:.1f} s with loading and saving), "
          f"{report['steps']} steps")
    print(f"model: {model_path} ({os.path.getsize(model_path)} bytes)")
    print(f"render: {render_path} in {1e3 * r_seconds:.1f} ms; PSNR {p:.2f} dB (8-bit, vs the original)")
    print(f"render 2x: {big} ({w2}x{h2}) in {1e3 * r2_seconds:.1f} ms")
    return 0


def _add_size_options(p: argparse.ArgumentParser, gaussians: int, steps: int) -> None:
    p.add_argument("-n", "--gaussians", type=int, default=gaussians, help=f"number of Gaussians (default {gaussians})")
    p.add_argument("--steps", type=int, default=steps, help=f"optimisation steps (default {steps})")


def add_parsers(sub: Any) -> None:
    """Add ``fit``, ``render``, ``info`` and ``demo`` to an ``argparse`` subparsers object."""
    p = sub.add_parser("fit", help="fit Gaussians to an image and save the model")
    p.add_argument("image", help="input image (PNG 8/16-bit, JPEG; grey, RGB or RGBA)")
    p.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    p.add_argument("--report", help="write a JSON report (psnr, ms_ssim, seconds, steps, n_gaussians, history)")
    p.add_argument("--model", choices=("gaussianimage", "gainer"), default="gaussianimage",
                   help="gaussianimage (rasterised Gaussians, the default) or gainer (GaINeR: Gaussian-weighted "
                        "nearest-neighbour features decoded by an MLP; -n and --steps default to the preset's)")
    p.add_argument("-n", "--gaussians", type=int, default=None,
                   help="number of Gaussians (default: the preset's, from the image size)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the preset's)")
    p.add_argument("--psnr", type=float, default=None, metavar="DB",
                   help="choose N for this PSNR: fit the preset's N, then larger ones (up to 3 fits, each printed; "
                   "the report lists them), keeping the first that reaches it (else the last)")
    add_fit_options(p, codec=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_compare(p)
    add_common(p)
    g = p.add_argument_group("GaINeR (--model gainer)")
    p.add_argument("--preset", default=None, metavar="PRESET",
                   help="the Gaussian fit: fast, balanced (the default), quality (the best measured recipe: "
                   "structure-guided init, colour solve, relocation, per-parameter rates, Adam 1e-2; 500 / 2000 / "
                   "6000 steps, one Gaussian per 64 / 32 / 12 pixels unless -n is given) or gaussianimage-paper "
                   "(GaussianImage: random init, Adan 1e-3, 50 000 steps, N = 70 000); --model gainer: balanced (the "
                   "default: 500k Gaussians, K 8, 160 full-image steps), paper-cpu (GaINeR's model, 500 steps), paper "
                   "(GaINeR's 30k steps) or small (20k Gaussians, pixel batches; formerly cpu)")
    g.add_argument("--k", type=int, default=None, help="neighbours per query (default: the preset's)")
    g.add_argument("--batch", type=int, default=None, help="pixels per step, 0 = whole image (default: the preset's)")
    g.add_argument("--aggregation", choices=("sum", "mean"), default=None,
                   help="sum (GaINeR's code, the default) or mean (weighted average) of the neighbours' features")
    g.add_argument("--trainable-means", action="store_true", default=None, help="also train the Gaussian means")
    p.add_argument("--ply", help="also export the Gaussians as an ASCII PLY point cloud (both model kinds): "
                   "coloured points in pixels, y up, with 1-sigma scales and rotation")
    g.add_argument("--alpha-model", choices=("head", "separate"), default=None,
                   help="RGBA images: a separate mask model (its own hash grid and MLP on the same Gaussians; "
                        "the default) or alpha as a 4th output of the colour MLP (head: smaller, faster)")
    g.add_argument("--checkpoint", help="write a resumable training checkpoint here (every --checkpoint-every "
                                        "steps, default 500, and at the end)")
    g.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--resume", help="--model gainer: continue training from a checkpoint written by --checkpoint "
                   "(same image; the config comes from the checkpoint, --steps may extend it); the Gaussian fit: "
                   "continue from a saved model of this image (e.g. one stopped by Ctrl-C) for --steps more steps "
                   "(a fresh optimiser: close to, not the same as, an uninterrupted run)")
    p.set_defaults(func=cmd_fit, gaussians=None, steps=None,
                   gaussianimage_defaults={name: p.get_default(name) for name in _GAUSSIANIMAGE_ONLY})

    p = sub.add_parser("render", help="render a model to an image, at any size or crop")
    p.add_argument("model", help="model file (.safetensors; Gaussian or GaINeR)")
    p.add_argument("-o", "--output", required=True, help="image to write (.png, .jpg, .webp)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scale", type=positive_float, help="scale factor relative to the model's native size")
    g.add_argument("--size", type=size, help="output size WxH in pixels, or W or xH (the other side keeps the "
                   "aspect ratio of the region shown)")
    p.add_argument("--crop", type=window, help="normalised window u0,v0,u1,v1 to render (default: whole image)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="bits per channel of a PNG output")
    add_ellipses(p)
    add_common(p)
    add_budget(p, gaussians=False)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("info", help="print a model file's or a .spix file's metadata")
    p.add_argument("model")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse .spix files of more pixels than this (default %(default)s)")
    add_budget(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="fit the bundled sample image, save, render back, print PSNR and time")
    p.add_argument("--out", default="splatpix-demo", help="output folder (default %(default)s)")
    _add_size_options(p, DEMO_FIT["n_gaussians"], DEMO_FIT["steps"])
    add_fit_options(p, codec=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p)
    p.set_defaults(func=cmd_demo)

