"""Codec levers on the fixed ablation subset: one fit per image and N (per distinct fit options), then QAT and
coding with each variant's options, so that variants differing only after the fit share it.

    python benchmarks/codec/ablation.py --variant vq colour=vq --variant scalar colour=scalar \
        --out benchmarks/codec/results/ablation_colour.json

Subset (the issue's): kodim01, 04, 08, 13, 19, 23 at N = 1000, 3000, 5000, 9000 with the RD schedule
(``splatpix.presets.CODEC_PRESETS["cpu"]``, method ``sga``). ``--variant NAME KEY=VALUE ...``: encode options as
:func:`splatpix.codec.api.encode_configs` takes them (values parsed as JSON where they parse, ``a,b,c`` as a
tuple). Rows (bpp from the file's bytes, PSNR of the 8-bit decoded image, seconds) are appended to ``--out``; a row
already there is skipped, so a stopped run resumes. At the end each variant's mean curve and its BD-rate against
the first variant (Akima) are printed and stored under ``summary``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from splatpix.codec.api import encode, encode_configs
from splatpix.eval.bdrate import bd_psnr, bd_rate
from splatpix.io import load_image
from splatpix.model.files import load_model, save_model
from splatpix.train.loop import FitResult, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, append_row, load_rows, machine, today, write_json  # noqa: E402

SUBSET = ["kodim01.png", "kodim04.png", "kodim08.png", "kodim13.png", "kodim19.png", "kodim23.png"]
POINTS = [1000, 3000, 5000, 9000]


def _value(text: str) -> Any:
    if "," in text:
        return tuple(_value(t) for t in text.split(",") if t)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_variants(items: list[list[str]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, *pairs in items:
        opts = {}
        for p in pairs:
            key, _, val = p.partition("=")
            opts[key.replace("-", "_")] = _value(val)
        out[name] = opts
    return out


def per_image(rows: list[dict], variants: list[str]) -> dict[str, Any]:
    """Per image with every variant at 4 or more common points: BD-rate of each variant against the first."""
    out: dict[str, Any] = {}
    for img in sorted({r["image"] for r in rows}):
        by = {v: {r["n_gaussians"]: r for r in rows if r["variant"] == v and r["image"] == img} for v in variants}
        pts = sorted(set.intersection(*(set(b) for b in by.values())))
        if len(pts) < 4:
            continue
        a = by[variants[0]]
        out[img] = {"points": pts}
        for v in variants[1:]:
            t = by[v]
            out[img][v] = bd_rate([a[n]["bpp"] for n in pts], [a[n]["psnr"] for n in pts],
                                  [t[n]["bpp"] for n in pts], [t[n]["psnr"] for n in pts], min_overlap=0.0)
    return out


def summarise(rows: list[dict], variants: list[str]) -> dict[str, Any]:
    """Mean curve per variant over the (image, N) pairs every variant has, and BD-rate against the first."""
    keys = None
    for v in variants:
        k = {(r["image"], r["n_gaussians"]) for r in rows if r["variant"] == v}
        keys = k if keys is None else keys & k
    keys = sorted(keys or [])
    points = sorted({n for _, n in keys})
    images = sorted({i for i, _ in keys})
    if len(points) < 4 or any((i, n) not in set(keys) for i in images for n in points):
        return {"complete": False, "pairs": len(keys), "per_image_bd_rate_pct": per_image(rows, variants)}
    curves = {}
    for v in variants:
        by = {(r["image"], r["n_gaussians"]): r for r in rows if r["variant"] == v}
        curves[v] = {
            "bpp": [float(np.mean([by[(i, n)]["bpp"] for i in images])) for n in points],
            "psnr": [float(np.mean([by[(i, n)]["psnr"] for i in images])) for n in points],
            "qat_seconds": [float(np.mean([by[(i, n)]["qat_seconds"] for i in images])) for n in points]}
    a = curves[variants[0]]
    out: dict[str, Any] = {"complete": True, "images": images, "points": points, "curves": curves, "bd_rate": {},
                           "per_image_bd_rate_pct": per_image(rows, variants)}
    for v in variants[1:]:
        t = curves[v]
        out["bd_rate"][v] = {"bd_rate_pct": bd_rate(a["bpp"], a["psnr"], t["bpp"], t["psnr"], min_overlap=0.0),
                             "bd_psnr_db": bd_psnr(a["bpp"], a["psnr"], t["bpp"], t["psnr"], min_overlap=0.0)}
    return out


def cached_fit(img: Any, fc: Any, name: str, key: str, cache: str | None) -> FitResult:
    """``fit(img, fc)``, or the fit stored in ``cache`` under the hash of its config (a model file of ours)."""
    if cache is None:
        return fit(img, fc, progress=False)
    stem = Path(cache) / f"{Path(name).stem}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    side = stem.with_suffix(".json")
    if side.exists():
        info = json.loads(side.read_text())
        return FitResult(gaussians=load_model(stem.with_suffix(".safetensors")), psnr=info["psnr"],
                         psnr_float=info["psnr_float"], ms_ssim=None, seconds=info["seconds"], steps=info["steps"],
                         n_gaussians=fc.n_gaussians, config=fc)
    res = fit(img, fc, progress=False)
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_model(res.gaussians, stem.with_suffix(".safetensors"))
    write_json(side, {"psnr": res.psnr, "psnr_float": res.psnr_float, "seconds": res.seconds, "steps": res.steps})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", nargs="+", default=SUBSET)
    ap.add_argument("--points", type=int, nargs="+", default=POINTS)
    ap.add_argument("--method", default="sga")
    ap.add_argument("--variant", nargs="+", action="append", required=True, metavar="NAME [KEY=VALUE ...]")
    ap.add_argument("--out", required=True)
    ap.add_argument("--also", nargs="*", default=[], help="more results files whose rows join the summary (runs "
                                                          "split across processes)")
    ap.add_argument("--summary-only", action="store_true", help="run nothing: summarise the rows there are")
    ap.add_argument("--fit-cache", default=None, help="folder of fitted models (safetensors + JSON) reused across "
                                                      "runs")
    args = ap.parse_args()
    variants = parse_variants(args.variant)
    out = Path(args.out)
    data = load_rows(out, "codec_ablation")
    data["variants"] = {k: {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in v.items()}
                        for k, v in variants.items()}
    done = {(r["variant"], r["image"], r["n_gaussians"]) for r in data["rows"]}
    for name in [] if args.summary_only else args.images:
        img = load_image(Path(args.kodak) / name)
        for n in args.points:
            fits: dict[str, Any] = {}
            for vname, opts in variants.items():
                if (vname, name, n) in done:
                    continue
                fc, qc, mo = encode_configs(args.method, "cpu", opts)
                fc = dataclasses.replace(fc, n_gaussians=n, param="cholesky")
                key = json.dumps(dataclasses.asdict(fc), sort_keys=True, default=str)
                t0 = time.perf_counter()
                if key not in fits:
                    fits[key] = cached_fit(img, fc, name, key, args.fit_cache)
                fit_s = time.perf_counter() - t0
                t1 = time.perf_counter()
                res = encode(img, n, method=args.method, fit_config=fc, qat_config=qc, options=mo,
                             fitted=fits[key], progress=False)
                r = res.report
                row = {"variant": vname, "image": name, "n_gaussians": n, "bpp": r["bpp"], "psnr": r["psnr"],
                       "psnr_fit": r["psnr_fit"], "bytes": r["bytes"], "qat_seconds": time.perf_counter() - t1,
                       "fit_seconds": fit_s, "tier_bits": r.get("tier_bits"), "colour_bits": r.get("colour_bits"),
                       "colour": r.get("colour"), "alternatives": r.get("alternatives"),
                       "date": today()}
                append_row(out, data, row)
    rows = list(data["rows"])
    for extra in args.also:
        rows += json.loads(Path(extra).read_text())["rows"]
    data["summary"] = summarise(rows, list(variants))
    data["machine"] = machine()
    write_json(out, data)
    print(json.dumps(data["summary"], indent=1))


if __name__ == "__main__":
    main()
