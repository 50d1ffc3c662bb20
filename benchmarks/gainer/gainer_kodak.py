"""GaINeR on Kodak at the ``cpu`` preset, and the GaussianImage model at the same storage and fit time.

For each image:

* ``gainer``: :func:`splatpix.gainer.fit_gainer` with the preset (optionally overridden, ``--variant``), with the
  whole-image PSNR (8-bit rounded and float) rendered every ``--eval-every`` steps; the evaluation renders are not
  counted in the wall time. Then the baked model's file size and its render time (median of ``--repeats``).
* ``gaussianimage``: the GaussianImage model with as many Gaussians as fit in the GaINeR file's bytes (equal
  storage; 32 bytes per Gaussian in the safetensors model file, measured from the file written), fitted with the
  CPU schedule of docs/results.md (Adam 1e-2, decay x0.5 every 1000 steps) for ``--gi-steps`` steps; its PSNR
  history against wall time gives the equal-fit-time comparison (PSNR at the GaINeR run's wall time).

Usage (the runs recorded in docs/results.md)::

    python benchmarks/gainer/gainer_kodak.py --images kodim01 kodim02 kodim03 kodim05 kodim23 \
        --out benchmarks/gainer/results/gainer_kodak.json
    python benchmarks/gainer/gainer_kodak.py --images kodim23 --variant trainable_means --no-gi \
        --out benchmarks/gainer/results/gainer_variants.json

Results are written after every run; finished (image, variant) pairs are skipped when re-run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from splatpix import FitConfig, fit, load_image, psnr, render, save_model
from splatpix.gainer import GainerTrainConfig, fit_gainer, save_gainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, load_runs, machine, median_ms, today, write_json  # noqa: E402

VARIANTS = {
    "cpu": {},
    "trainable_means": {"trainable_means": True},
    "mean_aggregation": {"aggregation": "mean"},
    # GaINeR's public acceptance radius: sqrt(0.1) sigma_max (with our initial sigma = spacing)
    "radius_sqrt0.1": {"radius_scale": 0.1 ** 0.5},
    "absolute_radius": {"radius_mode": "absolute", "radius": 0.02},
}


def run_gainer(img: torch.Tensor, variant: str, eval_every: int, repeats: int, steps: int | None,
               save_to: Path | None = None) -> dict:
    base = GainerTrainConfig.preset("small")
    over = {"model": replace(base.model, **VARIANTS[variant]), "log_every": eval_every}
    if steps is not None:
        over["steps"] = steps
    cfg = GainerTrainConfig.preset("small", **over)
    curve: list[dict] = []
    excluded = [0.0]

    def callback(step: int, info: dict) -> None:
        t0 = time.perf_counter()
        out = res_field[0].render()
        curve.append({"step": step, "seconds": info["seconds"] - excluded[0],
                      "psnr": psnr(out, img), "psnr_float": psnr(out, img, quantize=False)})
        excluded[0] += time.perf_counter() - t0

    # the callback needs the field being trained: fit_gainer hands it to the checkpoint hook first
    res_field: list = [None]

    def checkpoint(step: int, field) -> None:
        res_field[0] = field

    cfg = replace(cfg, checkpoint_every=1)
    res = fit_gainer(img, cfg, progress=False, callback=lambda s, i: (callback(s, i) if res_field[0] else None),
                     checkpoint=checkpoint)
    seconds = res.seconds - excluded[0]
    curve.append({"step": res.steps, "seconds": seconds, "psnr": res.psnr, "psnr_float": res.psnr_float})
    field = res.field.bake()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        save_gainer(field, path)
        model_bytes = os.path.getsize(path)
    render_ms = median_ms(field.render, repeats)
    if save_to is not None:
        save_gainer(field, save_to)
    return {"psnr": res.psnr, "psnr_float": res.psnr_float, "seconds": seconds, "steps": res.steps,
            "n_gaussians": field.n, "model_bytes": model_bytes, "render_ms": render_ms, "curve": curve,
            "config": res.config.model.to_dict(), "diverged": res.diverged}


def run_gaussianimage(img: torch.Tensor, n: int, steps: int, repeats: int) -> dict:
    cfg = FitConfig(n_gaussians=n, steps=steps, optimizer="adam", lr=1e-2, lr_decay_every=1000, log_every=100)
    res = fit(img, cfg, progress=False)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        save_model(res.gaussians, path)
        model_bytes = os.path.getsize(path)
    with torch.no_grad():
        render_ms = median_ms(lambda: render(res.gaussians, clamp=True), repeats)
    rep = res.report()
    return {"psnr": rep["psnr"], "psnr_float": rep["psnr_float"], "seconds": rep["seconds"], "steps": rep["steps"],
            "diverged": rep["diverged"],
            "n_gaussians": n, "model_bytes": model_bytes, "render_ms": render_ms,
            "curve": [{"step": h["step"], "seconds": h["seconds"], "psnr": h["psnr"]} for h in rep["history"]]}


def psnr_at(curve: list[dict], seconds: float) -> float | None:
    """PSNR of the last logged point at or before ``seconds`` (None if none)."""
    pts = [c for c in curve if c["seconds"] <= seconds]
    return pts[-1]["psnr"] if pts else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", nargs="+", default=["kodim01", "kodim05", "kodim23"])
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="cpu")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gi-steps", type=int, default=3000)
    ap.add_argument("--no-gi", action="store_true", help="skip the GaussianImage comparison")
    ap.add_argument("--save-models", help="also save the baked GaINeR models here (IMAGE_VARIANT.safetensors)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    out = Path(args.out)
    command = "python benchmarks/gainer/gainer_kodak.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if v not in (None, False))
    data = load_runs(out, "gainer_kodak", machine=machine(), command=command)
    done = {(r["image"], r["variant"]) for r in data["runs"]}
    for name in args.images:
        if (name, args.variant) in done:
            continue
        img = load_image(Path(args.kodak) / f"{name}.png")
        run = {"image": name, "variant": args.variant, "date": today()}
        save_to = None
        if args.save_models:
            Path(args.save_models).mkdir(parents=True, exist_ok=True)
            save_to = Path(args.save_models) / f"{name}_{args.variant}.safetensors"
        run["gainer"] = g = run_gainer(img, args.variant, args.eval_every, args.repeats, args.steps, save_to)
        print(f"{name} gainer[{args.variant}]: {g['psnr']:.2f} dB ({g['psnr_float']:.2f} float) in "
              f"{g['seconds']:.0f} s, {g['model_bytes']} B, render {g['render_ms']:.0f} ms", flush=True)
        if not args.no_gi:
            n_equal = max(1, g["model_bytes"] // 32)
            run["gaussianimage"] = gi = run_gaussianimage(img, n_equal, args.gi_steps, args.repeats)
            gi["psnr_at_gainer_seconds"] = psnr_at(gi["curve"], g["seconds"])
            print(f"{name} gaussianimage N={n_equal}: {gi['psnr']:.2f} dB in {gi['seconds']:.0f} s, "
                  f"{gi['model_bytes']} B, render {gi['render_ms']:.1f} ms; at {g['seconds']:.0f} s: "
                  f"{gi['psnr_at_gainer_seconds']} dB", flush=True)
        data["runs"].append(run)
        write_json(out, data)


if __name__ == "__main__":
    main()
