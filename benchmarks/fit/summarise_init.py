"""Tables and the time-to-PSNR plot from benchmarks/init_convergence.py's JSON files.

    python benchmarks/fit/summarise_init.py [--step0 benchmarks/fit/results/init_step0.json]
        [--convergence benchmarks/fit/results/init_convergence.json] [--baseline random]

Prints markdown for docs/results.md and the notes: the step-0 PSNR of every initialisation, and for each image the
time at which each variant first reaches the baseline's final PSNR (the baseline: ``--baseline``, random init, its full
step budget, same N, same image, same run), as a fraction of the baseline's wall time. Writes
docs/img/init_convergence.png (PSNR against seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import DOCS_IMG, results  # noqa: E402


def time_to(history: list[dict], target: float) -> float | None:
    """Seconds of the first logged step whose PSNR is >= ``target`` (None if never)."""
    for e in history:
        if e["psnr"] >= target:
            return float(e["seconds"])
    return None


def step_to(history: list[dict], target: float) -> int | None:
    for e in history:
        if e["psnr"] >= target:
            return int(e["step"])
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step0", default=str(results("fit", "init_step0.json")))
    ap.add_argument("--convergence", default=str(results("fit", "init_convergence.json")))
    ap.add_argument("--baseline", default="random")
    ap.add_argument("--png", default=str(DOCS_IMG / "init_convergence.png"))
    args = ap.parse_args()

    p0 = Path(args.step0)
    if p0.exists():
        runs = json.loads(p0.read_text())["runs"]
        variants = list(dict.fromkeys(r["variant"] for r in runs))
        images = list(dict.fromkeys(r["image"] for r in runs))
        by = {(r["image"], r["variant"]): r for r in runs}
        print("| image | N | " + " | ".join(variants) + " |")
        print("|---|---|" + "---|" * len(variants))
        for im in images:
            n = next(r["n_gaussians"] for r in runs if r["image"] == im)
            cells = [f"{by[im, v]['psnr_step0']:.2f} ({by[im, v]['init_seconds']:.1f} s)" if (im, v) in by else "–"
                     for v in variants]
            print(f"| {im} | {n} | " + " | ".join(cells) + " |")
        print("\nstep-0 PSNR in dB (initialisation seconds, colour solve included)\n")

    pc = Path(args.convergence)
    if not pc.exists():
        return
    runs = json.loads(pc.read_text())["runs"]
    groups: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    for r in runs:
        groups[r["image"], r["n_gaussians"]][r["variant"]] = r
    print("| image | N | baseline final PSNR | baseline time | variant | its final PSNR | reaches baseline final at "
          "| fraction of baseline time | baseline reaches the variant's final PSNR at | speed-up at that PSNR |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    fractions: dict[str, list[float]] = defaultdict(list)
    for (im, n), vs in groups.items():
        if args.baseline not in vs:
            continue
        base = vs[args.baseline]
        target, t_base = base["psnr"], base["seconds"]
        for v, r in vs.items():
            if v == args.baseline:
                continue
            t = time_to(r["history"], target)
            s = step_to(r["history"], target)
            frac = None if t is None else t / t_base
            if frac is not None:
                fractions[v].append(frac)
            at = "never" if t is None else f"{t:.1f} s (step {s})"
            fr = "–" if frac is None else f"{frac:.3f}"
            # the other way round: when does the baseline reach what the variant ends with (in the variant's time)?
            tb = time_to(base["history"], r["psnr"])
            back = "never" if tb is None else f"{tb:.1f} s (step {step_to(base['history'], r['psnr'])})"
            speed = "–" if tb is None else f"{tb / r['seconds']:.1f}×"
            print(f"| {im} | {n} | {target:.2f} | {t_base:.1f} s | {v} | {r['psnr']:.2f} | {at} | {fr} | {back} "
                  f"| {speed} |")
    print()
    for v, fs in fractions.items():
        print(f"{v}: mean fraction {sum(fs) / len(fs):.3f} over {len(fs)} runs")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(groups)
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for v, r in groups[key].items():
            h = r["history"]
            ax.plot([e["seconds"] for e in h], [e["psnr"] for e in h], label=v)
        if args.baseline in groups[key]:
            ax.axhline(groups[key][args.baseline]["psnr"], color="grey", ls=":", lw=1)
        ax.set_title(f"{key[0]}, N = {key[1]}")
        ax.set_xlabel("seconds (2-core CPU)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0.0)  # times are >= 0: no negative half of the symlog axis
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(args.png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
