"""Time of one full-image GaINeR training step (forward, backward, Adam) and the training's peak memory.

Runs :func:`splatpix.gainer.fit_gainer` (the real training loop) for ``--steps`` steps with a preset (default
``paper``: GaINeR's configuration), logging every step; the step time is the median of the per-step wall times
after the first ``--warmup`` steps. The set-up (the frozen plan: neighbour lists, grid corners, the compact table)
is reported apart, from the start to the first step. Peak memory is the process's high-water mark (``VmHWM``)
at the last step. The load average of the machine at the start and at the end is recorded (2 shared cores: a
loaded machine gives pessimistic times), and the process's CPU seconds per step (user + system, over the timed
steps): divided by the threads, that is about the wall time of a step on otherwise idle cores.

Usage::

    python benchmarks/gainer/step_time.py --image ../shared/datasets/kodak/kodim23.png --preset paper \\
        --out benchmarks/gainer/results/step_time.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from splatpix import load_image
from splatpix.gainer import GainerTrainConfig, fit_gainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import machine, today, write_json  # noqa: E402


def vm_hwm_gb() -> float:
    """The process's peak resident memory (``VmHWM``), GB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="../shared/datasets/kodak/kodim23.png")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--gaussians", type=int, default=None)
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--label", default=None)
    ap.add_argument("--out", default=None, help="JSON file; runs are appended under 'runs'")
    args = ap.parse_args(argv)

    img = load_image(args.image)[:3]
    base = GainerTrainConfig.preset(args.preset)
    model = base.model
    if args.gaussians is not None:
        model = replace(model, n_gaussians=args.gaussians)
    if args.k is not None:
        model = replace(model, k=args.k)
    cfg = replace(base, model=model, steps=args.steps, log_every=1, engine=args.engine)
    load0 = os.getloadavg()
    hwm: list[float] = []
    t_start = time.perf_counter()
    first: list[float] = []

    cpu: list[tuple[int, float]] = []

    def cb(step: int, info: dict) -> None:
        if step == 0:
            first.append(time.perf_counter() - t_start - info["seconds"])
        hwm.append(vm_hwm_gb())
        ru = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append((step, ru.ru_utime + ru.ru_stime))

    res = fit_gainer(img, cfg, progress=False, callback=cb)
    per = [e["seconds_per_step"] for e in res.history if "seconds_per_step" in e][args.warmup:]
    (s0, c0), (s1, c1) = cpu[args.warmup], cpu[-1]
    cpu_per_step = (c1 - c0) / max(s1 - s0, 1)
    run = {
        "label": args.label or args.preset, "date": today(), "machine": machine(), "image": Path(args.image).name,
        "preset": args.preset, "n_gaussians": cfg.model.n_gaussians, "k": cfg.model.k, "engine": args.engine,
        "mlp_arch": getattr(cfg.model, "mlp_arch", "plain"),
        "setup_seconds": first[0] if first else None, "steps": len(per),
        "step_seconds_median": statistics.median(per) if per else None,
        "step_seconds_min": min(per) if per else None, "step_seconds": per,
        "cpu_seconds_per_step": cpu_per_step, "threads": torch.get_num_threads(),
        "peak_memory_gb_training": hwm[-1] if hwm else None, "peak_memory_gb_total": vm_hwm_gb(),
        "psnr_after": res.psnr, "loadavg_start": load0, "loadavg_end": os.getloadavg(),
    }
    print(json.dumps({k: v for k, v in run.items() if k not in ("step_seconds", "machine")}, indent=1))
    if args.out:
        path = Path(args.out)
        data = json.loads(path.read_text()) if path.exists() else {"runs": []}
        data["runs"].append(run)
        write_json(path, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
