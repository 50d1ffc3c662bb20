"""Measure the spacing-to-sigma constant of the image-driven initialisations (``init_scale``).

For each Kodak centre crop, each N, each initialisation (structure with per-cell or per-region spacing, gradient)
and each scale, the step-0 PSNR (8-bit) of the initialised model, before and after the least-squares colour solve.

    python benchmarks/fit/init_scale.py --images ../shared/datasets/kodak --limit 4 \
        --out benchmarks/fit/results/init_scale.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from splatpix.init.gradient import gradient_init
from splatpix.init.structure import structure_init
from splatpix.io import load_image
from splatpix.metrics import psnr
from splatpix.model.gaussians import Gaussians
from splatpix.render import render
from splatpix.train.colour_solve import solve_colours

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, centre_crop, parse_size  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(KODAK), help="folder of PNG images (default: Kodak)")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--names", nargs="*", help="image file names to use instead of the first --limit")
    ap.add_argument("--crop", default="192x128", help="centre crop WxH (default %(default)s)")
    ap.add_argument("--n", type=int, nargs="+", default=[1200, 2400])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.5, 0.7, 1.0])
    ap.add_argument("--iters", type=int, default=20, help="colour-solve CG iterations")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cw, ch = parse_size(args.crop)
    paths = sorted(Path(args.images).glob("*.png"))
    paths = [p for p in paths if p.name in args.names] if args.names else paths[: args.limit]
    rows = []
    for path in paths:
        img = centre_crop(load_image(path), ch, cw)
        for n in args.n:
            for scale in args.scales:
                for method in ("structure-cell", "structure-region", "gradient"):
                    t0 = time.perf_counter()
                    if method == "gradient":
                        g = gradient_init(img, n, scale=scale)
                    else:
                        g = structure_init(img, n, scale=scale, sigma_from=method.split("-")[1]).gaussians
                    t_init = time.perf_counter() - t0
                    p0 = psnr(render(g, clamp=True), img)
                    t0 = time.perf_counter()
                    cols = solve_colours(g, img, iters=args.iters)
                    t_solve = time.perf_counter() - t0
                    p1 = psnr(render(Gaussians(g.means, g.cov_params, cols, g.param, g.size), clamp=True), img)
                    row = {"image": path.name, "n": n, "scale": scale, "method": method, "psnr_init": p0,
                           "psnr_solved": p1, "init_seconds": t_init, "solve_seconds": t_solve}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary: dict[str, dict[str, float]] = {}
    for method in ("structure-cell", "structure-region", "gradient"):
        for scale in args.scales:
            sel = [r for r in rows if r["method"] == method and r["scale"] == scale]
            summary.setdefault(method, {})[str(scale)] = sum(r["psnr_solved"] for r in sel) / max(1, len(sel))
    out = {"crop": [ch, cw], "n": args.n, "iters": args.iters, "mean_psnr_solved": summary, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
