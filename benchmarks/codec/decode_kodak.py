"""Decode-time benchmark of .spix files: end-to-end (read file, parse + entropy-decode, dequantise, render, write
PNG), in memory (bytes -> image tensor) and render-only, per rate point; and Pillow's WebP decode (bytes -> pixels)
of the same image at a similar rate. ``--method sga`` times the structure-guided codec instead (its decoder also
decodes the grid positions and derives the covariance tiers).

    python benchmarks/codec/decode_kodak.py --image ../shared/datasets/kodak/kodim23.png --steps 2000 --qat-steps 500 \
        --out benchmarks/codec/results/decode_kodak.json

``--keep DIR --encode-only`` encodes into DIR (on a busy machine), and ``--keep DIR --reuse`` later times those
files alone. Encodes the image once per N (decode speed depends on N and the Gaussians' sizes, not much on the training
length), then times each stage: medians of ``--repeats`` runs after one warm-up. ``pairs`` is the number of
(pixel, Gaussian) pairs the renderer evaluates (the sum of the Gaussians' clipped 3-sigma ellipse areas), which
render time is proportional to.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image

from splatpix.codec import registry
from splatpix.codec.api import encode, unpack
from splatpix.eval.baselines import encode_at_bpp
from splatpix.io import load_image, save_image
from splatpix.metrics import psnr
from splatpix.render import render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, count_model_pairs, median_ms, rd_configs, today, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default=str(KODAK / "kodim23.png"))
    ap.add_argument("--gaussians", type=int, nargs="+", default=[800, 1000, 3000, 5000, 7000, 9000])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--qat-steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--method", choices=registry.names(), default="gaussianimage")
    ap.add_argument("--keep", help="also copy each encoded .spix file into this folder (e.g. to time other decoders)")
    ap.add_argument("--reuse", action="store_true", help="time the files already in --keep instead of encoding")
    ap.add_argument("--encode-only", action="store_true", help="encode into --keep, time nothing (a busy machine)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if (args.reuse or args.encode_only) and not args.keep:
        ap.error("--reuse and --encode-only need --keep DIR")
    img = load_image(args.image)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.gaussians:
            kept = Path(args.keep) / f"{args.method}_n{n}.spix" if args.keep else None
            if args.reuse and kept is not None and kept.exists():  # time an earlier run's file
                blob = kept.read_bytes()
                with torch.no_grad():
                    dec = render(unpack(blob)[0].dequantize(), clamp=True)
                report = {"bpp": 8 * len(blob) / (img.shape[1] * img.shape[2]), "psnr": psnr(dec, img)}
            else:
                fc, qc = rd_configs(args.method, steps=args.steps, qat_steps=args.qat_steps)
                res = encode(img, n, method=args.method, fit_config=fc, qat_config=qc, progress=False)
                blob, report = res.data, res.report
                if kept is not None:
                    kept.parent.mkdir(parents=True, exist_ok=True)
                    kept.write_bytes(blob)
                if args.encode_only:
                    continue
            spix = Path(tmp) / f"n{n}.spix"
            spix.write_bytes(blob)
            png = Path(tmp) / f"n{n}.png"

            def end_to_end(spix=spix, png=png):
                q, _ = unpack(spix.read_bytes())
                with torch.no_grad():
                    out = render(q.dequantize(), clamp=True)
                save_image(out, png)

            def in_memory(data=blob):
                q, _ = unpack(data)
                with torch.no_grad():
                    render(q.dequantize(), clamp=True)

            def unpack_only(data=blob):
                unpack(data)[0].dequantize()

            g = unpack(blob)[0].dequantize()

            def render_only(g=g):
                with torch.no_grad():
                    render(g, clamp=True)

            pairs = count_model_pairs(g)
            webp = encode_at_bpp("webp", img, report["bpp"])

            def webp_decode(data=webp.bytes):
                Image.open(io.BytesIO(data)).convert("RGB").load()

            row = {"n_gaussians": n, "bpp": report["bpp"], "psnr": report["psnr"],
                   "end_to_end_ms": median_ms(end_to_end, args.repeats),
                   "decode_in_memory_ms": median_ms(in_memory, args.repeats),
                   "unpack_dequantise_ms": median_ms(unpack_only, args.repeats),
                   "render_only_ms": median_ms(render_only, args.repeats),
                   "pairs": pairs, "pairs_per_pixel": pairs / (g.size[0] * g.size[1]),
                   "webp_bpp": webp.bpp, "webp_psnr": webp.psnr,
                   "webp_decode_ms": median_ms(webp_decode, args.repeats)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.encode_only:
        return
    data = {"benchmark": "decode", "method": args.method, "image": Path(args.image).name,
            "date": today(),
            "torch_threads": torch.get_num_threads(), "steps": args.steps, "qat_steps": args.qat_steps, "rows": rows}
    write_json(args.out, data)


if __name__ == "__main__":
    main()
