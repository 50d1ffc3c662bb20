"""Parse + dequantise time of .spix files (bytes -> Gaussians, no render): median of ``--repeats`` after a warm-up.

    python benchmarks/parse_time.py FILE.spix [...] --out benchmarks/results/parse_time.json

Used to time two versions of the decoder on identical files: run it once per checkout with
``PYTHONPATH=<checkout>/src`` (``--label`` names the version in the output).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numba
import torch

import splatpix
from splatpix.bench import append_row, load_rows
from splatpix.codec.spix import unpack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    data = load_rows(out, "parse_time")
    for f in args.files:
        blob = Path(f).read_bytes()
        unpack(blob)[0].dequantize()
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            unpack(blob)[0].dequantize()
            ts.append(time.perf_counter() - t0)
        row = {"file": Path(f).name, "label": args.label, "splatpix": str(Path(splatpix.__file__).parent),
               "parse_dequantise_ms": 1e3 * statistics.median(ts), "numba_threads": numba.get_num_threads(),
               "torch_threads": torch.get_num_threads(), "date": datetime.now(UTC).strftime("%Y-%m-%d")}
        append_row(out, data, row)


if __name__ == "__main__":
    main()
