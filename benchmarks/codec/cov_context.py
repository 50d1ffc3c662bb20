"""Context coding of the sga covariance symbols (l21, l22 in contexts of l11's top bits): bytes and decode time.

    python benchmarks/codec/cov_context.py --images ../shared/datasets/kodak --limit 3 --gaussians 1000 3000 9000 \
        --steps 500 --qat-steps 100 --out benchmarks/codec/results/cov_context.json

Encodes each image once per N with ``--method sga``, then packs the same quantised model with
``cov_context_bits`` = 0 (no context coding), 2 (the default) and 4 and records the file bytes and the median
in-memory parse + dequantise time. The coding is lossless, so the PSNR is the same for every width and the
relative size change is the BD-rate change at these points.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from splatpix import FitConfig, load_image
from splatpix.codec.api import EncodeResult, encode, unpack
from splatpix.codec.methods.sga import SGA_FIT_DEFAULTS, pack_sga
from splatpix.codec.qat import QATConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, median_ms, write_rows  # noqa: E402

WIDTHS = (0, 2, 4)


def encode_args(description: str | None) -> argparse.ArgumentParser:
    """The options shared with benchmarks/codec/colour_context.py: which images and N, the schedule, the output."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(KODAK), help="folder of PNG images (default: Kodak)")
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--gaussians", type=int, nargs="+", default=[1000, 3000, 9000])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--qat-steps", type=int, default=100)
    ap.add_argument("--out", required=True)
    return ap


def sga_encodes(args: argparse.Namespace) -> Iterator[tuple[Path, int, EncodeResult]]:
    """``encode --method sga`` of each image and N (its fitting defaults, Adam 1e-2 halved at half-way)."""
    for path in sorted(Path(args.images).glob("*.png"))[: args.limit]:
        img = load_image(path)
        for n in args.gaussians:
            fc = FitConfig(**SGA_FIT_DEFAULTS, steps=args.steps, optimizer="adam", lr=1e-2,
                           lr_decay_every=max(1, args.steps // 2))
            yield path, n, encode(img, n, method="sga", fit_config=fc, qat_config=QATConfig(steps=args.qat_steps),
                                  progress=False)


def main() -> None:
    ap = encode_args(__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    rows = []
    for path, n, res in sga_encodes(args):
        row = {"image": path.name, "n_gaussians": n, "psnr": res.report["psnr"]}
        for w in WIDTHS:
            data = pack_sga(res.quantized, cov_context_bits=w)
            row[f"bytes_c{w}"] = len(data)
            row[f"parse_ms_c{w}"] = median_ms(lambda data=data: unpack(data)[0].dequantize(), args.repeats)
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_rows(args.out, "cov_context", args, rows)
    print("| image | N | bytes (no context) | bytes (2 bits) | saving | parse ms | bytes (4 bits) | saving | ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b0 = r["bytes_c0"]
        print(f"| {r['image']} | {r['n_gaussians']} | {b0} | {r['bytes_c2']} | {100 * (r['bytes_c2'] / b0 - 1):+.1f} % "
              f"| {r['parse_ms_c0']:.1f} → {r['parse_ms_c2']:.1f} | {r['bytes_c4']} | "
              f"{100 * (r['bytes_c4'] / b0 - 1):+.1f} % | {r['parse_ms_c4']:.1f} |")


if __name__ == "__main__":
    main()
