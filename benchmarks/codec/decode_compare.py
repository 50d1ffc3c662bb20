"""Decode time of several ``.spix`` files measured round-robin (file A, B, C, A, B, C, ...), so that a change in the
machine's speed during the run hits every file alike; use it to compare codecs at equal N.

    python benchmarks/codec/decode_compare.py /tmp/gik/*.spix /tmp/spk/*.spix \
        --image ../shared/datasets/kodak/kodim23.png --repeats 41 --out benchmarks/codec/results/decode_compare.json

Per file: the median over the rounds of decode in memory (bytes -> parse, entropy-decode, dequantise -> render,
clamped), of parse + dequantise alone and of render alone (the render includes projection and the clamp), the
pairs per pixel the rasteriser evaluates, bpp from the file size and, with ``--image``, PSNR on the 8-bit decoded
image. One warm-up round first (numba compiles or loads its cache).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numba
import torch

from splatpix.codec.api import unpack
from splatpix.io import load_image
from splatpix.metrics import psnr
from splatpix.render import render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import count_model_pairs, today, write_json  # noqa: E402


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--image", help="the original image (for PSNR)")
    ap.add_argument("--repeats", type=int, default=41)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    blobs = {f: Path(f).read_bytes() for f in args.files}
    models = {f: unpack(b)[0].dequantize() for f, b in blobs.items()}

    def in_memory(blob: bytes) -> None:
        render(unpack(blob)[0].dequantize(), clamp=True)

    def parse(blob: bytes) -> None:
        unpack(blob)[0].dequantize()

    times: dict[str, dict[str, list[float]]] = {f: {"decode": [], "parse": [], "render": []} for f in blobs}
    with torch.no_grad():
        for r in range(args.repeats + 1):
            for f, blob in blobs.items():
                ts = (_timed(lambda b=blob: in_memory(b)), _timed(lambda b=blob: parse(b)),
                      _timed(lambda g=models[f]: render(g, clamp=True)))
                if r:  # round 0 warms up
                    for key, t in zip(("decode", "parse", "render"), ts, strict=True):
                        times[f][key].append(t)
    img = load_image(args.image) if args.image else None
    rows = []
    for f, blob in blobs.items():
        g = models[f]
        h, w = g.size
        with torch.no_grad():
            out = render(g, clamp=True)
        pairs = count_model_pairs(g)
        row = {"file": Path(f).name, "n_gaussians": g.n, "bytes": len(blob), "bpp": 8 * len(blob) / (h * w),
               "psnr": psnr(out, img) if img is not None else None, "pairs_per_pixel": pairs / (h * w),
               **{f"{k}_ms": 1e3 * statistics.median(v) for k, v in times[f].items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    data = {"benchmark": "decode_compare", "date": today(), "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "rows": rows}
    write_json(args.out, data)


if __name__ == "__main__":
    main()
