"""GaINeR's PSNR against training time on Kodak images, at a time budget.

For each image, :func:`splatpix.gainer.fit_gainer` with a preset (default ``paper``) runs until ``--minutes`` of
training time have passed (checked at every logged step; the steps are full-image steps). The curve is the
8-bit PSNR of each logged step's prediction of the whole image (the training forward pass, which is the render of
the native pixel grid with the training neighbour lists) against the training seconds (the one-off set-up, the
frozen plan, is reported apart as ``setup_seconds``). At the end the field is rendered by
:meth:`~splatpix.gainer.GainerField.render` (its own KNN, as any render) and that PSNR is the run's result.
``--save-models DIR`` keeps the baked models (for the render-time benchmark).

Results are written after every image; finished images are skipped when re-run (resumable by image).

Usage::

    python benchmarks/gainer/psnr_time.py --images kodim23 --minutes 15 \\
        --out benchmarks/gainer/results/psnr_time_paper.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from splatpix import load_image
from splatpix.gainer import GainerTrainConfig, fit_gainer, save_gainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, machine, today, write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", nargs="+", default=["kodim23"])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--steps", type=int, default=None, help="step limit (default: the preset's)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--label", default=None)
    ap.add_argument("--save-models", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    path = Path(args.out)
    data = json.loads(path.read_text()) if path.exists() else {"runs": []}
    label = args.label or args.preset
    done = {(r["image"], r["label"]) for r in data["runs"]}
    for name in args.images:
        if (name, label) in done:
            print(f"{name} ({label}): done, skipped")
            continue
        img = load_image(Path(args.kodak) / f"{name}.png")[:3]
        over: dict = {"log_every": args.log_every}
        if args.steps is not None:
            over["steps"] = args.steps
        if args.lr is not None:
            over["lr"] = args.lr
        cfg = GainerTrainConfig.preset(args.preset, **over)
        budget = 60.0 * args.minutes
        curve: list[dict] = []
        load0 = os.getloadavg()
        t_start = time.perf_counter()
        setup: list[float] = []

        def cb(step: int, info: dict, curve: list = curve, setup: list = setup, t_start: float = t_start,
               name: str = name, budget: float = budget) -> bool:
            if step == 0:
                setup.append(time.perf_counter() - t_start - info["seconds"])
            curve.append({"step": step, "seconds": info["seconds"], "psnr_8bit": info["psnr_8bit"],
                          "psnr_float": info["psnr"], "loadavg1": os.getloadavg()[0]})
            print(f"{name} step {step} {info['seconds']:.0f}s {info['psnr_8bit']:.2f} dB", flush=True)
            return info["seconds"] >= budget

        res = fit_gainer(img, cfg, progress=False, callback=cb)
        run = {
            "image": name, "label": label, "date": today(), "machine": machine(), "preset": args.preset,
            "minutes": args.minutes, "config": res.report()["config"], "setup_seconds": setup[0] if setup else None,
            "steps": res.steps, "train_seconds": res.seconds, "wall_seconds": time.perf_counter() - t_start,
            "psnr_render": res.psnr, "psnr_render_float": res.psnr_float,
            "psnr_last_step_8bit": curve[-1]["psnr_8bit"] if curve else None,
            "loadavg_start": load0, "loadavg_end": os.getloadavg(), "curve": curve,
        }
        if args.save_models:
            os.makedirs(args.save_models, exist_ok=True)
            out = Path(args.save_models) / f"{name}_{label}.safetensors"
            save_gainer(res.field, out)
            run["model_bytes"] = out.stat().st_size
        data["runs"].append(run)
        write_json(path, data)
        print(f"{name} ({label}): {res.psnr:.2f} dB rendered after {res.steps} steps, {res.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
