"""Edit-fidelity benchmark: edited renders vs the image warped by the same deformation (``splatpix.eval.edit_fidelity``
for the definition), with and without covariance transformation, for already-fitted models of either kind.

    python benchmarks/edit/edit_fidelity.py --pair gi.safetensors img.png --pair gainer.safetensors img.png \\
        --out benchmarks/edit/results/edit_fidelity

Writes ``edit_fidelity.json`` (every row), ``edit_fidelity.md`` (one table per model) and ``examples/*.png``
(ground truth | covariance transformed | means only, for the strongest setting of each op) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from splatpix.cli.edit import load_any_model
from splatpix.edit import model_kind, parse_region
from splatpix.eval.edit_fidelity import QUICK_SUITE, SUITE, run_suite
from splatpix.io import load_image, save_image


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _fmt(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| op | strength | PSNR cov | PSNR means only | Δ PSNR | SSIM cov | SSIM means only | pixels |",
           "|---|---|---|---|---|---|---|---|"]
    ident = rows[0]
    out.append(f"| identity | | {_fmt(ident['psnr'], 2)} | | | {_fmt(ident['ssim'], 4)} | | {ident['pixels']} |")
    pairs: dict[tuple[str, str], dict[bool, dict[str, Any]]] = {}
    for r in rows[1:]:
        pairs.setdefault((r["op"], r["strength"]), {})[r["transform_covariance"]] = r
    for (op, strength), p in pairs.items():
        a, b = p[True], p[False]
        delta = None if a["psnr"] is None or b["psnr"] is None else a["psnr"] - b["psnr"]
        out.append(f"| {op} | {strength} | {_fmt(a['psnr'], 2)} | {_fmt(b['psnr'], 2)} | {_fmt(delta, 2)} | "
                   f"{_fmt(a['ssim'], 4)} | {_fmt(b['ssim'], 4)} | {a['pixels']} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", nargs=2, action="append", metavar=("MODEL", "IMAGE"), required=True,
                    help="a fitted model file (GaussianImage or GaINeR) and the image it was fitted to")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--quick", action="store_true", help="one strength per op (7 settings instead of 16)")
    ap.add_argument("--limit-ops", type=int, help="only the first N settings of the suite (smoke tests)")
    ap.add_argument("--region", help="restrict the edits to a region (splatpix.edit.parse_region syntax)")
    ap.add_argument("--feather", type=float, default=0.0, help="feather of --region, in pixels")
    ap.add_argument("--examples", type=int, default=1, help="save example PNGs for the first N pairs (default 1)")
    args = ap.parse_args()

    suite = QUICK_SUITE if args.quick else SUITE
    if args.limit_ops:
        suite = suite[: args.limit_ops]
    out = Path(args.out)
    (out / "examples").mkdir(parents=True, exist_ok=True)
    region = parse_region(args.region, args.feather) if args.region else None
    results, md = [], ["# Edit fidelity", "", "PSNR (dB, 8-bit) and SSIM of the edited render against the image "
                       "warped by the same deformation, inside the mask of valid pixels (splatpix.eval.edit_fidelity)."]
    for k, (model_path, image_path) in enumerate(args.pair):
        model = load_any_model(model_path)
        image = load_image(image_path)
        kind = model_kind(model)
        strongest: dict[str, str] = {}
        for op, label, _ in suite:
            strongest[op] = label
        examples: dict[tuple[str, str], dict[bool, Any]] = {}

        def keep(r: dict[str, Any], k: int = k, strongest: dict[str, str] = strongest,
                 examples: dict = examples) -> None:
            if k < args.examples and strongest.get(r["op"]) == r["strength"]:
                examples.setdefault((r["op"], r["strength"]), {})[r["transform_covariance"]] = r

        t0 = time.perf_counter()
        rows = run_suite(model, image, suite, region, on_result=keep)
        seconds = time.perf_counter() - t0
        for (op, label), p in examples.items():
            strip = torch.cat((p[True]["target"], p[True]["render"], p[False]["render"]), 2)
            save_image(strip, out / "examples" / f"{k}_{kind}_{op}_{label}.png")
        clean = [{**r, "psnr": _num(r["psnr"]), "ssim": _num(r["ssim"])} for r in rows]
        results.append({"model": os.fspath(model_path), "image": os.fspath(image_path), "kind": kind,
                        "n_gaussians": int(model.n), "size": list(model.size), "seconds": seconds, "rows": clean})
        md += ["", f"## {Path(model_path).name} ({kind}, {model.n} Gaussians, {model.size[1]}x{model.size[0]})", ""]
        md += _table(clean)
        print(f"{model_path}: {len(rows)} rows in {seconds:.1f} s")
    payload = {"suite": [{"op": op, "strength": label, "params": params} for op, label, params in suite],
               "region": args.region, "feather": args.feather, "results": results}
    (out / "edit_fidelity.json").write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    (out / "edit_fidelity.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out / 'edit_fidelity.json'} and {out / 'edit_fidelity.md'}")


if __name__ == "__main__":
    main()
