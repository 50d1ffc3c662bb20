"""Tables, BD-rates and the RD plot from the harness output in benchmarks/rd/kodak/.

    python benchmarks/summarise_rd.py [--published ../shared/reference/rd/kodak]

Prints markdown for docs/benchmarks.md and writes docs/img/rd_kodak.png and benchmarks/rd/kodak/bdrate.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from splatpix.eval.bdrate import bd_psnr, bd_rate
from splatpix.eval.plots import plot_rd
from splatpix.eval.rd import load_curve, load_published
from splatpix.io import atomic_write_bytes

ROOT = Path(__file__).resolve().parent
RD = ROOT / "rd" / "kodak"
METHODS = ("gaussianimage", "jpeg", "webp", "jpeg2000", "avif", "jpegxl")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--published", default=str(ROOT.parent.parent / "shared" / "reference" / "rd" / "kodak"))
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
    if "gaussianimage" in curves:
        gi = curves["gaussianimage"]
        print("| anchor | BD-rate of gaussianimage (akima) | BD-PSNR |\n|---|---|---|")
        for anchor in ("jpeg", "webp", "jpeg2000", "avif", "jpegxl"):
            if anchor not in curves:
                continue
            a = curves[anchor]
            try:
                r = bd_rate(a.bpp, a.psnr, gi.bpp, gi.psnr, method="akima")
                d = bd_psnr(a.bpp, a.psnr, gi.bpp, gi.psnr, method="akima")
            except ValueError as e:
                print(f"| {anchor} | not computable: {e} | |")
                bd[anchor] = {"error": str(e)}
                continue
            bd[anchor] = {"bd_rate_percent": r, "bd_psnr_db": d, "interpolation": "akima"}
            print(f"| {anchor} | {r:+.1f} % | {d:+.2f} dB |")
        atomic_write_bytes(RD / "bdrate.json", (json.dumps(bd, indent=1) + "\n").encode())
    plot = dict(curves)
    pub = Path(args.published)
    if pub.is_dir():
        for name, c in load_published(pub).items():
            if name.lower().startswith(("jpeg", "webp", "bpg", "vtm", "coin", "av1")):
                plot.setdefault(f"{name} (published)", c)
    out = ROOT.parent / "docs" / "img" / "rd_kodak.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_rd(plot, out, metric="psnr", title="Kodak (our runs: 3-image subset; published: 24 images)")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
