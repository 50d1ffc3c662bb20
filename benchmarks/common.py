"""Set-up shared by the benchmark scripts: where things are, timing, and the results files.

The scripts live in ``benchmarks/<area>/`` and are run from the repository root as
``python benchmarks/<area>/<script>.py ...``. Each one puts ``benchmarks/`` on ``sys.path`` in one line before
importing this module::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
    from common import KODAK, append_row, load_rows  # noqa: E402

splatpix (and torch) are imported inside the functions that need them, so that importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
DOCS_IMG = REPO / "docs" / "img"
SHARED = REPO.parent / "shared"  # the shared folder beside the checkout (../shared from the repository root)
KODAK = SHARED / "datasets" / "kodak"


def results(area: str, name: str = "") -> Path:
    """``benchmarks/<area>/results/<name>``: where an area's scripts write by default."""
    return BENCHMARKS / area / "results" / name


def today() -> str:
    """The UTC date, as the results files record it."""
    return datetime.now(UTC).strftime("%Y-%m-%d")


def machine() -> dict[str, Any]:
    """The ``machine`` entry of a results file: platform, CPU count, torch version."""
    import torch

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__}


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls, after one warm-up call."""
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)``."""
    w, h = (int(t) for t in text.lower().split("x"))
    return w, h


def centre_crop(img, h: int, w: int):
    """The centre ``h x w`` crop of a ``(C, H, W)`` image (the whole image along a side shorter than asked)."""
    _, hh, ww = img.shape
    y0, x0 = max(0, (hh - h) // 2), max(0, (ww - w) // 2)
    return img[:, y0:y0 + h, x0:x0 + w].contiguous()


def write_json(path: str | os.PathLike[str], data: dict, **dump_kw: Any) -> None:
    """Write ``data`` to ``path`` atomically (indent 1, a final newline), creating the folder."""
    from splatpix.io import atomic_write

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(p, "w") as fh:
        json.dump(data, fh, indent=1, **dump_kw)
        fh.write("\n")


def load_runs(path: str | os.PathLike[str], benchmark: str, **fields: Any) -> dict:
    """The results file of a script that rewrites it after every run (``{"runs": [...], "benchmark": name, ...}``),
    or a new one; ``fields`` (e.g. ``machine``, ``command``, ``args``) replace the file's."""
    p = Path(path)
    data = json.loads(p.read_text()) if p.exists() else {"runs": []}
    data.update({"benchmark": benchmark, **fields})
    return data


def write_rows(path: str | os.PathLike[str], benchmark: str, args: Any, rows: list[dict]) -> None:
    """Write the results file of a script that measures all its rows in one go:
    ``{"benchmark", "date", "args", "rows"}``."""
    write_json(path, {"benchmark": benchmark, "date": today(), "args": vars(args), "rows": rows})


def load_rows(path: str | os.PathLike[str], benchmark: str) -> dict:
    """The results file of a benchmark script that appends rows (``{"benchmark": name, "rows": [...]}``); a new
    one when ``path`` does not exist."""
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else {"benchmark": benchmark, "rows": []}


def append_row(path: str | os.PathLike[str], data: dict, row: dict) -> None:
    """Append ``row`` to ``data["rows"]``, print it as one JSON line and rewrite ``path`` atomically (a benchmark
    stopped half-way keeps every finished row)."""
    from splatpix.io import atomic_write

    data["rows"].append(row)
    print(json.dumps(row), flush=True)
    with atomic_write(Path(path), "w") as fh:
        json.dump(data, fh, indent=1)


def rd_configs(method: str, n_gaussians: int | None = None, **options: Any):
    """``(FitConfig, QATConfig)`` of the RD schedule for ``method``: ``splatpix.presets.CODEC_PRESETS["cpu"]`` (fit
    2000 steps, Adam lr 1e-2 halved at half-way; QAT 1000 steps, Adam lr 1e-3: what ``splatpix eval rd`` runs), then
    the method's fit defaults (``sga``'s initialisation, learning rates, relocation), then ``options``
    (:func:`splatpix.codec.api.encode_configs`: ``steps``, ``qat_steps``, ``footprint_weight``,
    ``qat_footprint_weight``, ``vq_codebook``, ...; ``None`` values are ignored). ``n_gaussians`` sets the fit's N
    and the Cholesky parameterisation, as ``encode`` does, for scripts that call ``fit`` themselves."""
    import dataclasses

    from splatpix.codec.api import encode_configs

    fc, qc, _ = encode_configs(method, "cpu", options)
    if n_gaussians is not None:
        fc = dataclasses.replace(fc, n_gaussians=int(n_gaussians), param="cholesky")
    return fc, qc


def count_model_pairs(g) -> int:
    """The (pixel, Gaussian) pairs the rasteriser evaluates to render ``g`` at its native size (the summed clipped
    3-sigma ellipse areas): render time at a given N is proportional to it."""
    import torch

    from splatpix.eval.kernel import count_pairs
    from splatpix.model.gaussians import conic_from_covariance, project

    h, w = g.size
    with torch.no_grad():
        means_px, cov_px = project(g, h, w)
        conic = conic_from_covariance(cov_px)[0]
    return count_pairs(means_px.float().contiguous(), conic.float().contiguous(), h, w)
