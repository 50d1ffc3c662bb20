"""``splatpix batch encode|fit IN_DIR OUT_DIR``: every image of a folder as one job, on local processes or Ray.

Outputs, per image ``NAME.ext`` of ``IN_DIR``: ``OUT_DIR/NAME.spix`` (encode) or ``OUT_DIR/NAME.safetensors``
(fit), and ``OUT_DIR/NAME.report.json`` (the command's report); ``OUT_DIR/manifest.json`` records the run
(:mod:`.manifest`). The driver reads each image, the job gets its bytes and returns its files, and the driver
writes them atomically (the model or ``.spix`` first, the report last): an image is finished when both exist, and
a re-run skips it. The manifest keeps the options: a re-run with other options into the same folder is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SplatpixError
from ..io.files import atomic_write_bytes
from .manifest import Manifest
from .runner import DEFAULT_RETRIES, Job, Progress, run_jobs
from .tasks import DIVERGED, ERROR, OK, Outcome

__all__ = ["MANIFEST", "BatchSummary", "executor_for", "run_folder"]

MANIFEST = "manifest.json"
_SUFFIX = {"encode": ".spix", "fit": ".safetensors"}


@dataclass
class BatchSummary:
    """What a run did: the manifest's items, what this run ran, skipped and failed, and its wall time."""

    manifest: Path
    total: int
    ran: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    diverged: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        ok = [v for v in self.items.values() if v.get("status") in (OK, DIVERGED)]
        psnr = [v["psnr"] for v in ok if isinstance(v.get("psnr"), int | float)]
        out: dict[str, Any] = {"images": self.total, "finished": len(ok), "ran": self.ran, "skipped": self.skipped,
                               "failed": len(self.failed), "diverged": len(self.diverged),
                               "mean_psnr": sum(psnr) / len(psnr) if psnr else None,
                               "bytes": sum(int(v.get("bytes") or 0) for v in ok),
                               "wall_seconds": round(self.seconds, 3)}
        bpp = [v["bpp"] for v in ok if isinstance(v.get("bpp"), int | float)]
        if bpp:
            out["mean_bpp"] = sum(bpp) / len(bpp)
        return out


def outputs(kind: str, image: Path) -> tuple[str, str]:
    """The output names of ``image``: the model or ``.spix`` file and the report."""
    return f"{image.stem}{_SUFFIX[kind]}", f"{image.stem}.report.json"


def executor_for(ray: str | None, jobs: int, threads: int | None) -> Any:
    """The executor of ``--ray [ADDRESS]`` (``ray`` is ``None`` without it, ``""`` for a local Ray instance),
    ``--jobs J`` and ``--threads T``: with Ray, each task asks for T CPUs (default 1); with J > 1 local processes,
    each gets T threads (default: the cores shared out); else this process."""
    from .executors import Inline, Processes, RayCluster

    if ray is not None:
        return RayCluster(ray or None, threads or 1)
    if jobs > 1:
        return Processes(jobs, threads or max(1, (os.cpu_count() or 1) // jobs))
    return Inline()


def _check_stems(images: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for im in images:
        if im.stem in seen:
            raise SplatpixError(f"{seen[im.stem]} and {im.name} would write the same outputs ({im.stem}.*); rename one")
        seen[im.stem] = im


def _remove_stale_temporaries(out_dir: Path, names: set[str]) -> None:
    """Temporary files a hard-killed earlier run left beside its outputs (``.NAME.random.tmp``)."""
    for p in out_dir.iterdir():
        n = p.name
        if n.startswith(".") and n.endswith(".tmp") and n[1:].rsplit(".", 2)[0] in names:
            with contextlib.suppress(OSError):
                p.unlink()


def _record_from_report(out_dir: Path, kind: str, image: Path) -> dict[str, Any]:
    """A finished image's manifest record, rebuilt from its outputs (when the manifest lacks it)."""
    main, report = outputs(kind, image)
    rec: dict[str, Any] = {"image": image.name, "status": OK, "output": main,
                           "bytes": (out_dir / main).stat().st_size}
    with contextlib.suppress(OSError, ValueError):
        r = json.loads((out_dir / report).read_text())
        rec.update({k: r[k] for k in ("psnr", "bpp", "n_gaussians") if k in r})
        rec["seconds"] = r.get("encode_seconds", r.get("seconds"))
    return rec


def _reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise SplatpixError(f"{path}: cannot read ({e.strerror or e})") from None

    return read


def run_folder(kind: str, in_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
               task: Callable[..., Outcome], task_options: Any, settings: dict[str, Any], executor: Any,
               retries: int = DEFAULT_RETRIES, limit: int | None = None, bar: bool = True) -> BatchSummary:
    """Run ``task(name, image bytes, task_options)`` (:func:`~.tasks.encode_image` or :func:`~.tasks.fit_image`)
    for every image of ``in_dir`` not yet finished in ``out_dir``, on ``executor`` (:func:`executor_for`);
    ``settings`` (JSON) are the options the manifest keeps. Returns the summary (the manifest is written)."""
    try:
        return _run_folder(kind, in_dir, out_dir, task, task_options, settings, executor, retries, limit, bar)
    finally:
        executor.close()  # also when the folder is refused before any job ran (a Ray instance started for the run)


def _run_folder(kind: str, in_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                task: Callable[..., Outcome], task_options: Any, settings: dict[str, Any], executor: Any,
                retries: int, limit: int | None, bar: bool) -> BatchSummary:
    from ..eval.harness import list_images

    t0 = time.perf_counter()
    images = list_images(in_dir, limit)
    _check_stems(images)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SplatpixError(f"{out}: not a directory")
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps(settings))
    manifest = Manifest(out / MANIFEST, f"batch {kind}", settings, executor.name)
    _remove_stale_temporaries(out, {n for im in images for n in outputs(kind, im)} | {MANIFEST})
    summary = BatchSummary(manifest=out / MANIFEST, total=len(images), items=manifest.items)
    todo: list[Job] = []
    for im in images:
        if all((out / n).is_file() for n in outputs(kind, im)):
            summary.skipped += 1
            if manifest.items.get(im.name, {}).get("status") not in (OK, DIVERGED):
                manifest.items[im.name] = _record_from_report(out, kind, im)
            continue
        read = _reader(im)
        todo.append(Job(key=im.name, func=task, prepare=lambda im=im, read=read: (im.name, read(), task_options)))
    manifest.save()

    with Progress(len(images), summary.skipped, f"batch {kind}", "image", bar) as pb:
        def done(job: Job, outcome: Outcome) -> None:
            for name, data in outcome.files.items():  # the model / .spix first, the report last
                atomic_write_bytes(out / name, data)
            entry = {"image": job.key, "status": outcome.status, **outcome.record, "error": outcome.error}
            manifest.record(job.key, entry)
            summary.ran += 1
            if outcome.status == ERROR:
                summary.failed.append((job.key, outcome.error or "failed"))
            elif outcome.status == DIVERGED:
                summary.diverged.append((job.key, outcome.error or "diverged"))
            pb.put(outcome.record.get("psnr") if outcome.status != ERROR else None, failed=outcome.status == ERROR)

        def stopped(running: list[Job]) -> None:
            for job in running:
                manifest.items[job.key] = {"image": job.key, "status": "interrupted", "attempts": job.attempts}
            summary.seconds = time.perf_counter() - t0
            manifest.finish("interrupted", summary.as_dict())

        run_jobs(todo, executor, done, retries=retries, on_stop=stopped)
    summary.seconds = time.perf_counter() - t0
    manifest.finish("failed" if summary.failed else "complete", summary.as_dict())
    return summary


def fit_settings(args: argparse.Namespace, exclude: tuple[str, ...]) -> dict[str, Any]:
    """The options of ``batch fit`` the manifest keeps (those that change the outputs)."""
    out = {}
    for k, v in sorted(vars(args).items()):
        if k in exclude or callable(v):
            continue
        try:
            json.dumps(v)
        except TypeError:
            continue
        out[k] = v
    return out
