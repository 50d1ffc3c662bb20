"""Footprint-aware fit of the ``sga`` codec: bpp, PSNR and the rasteriser's pairs per pixel against the footprint
weight (``FitConfig.footprint_weight`` = ``QATConfig.footprint_weight``), at the RD schedule.

    python benchmarks/codec/footprint.py --images ../shared/datasets/kodak --limit 3 --gaussians 1000 9000 \
        --weights 0 0.02 0.05 --out benchmarks/codec/results/footprint.json

Decode time at a given N is proportional to the pairs per pixel (docs/results.md, "Codec: decode speed"); the file is
the codec's real output, PSNR on the 8-bit decoded image, bpp from its bytes. Rows already in ``--out`` are kept
and skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from splatpix.codec.api import encode, unpack
from splatpix.eval.harness import list_images
from splatpix.io import load_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, append_row, count_model_pairs, load_rows, rd_configs, today  # noqa: E402


def pairs_per_pixel(blob: bytes) -> float:
    g = unpack(blob)[0].dequantize()
    return count_model_pairs(g) / (g.size[0] * g.size[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(KODAK))
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--names", nargs="*", help="only these image files (e.g. kodim23.png)")
    ap.add_argument("--gaussians", type=int, nargs="+", default=[1000, 9000])
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.02, 0.05])
    ap.add_argument("--qat-weight", type=float, default=None,
                    help="QAT's footprint weight (default: the fit's, as splatpix encode does)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--qat-steps", type=int, default=1000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    data = load_rows(out, "footprint")
    done = {(r["image"], r["n_gaussians"], r["footprint_weight"], r.get("qat_footprint_weight", r["footprint_weight"]))
            for r in data["rows"]}
    images = list_images(args.images, None if args.names else args.limit)
    if args.names:
        images = [p for p in images if p.name in args.names]
    for path in images:
        img = load_image(path)
        for n in args.gaussians:
            for w in args.weights:
                qw = w if args.qat_weight is None else args.qat_weight
                if (path.name, n, w, qw) in done:
                    continue
                fc, qc = rd_configs("sga", steps=args.steps, qat_steps=args.qat_steps, footprint_weight=w,
                                    qat_footprint_weight=qw)
                t0 = time.perf_counter()
                res = encode(img, n, method="sga", fit_config=fc, qat_config=qc, progress=False)
                row = {"image": path.name, "n_gaussians": n, "footprint_weight": w, "qat_footprint_weight": qw,
                       "bpp": res.report["bpp"],
                       "psnr": res.report["psnr"], "ms_ssim": res.report["ms_ssim"],
                       "pairs_per_pixel": pairs_per_pixel(res.data), "psnr_fit": res.report["psnr_fit"],
                       "seconds": time.perf_counter() - t0, "steps": args.steps, "qat_steps": args.qat_steps,
                       "torch_threads": torch.get_num_threads(), "date": today()}
                append_row(out, data, row)


if __name__ == "__main__":
    main()
