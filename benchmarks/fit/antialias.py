"""Rendering at 2x without needles: fit a model on the 2x-downscaled image, render it at 2x, and score it against the
true full-size image; against Lanczos upscaling of the 1x render; with a render-time minimum footprint (each
Gaussian's covariance dilated by ``v`` native px^2, its colour scaled by ``sqrt(det S / det (S + v I))`` so that its
integral is unchanged, Mip-Splatting's 2-D filter), for several ``v``, with the 1x PSNR of each (which must not move).

    python benchmarks/fit/antialias.py --images ../shared/datasets/kodak --limit 3 --preset fast \\
        --out benchmarks/fit/results/antialias.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, machine, today, write_json  # noqa: E402

FILTERS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


def dilated(g, v: float):
    """``g`` (GaussianArrays, Cholesky) with every covariance + ``v`` I (native px^2), colours scaled to keep each
    Gaussian's integral."""
    from splatpix.model.arrays import GaussianArrays, covariance_from_params

    c = covariance_from_params(g.cov_params.astype(np.float64), g.param)
    det = c[:, 0] * c[:, 2] - c[:, 1] ** 2
    c2 = c + np.array([v, 0.0, v])
    det2 = c2[:, 0] * c2[:, 2] - c2[:, 1] ** 2
    l11 = np.sqrt(c2[:, 0])
    l21 = c2[:, 1] / l11
    l22 = np.sqrt(np.maximum(c2[:, 2] - l21 * l21, 0))
    k = np.sqrt(np.maximum(det, 0) / det2)[:, None]
    return GaussianArrays(g.means, np.stack((l11, l21, l22), 1), g.colours * k, "cholesky", g.size)


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    x = np.round(np.clip(a, 0, 1) * 255)
    y = np.round(np.clip(b, 0, 1) * 255)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def main() -> None:
    import torch
    from PIL import Image

    from splatpix.cli import build_parser
    from splatpix.cli.model import fit_config
    from splatpix.model.arrays import as_arrays
    from splatpix.render.arrays import render_array
    from splatpix.train.loop import fit

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default=str(KODAK))
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = []
    for path in sorted(Path(args.images).glob("kodim*.png"))[: args.limit]:
        full = Image.open(path).convert("RGB")
        small = full.resize((full.width // 2, full.height // 2), Image.Resampling.LANCZOS)
        target_full = np.asarray(full, dtype=np.float64).transpose(2, 0, 1) / 255
        target = np.asarray(small, dtype=np.float64).transpose(2, 0, 1) / 255
        cfg = fit_config(build_parser().parse_args(["fit", "x.png", "-o", "m", "--preset", args.preset]),
                         target.shape[1:])
        res = fit(torch.from_numpy(target.astype(np.float32)), cfg, progress=False)
        g = as_arrays(res.gaussians)
        one = render_array(g, clamp=True)
        lanczos = np.asarray(Image.fromarray(np.round(one.transpose(1, 2, 0) * 255).astype(np.uint8)).resize(
            full.size, Image.Resampling.LANCZOS), dtype=np.float64).transpose(2, 0, 1) / 255
        row = {"image": path.name, "n_gaussians": cfg.n_gaussians, "steps": res.steps, "psnr_1x": psnr8(one, target),
               "psnr_2x_lanczos": psnr8(lanczos, target_full), "filters": {}}
        cov = g.cov_params.astype(np.float64)
        row["needles_below_0.3px"] = int(np.sum(np.minimum(np.abs(cov[:, 0]), np.abs(cov[:, 2])) < 0.3))
        for v in FILTERS:
            gv = dilated(g, v) if v else g
            row["filters"][str(v)] = {"psnr_1x": psnr8(render_array(gv, clamp=True), target),
                                      "psnr_2x": psnr8(render_array(gv, scale=2.0, clamp=True), target_full)}
        rows.append(row)
        print(row, flush=True)
    write_json(args.out, {"date": today(), "machine": machine(), "preset": args.preset, "rows": rows})


if __name__ == "__main__":
    main()
