"""Tables, BD-rates and the RD plot from the harness output in benchmarks/rd/kodak/ (and the ablation runs in
benchmarks/rd/kodak-ablation/).

    python benchmarks/codec/summarise_rd.py [--published ../shared/reference/rd/kodak]

Prints the markdown tables of docs/results.md (codec sections) and writes docs/img/rd_kodak.png,
docs/img/rd_kodak_ablation.png, benchmarks/rd/kodak/bdrate.json and benchmarks/rd/kodak-ablation/bdrate.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from splatpix.eval.bdrate import bd_psnr, bd_rate
from splatpix.eval.plots import plot_rd
from splatpix.eval.rd import load_curve, load_published
from splatpix.io import atomic_write_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import BENCHMARKS, DOCS_IMG, SHARED  # noqa: E402

RD = BENCHMARKS / "rd" / "kodak"  # where splatpix eval rd --out benchmarks/rd/kodak writes
ABLATION = BENCHMARKS / "rd" / "kodak-ablation"
# sga-prev: method sga with the fitting defaults before per-parameter learning rates and relocation (2026-11-22)
# sga-means1: sga before the means' rate followed their spacing (lr_means_ref_n; 2026-12-02, first session)
# sga-reloc-unclamped: sga-noreloc plus relocation whose error map used the unclamped render (the bug fixed in
#   75138db); sga-noreloc: sga without relocation (the codec's fit from the second to the fourth 2026-12-02 session)
# sga-fp0.3: sga with the footprint term at weight 0.3 (--footprint-weight 0.3, fit and QAT; 2026-12-03): Gaussians
#   as small as the baseline's, for its decode speed at equal N (2 x 8 colour codewords, the default then);
#   sga-fp0.3-vq16: the same with today's 2 x 16 codewords (2026-12-03, later session)
# sga-vq8: sga with GaussianImage's 2 x 8 colour codewords (the default until 2026-12-03); sga-vq16 / sga-vq32: the
#   codebook size that is not the default (sga uses SGA_VQ_CODEBOOK; the curve descriptions record the options)
METHODS = ("sga", "sga-vq8", "sga-vq16", "sga-vq32", "sga-fp0.3", "sga-fp0.3-vq16", "sga-noreloc",
           "sga-reloc-unclamped", "sga-means1", "sga-prev", "gaussianimage", "jpeg", "webp", "jpeg2000", "avif",
           "jpegxl")
ANCHORS = ("gaussianimage", "sga", "sga-vq8", "sga-vq16", "sga-vq32", "sga-noreloc", "sga-reloc-unclamped", "sga-prev",
           "sga-means1", "jpeg", "webp", "jpeg2000", "avif", "jpegxl")
ABLATIONS = {  # label -> what it changes (against "sga", the full method, same schedule)
    "gi": "GaussianImage baseline (random init, fp16 positions, 6-bit covariance)",
    "gi-structure": "baseline codec + structure-guided init + colour solve (§1, §5)",
    "sga-fixed6": "sga with every covariance tier at 6 bits (no RD-aware tiers, §3)",
    "sga": "sga: structure init + colour solve + grid positions + RD-aware tiers",
    "sga-random": "sga, random init, no colour solve (§1, §5 off)",
    "sga-nosolve": "sga without the initial colour solve (§5 off)",
    "sga-gradient": "sga with Image-GS's gradient init (+ colour solve) instead of structure",
    "sga-geo": "sga + geometry-consistent loss, weight 0.01 (§2 on)",
    "sga-lr10": "sga + covariance learning rate x10 (§5)",
    "sga-lr10-reloc": "sga + covariance learning rate x10 + error-guided placement (§5): today's default fit",
}

STEPS = (  # (mechanism, run without it, run with it)
    ("structure-guided init + colour solve (§1, §5)", "gi", "gi-structure"),
    ("grid positions coded as a set (§4)", "gi-structure", "sga-fixed6"),
    ("RD-aware covariance tiers (§3)", "sga-fixed6", "sga"),
    ("colour solve at initialisation (§5)", "sga-nosolve", "sga"),
    ("structure vs gradient init (§1)", "sga-gradient", "sga"),
    ("structure init + solve vs random (§1, §5)", "sga-random", "sga"),
    ("geometry-consistent loss, weight 0.01 (§2)", "sga", "sga-geo"),
    ("covariance learning rate x10 (§5)", "sga", "sga-lr10"),
    ("error-guided placement, 5 % every 250 steps (§5)", "sga-lr10", "sga-lr10-reloc"),
)


def bd_row(anchor, test) -> dict:
    """BD-rate / BD-PSNR of ``test`` against ``anchor`` (Akima), or the reason it is not computable."""
    try:
        return {"bd_rate_percent": bd_rate(anchor.bpp, anchor.psnr, test.bpp, test.psnr, method="akima"),
                "bd_psnr_db": bd_psnr(anchor.bpp, anchor.psnr, test.bpp, test.psnr, method="akima"),
                "interpolation": "akima"}
    except ValueError as e:
        return {"error": str(e)}


def fmt(row: dict) -> str:
    if "error" in row:
        return f"not computable: {row['error']} | "
    return f"{row['bd_rate_percent']:+.1f} % | {row['bd_psnr_db']:+.2f} dB"


def ablation() -> None:
    curves = {k: load_curve(ABLATION / f"{k}.json") for k in ABLATIONS if (ABLATION / f"{k}.json").exists()}
    if "gi" not in curves:
        return
    print("| run | what | mean bpp | mean PSNR | BD-rate vs gi | BD-PSNR vs gi | BD-rate vs sga | BD-PSNR vs sga |")
    print("|---|---|---|---|---|---|---|---|")
    out = {}
    for k, c in curves.items():
        out[k] = {"vs_gi": bd_row(curves["gi"], c)}
        if "sga" in curves:
            out[k]["vs_sga"] = bd_row(curves["sga"], c)
        mb, mp = sum(c.bpp) / len(c.bpp), sum(c.psnr) / len(c.psnr)
        vs_sga = fmt(out[k]["vs_sga"]) if "vs_sga" in out[k] else "– | –"
        print(f"| {k} | {ABLATIONS[k]} | {mb:.4f} | {mp:.2f} | {fmt(out[k]['vs_gi'])} | {vs_sga} |")
    print("\nOne mechanism at a time (each row against the run before it in the chain):\n")
    print("| step | from | to | BD-rate | BD-PSNR |\n|---|---|---|---|---|")
    for what, a, b in STEPS:
        if a in curves and b in curves:
            row = bd_row(curves[a], curves[b])
            out.setdefault("steps", {})[f"{a}->{b}"] = row
            print(f"| {what} | {a} | {b} | {fmt(row)} |")
    atomic_write_bytes(ABLATION / "bdrate.json", (json.dumps(out, indent=1) + "\n").encode())
    png = DOCS_IMG / "rd_kodak_ablation.png"
    plot_rd(curves, png, metric="psnr", title="Ablation, Kodak kodim01-03 (1000 + 500 steps)")
    print(f"\nwrote {png}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--published", default=str(SHARED / "reference" / "rd" / "kodak"))
    args = ap.parse_args()
    curves = {m: load_curve(RD / f"{m}.json") for m in METHODS if (RD / f"{m}.json").exists()}
    for name, c in curves.items():
        print(f"#### {name}\n\n| point | bpp | PSNR (dB) | MS-SSIM | encode s | decode s |\n|---|---|---|---|---|---|")
        res = c.raw.get("results", {})
        enc, dec = res.get("encoding_time", []), res.get("decoding_time", [])
        for i, (b, p) in enumerate(zip(c.bpp, c.psnr, strict=True)):
            ms = f"{c.ms_ssim[i]:.4f}" if c.ms_ssim else "–"
            e = f"{enc[i]:.2f}" if i < len(enc) else "–"
            d = f"{dec[i]:.4f}" if i < len(dec) else "–"
            print(f"| {i} | {b:.4f} | {p:.2f} | {ms} | {e} | {d} |")
        print()
    bd = {}
    for test in ("gaussianimage", "sga", "sga-vq8", "sga-vq16", "sga-vq32", "sga-fp0.3", "sga-fp0.3-vq16"):
        if test not in curves:
            continue
        print(f"| anchor | BD-rate of {test} (akima) | BD-PSNR |\n|---|---|---|")
        for anchor in ANCHORS:
            if anchor == test or anchor not in curves:
                continue
            row = bd_row(curves[anchor], curves[test])
            bd.setdefault(f"{test}_vs", {})[anchor] = row
            print(f"| {anchor} | {fmt(row)} |")
        print()
    atomic_write_bytes(RD / "bdrate.json", (json.dumps(bd, indent=1) + "\n").encode())
    plot = {k: v for k, v in curves.items() if k not in ("sga-means1", "sga-reloc-unclamped", "sga-noreloc",
                                                          "sga-vq16", "sga-vq32", "sga-fp0.3")}  # ablation
    # runs; sga-fp0.3 is superseded in the plot by sga-fp0.3-vq16 (today's colour codebook)
    pub = Path(args.published)
    if pub.is_dir():
        for name, c in load_published(pub).items():
            if name.lower().startswith(("jpeg", "webp", "bpg", "vtm", "coin", "av1")):
                plot.setdefault(f"{name} (published)", c)
    out = DOCS_IMG / "rd_kodak.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_rd(plot, out, metric="psnr", title="Kodak (our runs: 3-image subset; published: 24 images)")
    print(f"\nwrote {out}\n")
    ablation()


if __name__ == "__main__":
    main()
