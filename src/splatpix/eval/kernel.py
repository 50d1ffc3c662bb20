"""Kernel benchmark: forward and backward time of each rasteriser backend.

The workload: Gaussians placed uniformly over a 768x512 image, per-axis standard
deviations drawn uniformly in [0.7, 3] px and a uniformly random orientation, three colour channels.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from datetime import UTC, datetime

import torch

from ..model.gaussians import conic_from_covariance
from ..render import rasterize


def random_pixel_gaussians(
    n: int, height: int, width: int, sigma: tuple[float, float] = (0.7, 3.0), channels: int = 3, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel-space means ``(N, 2)``, conics ``(N, 3)`` and colours ``(N, C)`` for the benchmark workload."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([width, height], dtype=torch.float64)
    s = sigma[0] + (sigma[1] - sigma[0]) * torch.rand(n, 2, generator=gen, dtype=torch.float64)
    th = torch.rand(n, generator=gen, dtype=torch.float64) * (2 * math.pi)
    c, si = torch.cos(th), torch.sin(th)
    v1, v2 = s[:, 0] ** 2, s[:, 1] ** 2
    cov = torch.stack((c * c * v1 + si * si * v2, c * si * (v1 - v2), si * si * v1 + c * c * v2), 1)
    conic, _ = conic_from_covariance(cov)
    colours = torch.rand(n, channels, generator=gen, dtype=torch.float64)
    return means.float(), conic.float(), colours.float()


def count_pairs(means: torch.Tensor, conic: torch.Tensor, height: int, width: int) -> int:
    """Number of (pixel, Gaussian) pairs inside the 3-sigma ellipses (the work the kernels do)."""
    from ..render import cpu

    m = means.numpy()
    q = conic.numpy()
    y0, y1, ok = cpu._prepare_all(m, q, height, width)
    return int(cpu.count_pairs(m, q, y0, y1, ok, height, width))


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_kernel(
    sizes: tuple[int, ...] = (10_000, 50_000, 200_000),
    height: int = 512,
    width: int = 768,
    backends: tuple[str, ...] = ("numba", "reference"),
    repeats: int = 5,
    reference_repeats: int = 1,
    progress=None,
) -> dict:
    """Median forward / backward milliseconds per backend and size, plus speed-ups vs the reference."""
    results = []
    for n in sizes:
        means, conic, colours = random_pixel_gaussians(n, height, width)
        row: dict = {"n_gaussians": n, "height": height, "width": width,
                     "pairs": count_pairs(means, conic, height, width)}
        for backend in backends:
            reps = reference_repeats if backend == "reference" else repeats
            m, q, c = (t.clone().requires_grad_() for t in (means, conic, colours))
            holder: dict = {}

            def fwd(backend=backend, m=m, q=q, c=c, holder=holder):
                holder["out"] = rasterize(m, q, c, height, width, backend=backend)

            def bwd(holder=holder, m=m, q=q, c=c):
                torch.autograd.grad(holder["out"], (m, q, c), grad_outputs=holder["grad"])

            fwd()  # warm-up (JIT compile / load cache)
            holder["grad"] = torch.ones_like(holder["out"])
            bwd()
            tf, tb = [], []
            for _ in range(reps):
                tf += _time(fwd, 1)
                tb += _time(bwd, 1)
            row[backend] = {
                "forward_ms": 1e3 * statistics.median(tf),
                "backward_ms": 1e3 * statistics.median(tb),
                "total_ms": 1e3 * (statistics.median(tf) + statistics.median(tb)),
                "repeats": reps,
            }
            if progress:
                progress(f"N={n} {backend}: fwd {row[backend]['forward_ms']:.1f} ms, "
                         f"bwd {row[backend]['backward_ms']:.1f} ms")
        if "numba" in row and "reference" in row:
            row["speedup_numba_vs_reference"] = row["reference"]["total_ms"] / row["numba"]["total_ms"]
        results.append(row)
    return {
        "benchmark": "kernel",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "workload": "uniform means, sigma ~ U[0.7, 3] px per axis, random orientation, C=3",
        "results": results,
    }
