"""Parse + dequantise time of .spix files (bytes -> Gaussians, no render): median of ``--repeats`` after a warm-up.

    python benchmarks/codec/parse_time.py FILE.spix [...] --out benchmarks/codec/results/parse_time.json

Used to time two versions of the decoder on identical files: run it once per checkout with
``PYTHONPATH=<checkout>/src`` (``--label`` names the version in the output).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numba
import torch

import splatpix
from splatpix.codec.api import unpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import append_row, load_rows, median_ms, today  # noqa: E402


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
        ms = median_ms(lambda blob=blob: unpack(blob)[0].dequantize(), args.repeats)
        row = {"file": Path(f).name, "label": args.label, "splatpix": str(Path(splatpix.__file__).parent),
               "parse_dequantise_ms": ms, "numba_threads": numba.get_num_threads(),
               "torch_threads": torch.get_num_threads(), "date": today()}
        append_row(out, data, row)


if __name__ == "__main__":
    main()
