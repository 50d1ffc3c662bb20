"""Turn the kernel and fitting results (benchmarks/results/kernel.json, benchmarks/fit/results/fit_kodak_*.json)
into the markdown tables of docs/results.md and the plot docs/img/fit_history.png.

    python benchmarks/fit/summarise_fit.py    # prints markdown, writes docs/img/fit_history.png (needs matplotlib)
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import BENCHMARKS, DOCS_IMG, results  # noqa: E402

KERNEL = BENCHMARKS / "results" / "kernel.json"  # where make bench-kernel writes


def _load(p: Path) -> dict | None:
    return json.loads(p.read_text()) if p.exists() else None


def kernel_table(d: dict) -> str:
    rows = ["| N | pairs in 3σ ellipses | numba fwd | numba bwd | numba fwd+bwd | reference fwd | reference bwd "
            "| speed-up |", "|---|---|---|---|---|---|---|---|"]
    for r in d["results"]:
        nb, rf = r["numba"], r.get("reference")
        ref = (f"{rf['forward_ms']:.0f} ms | {rf['backward_ms']:.0f} ms | {r['speedup_numba_vs_reference']:.0f}×"
               if rf else "– | – | –")
        rows.append(f"| {r['n_gaussians']:,} | {r['pairs']:,} | {nb['forward_ms']:.1f} ms | {nb['backward_ms']:.1f} ms "
                    f"| {nb['total_ms']:.1f} ms | {ref} |")
    return "\n".join(rows)


def fit_table(d: dict) -> str:
    by_n: dict[int, list[dict]] = defaultdict(list)
    for r in d["runs"]:
        by_n[r["n_gaussians"]].append(r)
    images = sorted({r["image"] for r in d["runs"]})
    head = "| N | " + " | ".join(f"{im} PSNR / MS-SSIM" for im in images) + \
        " | mean PSNR | mean MS-SSIM | mean fit time | mean render |"
    rows = [head, "|" + "---|" * (len(images) + 5)]
    for n in sorted(by_n):
        runs = {r["image"]: r for r in by_n[n]}
        cells = [f"{runs[im]['psnr']:.2f} / {runs[im]['ms_ssim']:.4f}" if im in runs else "–" for im in images]
        rs = by_n[n]
        rows.append(f"| {n:,} | " + " | ".join(cells)
                    + f" | {statistics.mean(r['psnr'] for r in rs):.2f} dB"
                    + f" | {statistics.mean(r['ms_ssim'] for r in rs):.4f}"
                    + f" | {statistics.mean(r['seconds'] for r in rs):.0f} s"
                    + f" | {statistics.mean(r['render_ms'] for r in rs):.1f} ms |")
    return "\n".join(rows)


def history_table(d: dict) -> str:
    rows = ["| image | N | step | seconds | PSNR | MS-SSIM |", "|---|---|---|---|---|---|"]
    for r in d["runs"]:
        for h in r["history"]:
            ms = h.get("ms_ssim")
            rows.append(f"| {r['image']} | {r['n_gaussians']:,} | {h['step']} | {h['seconds']:.0f} | {h['psnr']:.2f} | "
                        + (f"{ms:.4f}" if ms is not None else "–") + " |")
    return "\n".join(rows)


def plot_histories(datasets: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for label, d in datasets.items():
        for r in d["runs"]:
            h = r["history"]
            name = f"{label}: {r['image']} N={r['n_gaussians']:,}"
            steps = [e["step"] for e in h]
            secs = [e["seconds"] for e in h]
            ps = [e["psnr"] for e in h]
            ms = [e.get("ms_ssim") for e in h]
            axes[0, 0].plot(steps, ps, label=name)
            axes[0, 1].plot(secs, ps, label=name)
            if all(m is not None for m in ms):
                axes[1, 0].plot(steps, ms, label=name)
                axes[1, 1].plot(secs, ms, label=name)
    for ax, (xl, yl) in zip(axes.flat, [("step", "PSNR (dB)"), ("seconds (2-core CPU)", "PSNR (dB)"),
                                         ("step", "MS-SSIM"), ("seconds (2-core CPU)", "MS-SSIM")], strict=True):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> None:
    k = _load(KERNEL)
    if k:
        print(f"### Kernel ({k['date']})\n\n{kernel_table(k)}\n")
    for name in ("fit_kodak_rate_points.json", "fit_kodak_70k.json", "fit_kodak_70k_long.json",
                 "fit_kodak_adan_faithful.json"):
        d = _load(results("fit", name))
        if d:
            print(f"### {name}\n\n`{d['command']}`\n\n{fit_table(d)}\n")
    hist = {n: _load(results("fit", f)) for n, f in (("70k", "fit_kodak_70k.json"),
                                                      ("70k long", "fit_kodak_70k_long.json"),
                                                      ("Adan 1e-3", "fit_kodak_adan_faithful.json"))}
    hist = {n: d for n, d in hist.items() if d}
    for n, d in hist.items():
        print(f"### history {n}\n\n{history_table(d)}\n")
    if hist:
        plot_histories(hist, DOCS_IMG / "fit_history.png")
        print("wrote", DOCS_IMG / "fit_history.png")


if __name__ == "__main__":
    main()
