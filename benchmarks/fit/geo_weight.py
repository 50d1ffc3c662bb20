"""Ablation of the geometry-consistent loss weight (issue #4, §2): representation quality against ``geo_weight``.

    python benchmarks/fit/geo_weight.py --images ../shared/datasets/kodak --limit 3 --n 5000 --steps 1000 \
        --weights 0 0.003 0.01 0.03 0.1 --out benchmarks/fit/results/geo_weight.json

Each run: structure-guided initialisation + colour solve, Adam lr 1e-2 halved every ``--lr-decay-every`` steps,
the loss ``MSE + geo_weight * L_geo`` (splatpix.train.geometry), the same seed for every weight. Records PSNR (8-bit),
MS-SSIM and the fit time; the JSON is rewritten after every run and finished runs are skipped on restart.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from splatpix import FitConfig, fit, load_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, load_runs, today, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(KODAK), help="folder of PNG images (default: Kodak)")
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr-decay-every", type=int, default=500)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.003, 0.01, 0.03, 0.1])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    paths = sorted(Path(args.images).glob("*.png"))[: args.limit]
    out = Path(args.out)
    data = load_runs(out, "geo_weight", machine=platform.platform(), args=vars(args))
    done = {(r["image"], r["geo_weight"]) for r in data["runs"]}
    for path in paths:
        img = load_image(path)
        for w in args.weights:
            if (path.name, w) in done:
                continue
            cfg = FitConfig(n_gaussians=args.n, steps=args.steps, optimizer="adam", lr=1e-2,
                            lr_decay_every=args.lr_decay_every, init="structure", colour_solve_init=True,
                            geo_weight=w, log_every=args.steps)
            res = fit(img, cfg, progress=False)
            run = {"image": path.name, "geo_weight": w, "psnr": res.psnr, "ms_ssim": res.ms_ssim,
                   "seconds": res.seconds, "date": today()}
            data["runs"].append(run)
            print(json.dumps(run), flush=True)
            write_json(out, data)
    print("| geo_weight | " + " | ".join(p.name for p in paths) + " | mean PSNR | mean MS-SSIM |")
    print("|---|" + "---|" * (len(paths) + 2))
    for w in args.weights:
        rs = [r for r in data["runs"] if r["geo_weight"] == w]
        cells = [next((f"{r['psnr']:.2f} / {r['ms_ssim']:.4f}" for r in rs if r["image"] == p.name), "–")
                 for p in paths]
        mp = sum(r["psnr"] for r in rs) / max(len(rs), 1)
        mm = sum(r["ms_ssim"] for r in rs) / max(len(rs), 1)
        print(f"| {w:g} | " + " | ".join(cells) + f" | {mp:.2f} | {mm:.4f} |")


if __name__ == "__main__":
    main()
