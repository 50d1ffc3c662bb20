"""The overhead of ``splatpix batch encode --ray`` (a local Ray instance started for the run, 1 CPU per task) against
``--jobs J`` (J local processes, 1 thread each) on the same images: the wall time of the whole command, each run in a
fresh output folder, for a real workload and for a near-empty one (1 fitting step) that isolates the fixed costs.

    .venv/bin/python benchmarks/batch/ray_overhead.py --out benchmarks/batch/results/ray_overhead.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, machine, write_rows  # noqa: E402

WORKLOADS = {
    "encode": ["-n", "300", "--steps", "300", "--qat-steps", "100"],
    "empty": ["-n", "4", "--steps", "1", "--qat-steps", "1"],
}


def crops(src: Path, dst: Path, limit: int, size: int) -> None:
    from PIL import Image

    for p in sorted(src.glob("*.png"))[:limit]:
        with Image.open(p) as im:
            w, h = im.size
            im.crop(((w - size) // 2, (h - size) // 2, (w + size) // 2, (h + size) // 2)).save(dst / p.name)


def run(images: Path, out: Path, options: list[str], mode: list[str]) -> float:
    cmd = [sys.executable, "-m", "splatpix.cli", "batch", "encode", str(images), str(out), *options, "--quiet",
           "--threads", "1", *mode]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip().splitlines()[-1]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=str(KODAK))
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--crop", type=int, default=128, help="centre crops of this size (pixels)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        images = Path(d) / "images"
        images.mkdir()
        crops(Path(args.images), images, args.limit, args.crop)
        for name, options in WORKLOADS.items():
            for mode_name, mode in ((f"--jobs {args.jobs}", ["--jobs", str(args.jobs)]), ("--ray", ["--ray"])):
                for i in range(args.repeats):
                    load = os.getloadavg()[0]
                    s = run(images, Path(d) / f"{name}-{mode_name[2:5]}-{i}", options, mode)
                    rows.append({"workload": name, "mode": mode_name, "repeat": i, "seconds": round(s, 2),
                                 "load_1min_before": round(load, 2)})
                    print(f"{name:7s} {mode_name:10s} run {i}: {s:6.1f} s (load {load:.1f})", flush=True)
    write_rows(args.out, "batch_ray_overhead", args, rows)
    by = {}
    for r in rows:
        by.setdefault((r["workload"], r["mode"]), []).append(r["seconds"])
    for (w, m), v in by.items():
        print(f"{w:7s} {m:10s} min {min(v):6.1f} s  all {v}")
    print({"machine": machine()})


if __name__ == "__main__":
    main()
