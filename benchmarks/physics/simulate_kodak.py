"""End-to-end ``splatpix simulate`` speed on a Kodak-size model: frames per minute, simulation plus rendering.

The model is a file (``MODEL``: a GaussianImage or GaINeR ``.safetensors``) or, without one, a synthetic 768 x 512
GaussianImage model of ``--gaussians`` random Gaussians (uniform means, isotropic-ish covariances of the mean
spacing, random colours scaled so that the sum is about 0.5: random but valid). One material (``--material``) on
``--region`` falls under gravity for ``--frames`` frames; the frames are written (PNG frames into a temporary
folder by default, ``--output`` to keep them). The numba kernels are compiled (cached) by a tiny warm-up run first.
Prints JSON; ``--json PATH`` also writes it.

    python benchmarks/physics/simulate_kodak.py --gaussians 50000 --frames 48 --threads 1 \
        --json benchmarks/physics/results/simulate_kodak.json
    python benchmarks/physics/simulate_kodak.py kodim23.safetensors --material sand --region box:0.3,0.2,0.7,0.6

Measured on a shared 2-core machine, 2 numba threads ran ~4x slower than 1 for 50k particles: use ``--threads 1``
there (the solver otherwise picks all threads from 20k particles on).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numba
import torch

from splatpix.io import atomic_write
from splatpix.model.gaussians import Gaussians, params_from_covariance
from splatpix.physics import simulate

H, W = 512, 768


def synthetic_model(n: int, seed: int = 0, size: tuple[int, int] = (H, W)) -> Gaussians:
    """``n`` random but valid Gaussians on a ``size`` image (module docstring)."""
    h, w = size
    g = torch.Generator().manual_seed(seed)
    spacing2 = h * w / n  # pixels^2 per Gaussian
    means = torch.rand((n, 2), generator=g)
    sx = spacing2 * (0.5 + torch.rand(n, generator=g))
    sy = spacing2 * (0.5 + torch.rand(n, generator=g))
    rho = 0.6 * (torch.rand(n, generator=g) - 0.5)
    cov = torch.stack((sx, rho * torch.sqrt(sx * sy), sy), 1)
    # sum_i c_i G_i(x) ~ n_overlap c: each pixel sees about 2 pi sigma^2 / spacing^2 ~ 2 pi Gaussians
    colours = torch.rand((n, 3), generator=g) * (1.0 / (2 * math.pi))
    return Gaussians(means, params_from_covariance(cov, "cholesky"), colours, "cholesky", size)


def load_model(path: str) -> Any:
    from splatpix.cli.edit import load_any_model

    return load_any_model(path)


def scene_of(args: argparse.Namespace) -> dict[str, Any]:
    sim: dict[str, Any] = {"grid_res": args.grid_res if args.grid_res == "auto" else int(args.grid_res)}
    if args.threads:
        sim["threads"] = args.threads
    return {"frames": args.frames, "fps": args.fps, "background": "#000000",
            "materials": [{"preset": args.material, "region": args.region}], "simulation": sim}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="model file (default: a synthetic 768x512 model)")
    ap.add_argument("--gaussians", type=int, default=50_000, help="synthetic model size (default 50000)")
    ap.add_argument("--size", default="768x512", help="synthetic model size WxH (default 768x512)")
    ap.add_argument("--material", default="jelly", choices=("elastic", "jelly", "snow", "sand", "water"))
    ap.add_argument("--region", default="ellipse:0.5,0.4,0.25,0.3", help="region of the material")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--grid-res", default="auto", help="grid cells across the longer side, or auto")
    ap.add_argument("--threads", type=int, default=None, help="numba threads (default: the solver's choice)")
    ap.add_argument("--output", help="keep the frames here (OUT.gif, OUT.mp4 or OUTDIR/); default: a temporary "
                                     "folder of PNG frames, deleted")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()

    if args.model:
        model = load_model(args.model)
        source = args.model
    else:
        w, h = (int(t) for t in args.size.lower().split("x"))
        model = synthetic_model(args.gaussians, args.seed, (h, w))
        source = f"synthetic {w}x{h}, {args.gaussians} Gaussians, seed {args.seed}"

    # warm-up: compile (or load the cached) numba kernels on a tiny model
    simulate(synthetic_model(200, 1, (32, 48)), {**scene_of(args), "frames": 2, "simulation": {"grid_res": 32}},
             tempfile.mkdtemp(prefix="splatpix_sim_warm_") + "/", progress=False)

    tmp = None
    out = args.output
    if out is None:
        tmp = tempfile.mkdtemp(prefix="splatpix_sim_bench_")
        out = os.path.join(tmp, "frames") + "/"
    try:
        t0 = time.perf_counter()
        report = simulate(model, scene_of(args), out, progress=False)
        wall = time.perf_counter() - t0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    steps = max(1, report["frames"] - 1)
    result = {
        "benchmark": "simulate_kodak",
        "machine": {"cpu_count": os.cpu_count(), "numba_threads": args.threads or "auto",
                    "torch_threads": torch.get_num_threads(), "processor": platform.processor(),
                    "python": platform.python_version(), "numba": numba.__version__, "torch": torch.__version__},
        "model": {"source": source, "kind": report["kind"], "gaussians": model.n, "size": list(model.size)},
        "scene": scene_of(args),
        "frames": report["frames"], "wall_seconds": wall,
        "frames_per_minute": report["frames_per_minute"],
        "simulate_seconds_per_frame": report["seconds_simulate"] / steps,
        "render_seconds_per_frame": report["seconds_render"] / report["frames"],
        "report": {k: v for k, v in report.items() if k != "output"},
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with atomic_write(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
