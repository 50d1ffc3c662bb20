"""Initialisation benchmark: PSNR at step 0 and PSNR against wall-clock time for each initialisation.

Variants (``--variants``, default all):

* ``random``: GaussianImage's random initialisation (the default fit);
* ``random+solve``: the same, colours replaced by the least-squares colour solve right after initialisation;
* ``gradient``, ``gradient+solve``: Image-GS's gradient-sampled initialisation;
* ``structure``, ``structure+solve``: structure-guided allocation (SLIC, 6:2:1 budgets);
* ``gaussianimage``: GaussianImage's own schedule, whatever the command line says: random initialisation,
  Adan at lr 1e-3 halved every 20k steps, 50k steps (``--gi-steps``) -- the baseline "at its full step budget";
* ``sga``: the structure-guided fit as run for benchmarks/fit/results/fast_convergence.json (2026-12-02): structure
  initialisation, colour solve, covariance learning rate x10 and error-guided placement (5 % every 250 steps),
  one means' rate (today's :data:`splatpix.codec.methods.sga.SGA_FIT_DEFAULTS` also scales that above 1000
  Gaussians);
* ``structure+solve+geo``: the latter plus the geometry-consistent loss (``--geo-weight``, default 0.01; on
  partly fitted Kodak crops ``L_geo`` is 10-30 times the MSE, so 0.01 makes it a 10-30 % term).

For each image (all PNGs in ``--images``, the first ``--limit`` by name) and each N in ``--n`` it records the
step-0 PSNR (the initialised, possibly colour-solved model), the initialisation seconds, the logged history
``{step, seconds, psnr}`` (seconds include the initialisation and the colour solves) and the final PSNR.
The JSON is rewritten after every run; finished (image, N, variant) triples are skipped on restart.

    python benchmarks/fit/init_convergence.py --images ../shared/datasets/kodak --limit 24 --n 10000 70000 \
        --steps 3000 --out benchmarks/fit/results/init_convergence.json

``--crop WxH`` fits a centre crop instead of the whole image (for smoke runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from splatpix import FitConfig, fit, load_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, centre_crop, load_runs, machine, parse_size, today, write_json  # noqa: E402

VARIANTS = {
    "random": dict(init="random"),
    "random+solve": dict(init="random", colour_solve_init=True),
    "gradient": dict(init="gradient"),
    "gradient+solve": dict(init="gradient", colour_solve_init=True),
    "structure": dict(init="structure"),
    "structure+solve": dict(init="structure", colour_solve_init=True),
    "structure+solve+geo": dict(init="structure", colour_solve_init=True, geo_weight=None),
    "gaussianimage": dict(init="random"),
    "sga": {"init": "structure", "colour_solve_init": True, "lr_cov_scale": 10.0, "relocate_every": 250,
            "relocate_fraction": 0.05},
}
# variants whose schedule is fixed (not taken from the command line)
SCHEDULES = {"gaussianimage": dict(optimizer="adan", lr=1e-3, lr_decay_every=20_000)}


def crop(img: torch.Tensor, size: str | None) -> torch.Tensor:
    """Centre crop ``WxH`` (no-op when ``size`` is None or larger than the image)."""
    if not size:
        return img
    w, h = parse_size(size)
    return centre_crop(img, h, w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(KODAK), help="folder of PNG images (default: Kodak)")
    ap.add_argument("--limit", type=int, help="use only the first K images (sorted by name)")
    ap.add_argument("--n", type=int, nargs="+", default=[10_000], help="numbers of Gaussians")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--optimizer", default="adan")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay-every", type=int, default=None, help="halve the lr every K steps (default: never)")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--colour-solve-iters", type=int, default=20)
    ap.add_argument("--geo-weight", type=float, default=0.01, help="geo weight of the +geo variant")
    ap.add_argument("--crop", help="fit a centre crop WxH of each image (smoke runs)")
    ap.add_argument("--gi-steps", type=int, default=50_000, help="steps of the gaussianimage variant")
    ap.add_argument("--gi-log-every", type=int, default=500, help="log interval of the gaussianimage variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()

    paths = sorted(Path(args.images).glob("*.png"))
    if args.limit is not None:
        paths = paths[: args.limit]
    if not paths:
        raise SystemExit(f"no PNG images in {args.images}")
    out = Path(args.out)
    data = load_runs(out, "init_convergence", machine=machine(), args=vars(args))
    done = {(r["image"], r["n_gaussians"], r["variant"]) for r in data["runs"]}
    # warm-up: numba's cached kernels, skimage/scipy imports, so the first timed run is not penalised
    warm = crop(load_image(paths[0]), "48x32")
    for name in args.variants:
        opts = {k: (args.geo_weight if k == "geo_weight" else v) for k, v in VARIANTS[name].items()}
        fit(warm, FitConfig(n_gaussians=50, steps=2, **opts), progress=False)
    for path in paths:
        img = crop(load_image(path), args.crop)
        for n in args.n:
            for name in args.variants:
                if (path.name, n, name) in done:
                    continue
                opts = {k: (args.geo_weight if k == "geo_weight" else v) for k, v in VARIANTS[name].items()}
                sched = {"optimizer": args.optimizer, "lr": args.lr, "steps": args.steps, "log_every": args.log_every}
                if args.lr_decay_every is not None:
                    sched["lr_decay_every"] = args.lr_decay_every
                if name in SCHEDULES:
                    sched.update(SCHEDULES[name], steps=args.gi_steps, log_every=args.gi_log_every)
                cfg = FitConfig(n_gaussians=n, colour_solve_iters=args.colour_solve_iters, seed=args.seed,
                                **sched, **opts)
                res = fit(img, cfg, progress=False)
                rep = res.report()
                run = {"image": path.name, "size": rep["size"], "n_gaussians": n, "variant": name,
                       "psnr_step0": rep["history"][0]["psnr"], "init_seconds": rep["init_seconds"],
                       "psnr": rep["psnr"], "ms_ssim": rep["ms_ssim"], "seconds": rep["seconds"],
                       "steps": rep["steps"], "diverged": rep["diverged"], "history": rep["history"],
                       "config": rep["config"], "date": today()}
                data["runs"].append(run)
                print(f"{path.name} N={n} {name:>20}: step0 {run['psnr_step0']:.2f} dB "
                      f"(init {run['init_seconds']:.2f} s) -> {run['psnr']:.2f} dB in {run['seconds']:.1f} s",
                      flush=True)
                write_json(out, data, allow_nan=False)


if __name__ == "__main__":
    main()
