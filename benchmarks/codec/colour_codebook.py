"""Colour codebook size of the ``sga`` codec (residual VQ, 2 stages of K codewords): one fit per image, N and
footprint weight, then QAT + coding with each K, so that only the colour quantiser differs between the rows.

    python benchmarks/codec/colour_codebook.py --images kodim23.png kodim01.png --gaussians 3000 \
        --codebooks 8 16 32 64 --out benchmarks/codec/results/colour_codebook.json
    python benchmarks/codec/colour_codebook.py --images kodim23.png --gaussians 3000 --footprint-weight 0.3 \
        --codebooks 8 32 --out benchmarks/codec/results/colour_codebook.json

RD schedule (2000 fit steps, Adam 1e-2 halved at 1000, sga's fitting defaults; 1000 QAT steps, Adam 1e-3). Per row:
bpp from the file's bytes, PSNR of the 8-bit decoded image, the fit's PSNR (before any quantisation) and, as
``psnr_ptq``, the PSNR with the fitted colours quantised by the initial (k-means) codebooks, before QAT. Rows are
appended to ``--out`` (one fit per image/N/weight: re-running adds rows).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from splatpix.codec.api import encode
from splatpix.codec.quantize import ResidualVQ
from splatpix.io import load_image
from splatpix.metrics import psnr
from splatpix.model.gaussians import Gaussians
from splatpix.render import render
from splatpix.train.loop import fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, append_row, load_rows, rd_configs, today  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", nargs="+", required=True)
    ap.add_argument("--gaussians", type=int, nargs="+", default=[3000])
    ap.add_argument("--codebooks", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--footprint-weight", type=float, default=0.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    data = load_rows(out, "colour_codebook")
    for name in args.images:
        img = load_image(Path(args.kodak) / name)
        for n in args.gaussians:
            fc, _ = rd_configs("sga", n, footprint_weight=args.footprint_weight)
            fitted = fit(img, fc, progress=False)
            for k in args.codebooks:
                g = fitted.gaussians
                with torch.no_grad():  # post-training quantisation of the fitted colours alone (no QAT)
                    vq = ResidualVQ(g.channels, 2, k).init_from(g.colours, seed=0)
                    ptq = psnr(render(Gaussians(g.means, g.cov_params, vq(g.colours), "cholesky", g.size),
                                      clamp=True), img)
                t0 = time.perf_counter()
                res = encode(img, n, method="sga", fit_config=fc, fitted=fitted, progress=False,
                             qat_config=rd_configs("sga", vq_codebook=k)[1])
                row = {"image": name, "n_gaussians": n, "footprint_weight": args.footprint_weight, "vq_stages": 2,
                       "vq_codebook": k, "bpp": res.report["bpp"], "psnr": res.report["psnr"],
                       "psnr_fit": res.report["psnr_fit"], "psnr_ptq": ptq, "qat_seconds": time.perf_counter() - t0,
                       "torch_threads": torch.get_num_threads(), "date": today()}
                append_row(out, data, row)


if __name__ == "__main__":
    main()
