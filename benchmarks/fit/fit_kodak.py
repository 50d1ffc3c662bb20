"""Fitting benchmark on Kodak: PSNR / MS-SSIM against steps and wall-clock time, plus render-only time.

Usage (the full command lines of the runs in docs/results.md are there, and in each results file's ``command``):

    python benchmarks/fit/fit_kodak.py --kodak ../shared/datasets/kodak --images kodim05 kodim23 \
        --gaussians 70000 --steps 3000 --optimizer adam --lr 0.01 --lr-decay-every 1000 \
        --out benchmarks/fit/results/fit_kodak_70k.json
    # method sga's fit (splatpix.codec.methods.sga.SGA_FIT_DEFAULTS, relocation included) at N = 70 000:
    python benchmarks/fit/fit_kodak.py --images kodim01 kodim02 kodim03 kodim23 --gaussians 70000 --steps 3000 \
        --optimizer adam --lr 0.01 --lr-decay-every 1000 --init structure --colour-solve-init \
        --lr-cov-scale 10 --relocate-every 250 --relocate-fraction 0.05 --lr-means-ref-n 1000 \
        --out benchmarks/fit/results/fit_kodak_70k_sga3.json

Results are written after every run (so a long benchmark can be inspected while it goes on, and an
interrupted one keeps its finished runs; finished (image, N) pairs are skipped on restart).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from splatpix import FitConfig, fit, load_image, render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, load_runs, machine, median_ms, today, write_json  # noqa: E402


def render_time_ms(g, repeats: int = 20) -> float:
    with torch.no_grad():
        return median_ms(lambda: render(g, clamp=True), repeats)


def _option(name: str, value: object) -> str:
    """One option as typed on the command line (flags without a value; omitted when off)."""
    flag = f"--{name.replace('_', '-')}"
    if isinstance(value, bool):
        return flag if value else ""
    return f"{flag} {' '.join(map(str, value)) if isinstance(value, list) else value}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", nargs="+", default=["kodim01", "kodim05", "kodim23"])
    ap.add_argument("--gaussians", type=int, nargs="+", default=[70_000])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--optimizer", default="adan")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay-every", type=int, default=20_000)
    ap.add_argument("--log-every", type=int, default=250)
    ap.add_argument("--init", choices=("random", "gradient", "structure"), default="random")
    ap.add_argument("--colour-solve-init", action="store_true", help="least-squares colours after the init")
    ap.add_argument("--colour-solve-every", type=int, default=0)
    ap.add_argument("--lr-cov-scale", type=float, default=1.0, help="covariance learning rate / lr")
    ap.add_argument("--relocate-every", type=int, default=0, help="error-guided placement every K steps (0: off)")
    ap.add_argument("--relocate-fraction", type=float, default=0.05)
    ap.add_argument("--lr-means-ref-n", type=int, default=0, help="means' rate x sqrt(R/N) above R Gaussians")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    out = Path(args.out)
    data = load_runs(out, "fit_kodak", machine=machine(), command="python benchmarks/fit/fit_kodak.py " + " ".join(
        filter(None, (_option(k, v) for k, v in vars(args).items()))))
    done = {(r["image"], r["n_gaussians"]) for r in data["runs"]}
    for n in args.gaussians:
        for name in args.images:
            if (name, n) in done:
                continue
            img = load_image(Path(args.kodak) / f"{name}.png")
            cfg = FitConfig(n_gaussians=n, steps=args.steps, optimizer=args.optimizer, lr=args.lr,
                            lr_decay_every=args.lr_decay_every, log_every=args.log_every,
                            log_ms_ssim=True, init=args.init, colour_solve_init=args.colour_solve_init,
                            colour_solve_every=args.colour_solve_every, lr_cov_scale=args.lr_cov_scale,
                            relocate_every=args.relocate_every, relocate_fraction=args.relocate_fraction,
                            lr_means_ref_n=args.lr_means_ref_n)
            res = fit(img, cfg, progress=False)
            rep = res.report()
            run = {"image": name, "n_gaussians": n, "steps": rep["steps"], "seconds": rep["seconds"],
                   "psnr": rep["psnr"], "psnr_float": rep["psnr_float"], "ms_ssim": rep["ms_ssim"],
                   "optimizer": args.optimizer, "lr": args.lr,
                   "lr_decay_every": args.lr_decay_every, "init": args.init,
                   "colour_solve_init": args.colour_solve_init, "lr_cov_scale": args.lr_cov_scale,
                   "relocate_every": args.relocate_every, "relocate_fraction": args.relocate_fraction,
                   "lr_means_ref_n": args.lr_means_ref_n,
                   "init_seconds": rep["init_seconds"],
                   "history": rep["history"],
                   "render_ms": render_time_ms(res.gaussians),
                   "date": today()}
            data["runs"].append(run)
            print(f"{name} N={n}: {run['psnr']:.2f} dB, MS-SSIM {run['ms_ssim']:.4f}, {run['seconds']:.0f} s, "
                  f"render {run['render_ms']:.1f} ms", flush=True)
            write_json(out, data)


if __name__ == "__main__":
    main()
