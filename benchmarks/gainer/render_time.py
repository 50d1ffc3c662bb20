"""Render time of a baked GaINeR model: the whole render and its parts (KNN, weights + aggregation, MLP).

For each model file: the median of ``--repeats`` renders at the native size (after one warm-up render, which also
builds the KNN index), at ``--scale`` times the native size, and of a centre crop of a quarter of the image at the
native pixel density; and for the native render the time of each part, measured apart on the same pixels:
the KNN query (:meth:`~splatpix.gainer.GainerField.neighbours`), the fused weights and aggregation
(:func:`splatpix.gainer.fused.aggregate_forward`) and the MLP (:meth:`~splatpix.gainer.GainerField.decode`).

Usage::

    python benchmarks/gainer/render_time.py MODEL.safetensors ... --out benchmarks/gainer/results/render_time.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from splatpix.gainer import load_gainer
from splatpix.gainer.fused import aggregate_forward

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import machine, today, write_json  # noqa: E402


def median_s(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def measure(path: str, repeats: int, scale: float) -> dict:
    """The timings of one model file (module docstring)."""
    f = load_gainer(path)
    h, w = f.size
    load0 = os.getloadavg()
    f.render()  # warm-up: kernels, KNN index
    full = median_s(lambda: f.render(), repeats)
    big = median_s(lambda: f.render(round(h * scale), round(w * scale)), repeats)
    crop = median_s(lambda: f.render(h // 2, w // 2, (0.25, 0.25, 0.75, 0.75)), repeats)
    us = (torch.arange(w, dtype=torch.float64) + 0.5) / w
    vs = (torch.arange(h, dtype=torch.float64) + 0.5) / h
    q = torch.stack(torch.meshgrid(vs, us, indexing="ij")[::-1], -1).reshape(-1, 2).to(torch.float32)
    feats = f.gaussian_features()
    idx, _ = f.neighbours(q)
    mean = f.cfg.aggregation == "mean"
    agg = aggregate_forward(q, idx, f.means, f.cov_params, feats, mean)
    with torch.no_grad():
        parts = {
            "knn": median_s(lambda: f.neighbours(q), repeats),
            "aggregate": median_s(lambda: aggregate_forward(q, idx, f.means, f.cov_params, feats, mean), repeats),
            "mlp": median_s(lambda: f.decode(agg), repeats),
        }
    return {"model": Path(path).name, "date": today(), "machine": machine(), "size": [h, w],
            "n_gaussians": f.n, "k": f.cfg.k, "mlp_arch": f.cfg.mlp_arch,
            "native_ms": 1e3 * full, f"scale_{scale:g}_ms": 1e3 * big, "crop_quarter_ms": 1e3 * crop,
            "parts_ms": {k: 1e3 * v for k, v in parts.items()},
            "loadavg_start": load0, "loadavg_end": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    runs = []
    for path in args.models:
        run = measure(path, args.repeats, args.scale)
        print(json.dumps({k: v for k, v in run.items() if k != "machine"}))
        runs.append(run)
    if args.out:
        p = Path(args.out)
        data = json.loads(p.read_text()) if p.exists() else {"runs": []}
        data["runs"].extend(runs)
        write_json(p, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
