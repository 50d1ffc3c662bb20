"""MLS-MPM substeps per second (numba CPU kernels): an elastic block falling in a box.

For each particle count N the block is a square of 2 x 2 particles per cell, on grid 256^2 for N <= 100k and
512^2 above (``--grid`` overrides). The kernels are compiled and warmed first; then substeps (fixed dt, the CFL
step of the scene) run for ``--seconds`` of wall time. Prints JSON; ``--json PATH`` also writes it.

    python benchmarks/physics/mpm_substeps.py --particles 50000 200000 \
        --json benchmarks/physics/results/mpm_substeps.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numba

from splatpix.physics import Materials, MPMConfig, MPMSolver, ParticleState, box_particles


def run(n: int, grid: int | None, seconds: float, threads: int | None) -> dict[str, object]:
    res = grid or (256 if n <= 100_000 else 512)
    cfg = MPMConfig(grid_res=res, threads=threads)
    side = math.sqrt(n / 4.0) * cfg.dx  # 4 particles per cell
    if side > 1.0 - 8 * cfg.dx:
        raise SystemExit(f"{n} particles do not fit on grid {res} at 4 per cell; pass a larger --grid")
    lo = (0.5 - side / 2, 0.5 - side / 2)
    x, vol = box_particles(lo, (lo[0] + side, lo[1] + side), cfg.dx)
    mats = Materials.of("elastic")
    sim = MPMSolver(cfg, ParticleState.create(x, vol, 0, mats), mats)
    dt = sim.cfl_dt()
    for _ in range(3):  # compile (cached after the first run) and warm
        sim.substep(dt)
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sim.substep(dt)
        steps += 1
    wall = time.perf_counter() - t0
    return {"particles": sim.state.n, "grid": res, "dt": dt, "substeps": steps, "seconds": wall,
            "substeps_per_s": steps / wall, "particle_substeps_per_s": steps * sim.state.n / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--particles", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--grid", type=int, default=None, help="grid cells per side (default: 256 or 512 by N)")
    ap.add_argument("--seconds", type=float, default=5.0, help="timed wall seconds per size")
    ap.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    out = {
        "benchmark": "mpm_substeps",
        "machine": {"cpu_count": os.cpu_count(), "numba_threads": threads, "processor": platform.processor(),
                    "python": platform.python_version(), "numba": numba.__version__},
        "results": [run(n, args.grid, args.seconds, threads) for n in args.particles],
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
