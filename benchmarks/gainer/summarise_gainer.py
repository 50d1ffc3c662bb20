"""Tables (markdown) and the PSNR-against-time plot of the GaINeR benchmarks (benchmarks/gainer/gainer_kodak.py,
benchmarks/gainer/gainer_alpha.py).

    python benchmarks/gainer/summarise_gainer.py --kodak benchmarks/gainer/results/gainer_kodak.json \
        --variants benchmarks/gainer/results/gainer_variants.json --alpha benchmarks/gainer/results/gainer_alpha.json \
        --plot docs/img/gainer_time.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def _f(x, d=2) -> str:
    return "–" if x is None else f"{x:.{d}f}"


def kodak_tables(data: dict) -> list[str]:
    runs = data["runs"]
    out = ["| image | GaINeR PSNR (8-bit / float) | fit s | model bytes | render ms | GaussianImage N (equal bytes) | "
           "its bytes | its final PSNR (3000 steps) | its fit s | its PSNR at GaINeR's fit time | its render ms |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        g, gi = r["gainer"], r.get("gaussianimage")
        row = [r["image"], f"{_f(g['psnr'])} / {_f(g['psnr_float'])}", _f(g["seconds"], 0), str(g["model_bytes"]),
               _f(g["render_ms"], 0)]
        if gi:
            fin = _f(gi["psnr"]) + (f" (diverged at step {gi['steps']})" if gi.get("diverged") else "")
            row += [str(gi["n_gaussians"]), str(gi["model_bytes"]), fin, _f(gi["seconds"], 0),
                    _f(gi["psnr_at_gainer_seconds"]), _f(gi["render_ms"], 1)]
        else:
            row += ["–"] * 6
        out.append("| " + " | ".join(row) + " |")
    if runs:
        mean = statistics.mean
        out.append(f"| **mean** | {_f(mean(r['gainer']['psnr'] for r in runs))} / "
                   f"{_f(mean(r['gainer']['psnr_float'] for r in runs))} | "
                   f"{_f(mean(r['gainer']['seconds'] for r in runs), 0)} | | "
                   f"{_f(mean(r['gainer']['render_ms'] for r in runs), 0)} | | | "
                   + (f"{_f(mean(r['gaussianimage']['psnr'] for r in runs))} | | "
                      f"{_f(mean(r['gaussianimage']['psnr_at_gainer_seconds'] for r in runs))} | |"
                      if all(r.get("gaussianimage") for r in runs) else "| | | |"))
    out += ["", "PSNR of the whole image against training time (GaINeR; evaluation renders not counted):", "",
            "| image | " + " | ".join(f"step {c['step']}" for c in runs[0]["gainer"]["curve"]) + " |",
            "|---|" + "---|" * len(runs[0]["gainer"]["curve"])]
    for r in runs:
        out.append(f"| {r['image']} | " + " | ".join(f"{c['psnr']:.2f} ({c['seconds']:.0f} s)"
                                                   for c in r["gainer"]["curve"]) + " |")
    return out


def variant_table(base: dict, variants: dict, image: str = "kodim23") -> list[str]:
    rows = [r for r in base["runs"] if r["image"] == image] + [r for r in variants["runs"] if r["image"] == image]
    out = ["| variant | PSNR (8-bit / float) | fit s | render ms |", "|---|---|---|---|"]
    for r in rows:
        g = r["gainer"]
        out.append(f"| {r['variant']} | {_f(g['psnr'])} / {_f(g['psnr_float'])} | {_f(g['seconds'], 0)} | "
                   f"{_f(g['render_ms'], 0)} |")
    return out


def alpha_table(data: dict) -> list[str]:
    out = ["| alpha model | colour PSNR inside the mask | alpha PSNR | alpha IoU (> 0.5) | fit s | model bytes |",
           "|---|---|---|---|---|---|"]
    for r in data["runs"]:
        out.append(f"| {r['alpha_model']} | {_f(r['colour_psnr_in_mask'])} | {_f(r['alpha_psnr'])} | "
                   f"{_f(r['alpha_iou'], 4)} | {_f(r['seconds'], 0)} | {r['model_bytes']} |")
    return out


def plot(data: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(data["runs"]):
        colour = f"C{i}"
        c = r["gainer"]["curve"]
        ax.plot([p["seconds"] for p in c], [p["psnr"] for p in c], "-o", ms=3, color=colour,
                label=f"{r['image']} GaINeR cpu")
        gi = r.get("gaussianimage")
        if gi:
            ax.plot([p["seconds"] for p in gi["curve"]], [p["psnr"] for p in gi["curve"]], "--", color=colour,
                    label=f"{r['image']} GaussianImage N={gi['n_gaussians']} (same bytes)")
    ax.set_xlabel("training time (s, 2-core CPU)")
    ax.set_ylabel("PSNR (dB, 8-bit)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--variants")
    ap.add_argument("--alpha")
    ap.add_argument("--plot")
    args = ap.parse_args()
    kodak = json.loads(Path(args.kodak).read_text())
    print("\n".join(kodak_tables(kodak)))
    if args.variants and Path(args.variants).exists():
        print()
        print("\n".join(variant_table(kodak, json.loads(Path(args.variants).read_text()))))
    if args.alpha and Path(args.alpha).exists():
        print()
        print("\n".join(alpha_table(json.loads(Path(args.alpha).read_text()))))
    if args.plot:
        plot(kodak, args.plot)


if __name__ == "__main__":
    main()
