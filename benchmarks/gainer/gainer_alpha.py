"""RGBA GaINeR: alpha as a 4th MLP output ("head") against a separate mask model ("separate").

The test image is a Kodak image with a binary alpha mask (an ellipse covering about half of the image; Kodak has
no alpha). Both runs use the ``cpu`` preset with ``--steps`` steps. Reported: colour PSNR inside the mask (8-bit
rounded; the colour loss only sees those pixels), alpha PSNR and the IoU of ``alpha > 0.5``, fit seconds, model
bytes.

Usage (the run recorded in docs/results.md)::

    python benchmarks/gainer/gainer_alpha.py --image ../shared/datasets/kodak/kodim23.png --steps 1000 \
        --out benchmarks/gainer/results/gainer_alpha.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from splatpix import load_image
from splatpix.gainer import GainerTrainConfig, fit_gainer, save_gainer
from splatpix.metrics import to_8bit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, machine, today, write_json  # noqa: E402


def ellipse_alpha(h: int, w: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return ((((x - 0.55 * w) / (0.36 * w)) ** 2 + ((y - 0.5 * h) / (0.42 * h)) ** 2) <= 1).float()


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    err = (((to_8bit(pred) - to_8bit(target)) / 255.0) ** 2)[:, mask].mean()
    return float(10 * torch.log10(1.0 / err)) if float(err) > 0 else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(KODAK / "kodim23.png"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rgb = load_image(args.image)[:3]
    alpha = ellipse_alpha(*rgb.shape[1:])
    img = torch.cat((rgb, alpha[None]), 0)
    mask = alpha > 0.5
    runs = []
    for mode in ("head", "separate"):
        base = GainerTrainConfig.preset("small")
        cfg = GainerTrainConfig.preset("small", steps=args.steps, model=replace(base.model, alpha_model=mode))
        res = fit_gainer(img, cfg, progress=False)
        field = res.field.bake()
        out = field.render()
        a = out[3]
        inter = float(((a > 0.5) & mask).sum())
        union = float(((a > 0.5) | mask).sum())
        alpha_mse = float((((to_8bit(a) - to_8bit(alpha)) / 255.0) ** 2).mean())
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.safetensors")
            save_gainer(field, path)
            size = os.path.getsize(path)
        run = {"alpha_model": mode, "colour_psnr_in_mask": masked_psnr(out[:3], rgb, mask),
               "alpha_psnr": 10 * torch.log10(torch.tensor(1.0 / max(alpha_mse, 1e-12))).item(),
               "alpha_iou": inter / union, "seconds": res.seconds, "steps": res.steps, "model_bytes": size}
        runs.append(run)
        print(json.dumps(run), flush=True)
    data = {"benchmark": "gainer_alpha", "image": os.path.basename(args.image), "steps": args.steps,
            "date": today(), "machine": machine(),
            "command": f"python benchmarks/gainer/gainer_alpha.py --image {args.image} --steps {args.steps} "
                       f"--out {args.out}",
            "runs": runs}
    write_json(args.out, data)


if __name__ == "__main__":
    main()
