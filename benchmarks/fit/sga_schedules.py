"""Optimiser schedules after the structure-guided initialisation (issue #4, §5): PSNR after a fixed step budget.

    python benchmarks/fit/sga_schedules.py --image ../shared/datasets/kodak/kodim01.png -n 5000 --steps 4000 \
        adan1e-3 adan3e-3/2000 adam1e-2/2000

Each named schedule fits the image from the structure-guided initialisation + colour solve and prints the final
PSNR (8-bit), the training seconds and the logged history. Results of 2026-12-01 are quoted in
docs/notes/2026-12-01-sga-initialisation-convergence.md (printed output; not stored as JSON).
"""

from __future__ import annotations

import argparse

from splatpix import FitConfig, fit, load_image

SCHEDULES = {
    "adan1e-3": dict(optimizer="adan", lr=1e-3, lr_decay_every=20000),
    "adan3e-3/2000": dict(optimizer="adan", lr=3e-3, lr_decay_every=2000),
    "adam1e-2/1000": dict(optimizer="adam", lr=1e-2, lr_decay_every=1000),
    "adam1e-2/2000": dict(optimizer="adam", lr=1e-2, lr_decay_every=2000),
    "adam1e-2/1000+cs250": dict(optimizer="adam", lr=1e-2, lr_decay_every=1000, colour_solve_every=250),
    # error-guided placement (splatpix.train.relocate): 2 % / 5 % of the Gaussians every 250 steps in the first half
    "adam1e-2/2000+reloc2%": dict(optimizer="adam", lr=1e-2, lr_decay_every=2000, relocate_every=250,
                                  relocate_fraction=0.02, relocate_until=0.5),
    "adam1e-2/2000+reloc5%": dict(optimizer="adam", lr=1e-2, lr_decay_every=2000, relocate_every=250,
                                  relocate_fraction=0.05, relocate_until=0.5),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("schedules", nargs="+", choices=sorted(SCHEDULES))
    args = ap.parse_args()
    img = load_image(args.image)
    fit(img[:, :64, :64].contiguous(), FitConfig(n_gaussians=50, steps=2, init="structure", colour_solve_init=True),
        progress=False)  # warm-up: JIT cache, imports
    for name in args.schedules:
        cfg = FitConfig(n_gaussians=args.n, steps=args.steps, init="structure", colour_solve_init=True,
                        log_every=500, **SCHEDULES[name])
        r = fit(img, cfg, progress=False)
        hist = [(h["step"], round(h["seconds"]), round(h["psnr"], 2)) for h in r.history]
        print(name, round(r.psnr, 2), round(r.seconds, 1), hist, flush=True)


if __name__ == "__main__":
    main()
