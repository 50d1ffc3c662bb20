"""The rate–distortion harness: run a method over a folder of images at several rate points.

Layout of ``out_dir``::

    out_dir/<method>/<image stem>.json   one file per image (CompressAI JSON plus "source" and "points")
    out_dir/<method>.json                the mean curve over the images (CompressAI JSON)

Resumable: a per-image file is rewritten (atomically) after every finished point, and points already in it
are skipped on the next run. Parallel: images are distributed over ``jobs`` worker processes, each of which
owns its images' files, so no two processes ever write the same file; or, with ``ray``, every missing (image, point)
is a Ray task and this process writes the files (:mod:`splatpix.batch`). ``out_dir/<label>.manifest.json`` records
each point's status, bytes, PSNR, times and node.

Methods (:func:`available_methods`): every classical codec of :mod:`.baselines` (points are target bpp values)
and every registered codec method (:mod:`splatpix.codec.registry`; points are numbers of Gaussians). A method is a
callable ``(image tensor, point) -> dict`` returning at least ``bpp``, ``psnr``, ``ms_ssim``, ``encoding_time`` and
``decoding_time``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import SplatpixError
from ..io import load_image
from ..io.files import atomic_write_bytes
from ..presets import DEFAULT_CODEC_PRESET, RD_BPP_POINTS, RD_N_POINTS
from .rd import RDCurve, mean_curve, save_curve

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

PointFn = Callable[[Any, float], dict[str, Any]]


def _baseline(codec: str) -> PointFn:
    def run(img, point: float) -> dict[str, Any]:
        from .baselines import encode_at_bpp

        r = encode_at_bpp(codec, img, float(point))
        return {"bpp": r.bpp, "psnr": r.psnr, "ms_ssim": r.ms_ssim, "encoding_time": r.encode_seconds,
                "decoding_time": r.decode_seconds, "quality": r.quality}

    return run


def _gaussian_codec(method: str, options: dict[str, Any]) -> PointFn:
    opts = dict(options)
    preset = opts.pop("preset", None) or DEFAULT_CODEC_PRESET
    compare_dir = opts.pop("compare_dir", None)

    def run(img, point: float, name: str = "image") -> dict[str, Any]:
        from ..codec.api import encode, encode_configs

        fit_cfg, qat_cfg, method_opts = encode_configs(method, preset, opts)
        res = encode(img, int(point), method=method, fit_config=fit_cfg, qat_config=qat_cfg, options=method_opts,
                     progress=False)
        r = res.report
        if compare_dir is not None:
            _write_compare(Path(compare_dir) / f"{name}_n{int(point)}.png", img, res.data, method, r)
        out = {"bpp": r["bpp"], "psnr": r["psnr"], "ms_ssim": r["ms_ssim"], "encoding_time": r["encode_seconds"],
               "decoding_time": r["decode_seconds"], "n_gaussians": r["n_gaussians"], "bytes": r["bytes"],
               "psnr_fit": r["psnr_fit"], "fit_steps": r["fit_steps"], "qat_steps": r["qat_steps"],
               "fit_seconds": r["fit_seconds"]}
        for k in ("tier_bits", "tier_thresholds", "vq_stages", "vq_codebook", "colour", "colour_bits"):
            if k in r:
                out[k] = r[k]
        return out

    return run


def _write_compare(path: Path, img: Any, data: bytes, method: str, report: dict[str, Any]) -> None:
    """``eval rd --compare``: the original | the decoded file | its error map | JPEG and WebP at the same bytes."""
    import numpy as np

    from ..codec.decoding import decode_bytes_arrays
    from ..io import save_image
    from ..render.arrays import render_array
    from .compare import ERROR_GAIN, classical_at_bytes, compare_image, error_map, to_rgb8

    ref, dec = to_rgb8(img), to_rgb8(render_array(decode_bytes_arrays(data), clamp=True))
    panels = [(f"original {ref.shape[1]}x{ref.shape[0]}", ref),
              (f"splatpix {method}: {report['psnr']:.2f} dB, {report['bpp']:.3f} bpp", dec),
              (f"|error| x{ERROR_GAIN:g}", error_map(dec, ref))]
    for c in classical_at_bytes(img, len(data)):
        panels.append((f"{c['codec'].upper()}: {c['psnr']:.2f} dB, {c['bpp']:.3f} bpp", c["image"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(compare_image(panels).transpose(2, 0, 1).astype(np.float64) / 255.0, path)


def available_methods(options: dict[str, Any] | None = None) -> dict[str, tuple[PointFn, tuple[float, ...]]]:
    """Method name -> (point function, default points): the classical codecs of :mod:`.baselines` (points are
    target bpp values) and every registered Gaussian codec method (points are numbers of Gaussians). ``options``
    (Gaussian codecs): ``preset`` (default ``"cpu"``) and the encode options of
    :func:`splatpix.codec.api.encode_configs`, the same as ``splatpix encode``'s."""
    from ..codec import registry
    from .baselines import CODECS

    methods: dict[str, tuple[PointFn, tuple[float, ...]]] = {
        name: (_baseline(name), RD_BPP_POINTS) for name in CODECS}
    for m in registry.names():
        methods[m] = (_gaussian_codec(m, options or {}), RD_N_POINTS)
    return methods


def _gaussian_methods() -> tuple[str, ...]:
    from ..codec import registry

    return registry.names()


def list_images(images_dir: str | os.PathLike[str], limit: int | None = None) -> list[Path]:
    d = Path(images_dir)
    if not d.is_dir():
        raise SplatpixError(f"{d}: not a directory of images")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SplatpixError(f"{d}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return files[:limit] if limit else files


def _point_key(point: float) -> str:
    return repr(float(point))


def _read_done(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        done = data["per_point"]
        if not isinstance(done, dict):
            raise TypeError("per_point is not an object")
        return done
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SplatpixError(f"{path}: unreadable partial result ({e}); delete it to start this image again") from e


def _write_image_file(path: Path, method: str, image: Path, points: Sequence[float],
                      done: dict[str, dict[str, Any]]) -> None:
    finished = [p for p in points if _point_key(p) in done]
    rows = [done[_point_key(p)] for p in finished]
    results: dict[str, Any] = {
        "bpp": [r["bpp"] for r in rows],
        "psnr-rgb": [r["psnr"] for r in rows],
        "encoding_time": [r["encoding_time"] for r in rows],
        "decoding_time": [r["decoding_time"] for r in rows],
    }
    if rows and all(r.get("ms_ssim") is not None for r in rows):
        results["ms-ssim-rgb"] = [r["ms_ssim"] for r in rows]
    data = {"name": method, "description": f"{method} on {image.name}", "source": image.name,
            "points": list(finished), "results": results, "per_point": done}
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())


def _run_image(method: str, image: str, points: tuple[float, ...], out_dir: str,
               options: dict[str, Any] | None = None, label: str | None = None, done_queue: Any = None) -> str:
    """Run the missing points of one image; after each, its PSNR goes to ``done_queue`` (a queue's ``put``, for the
    progress bar) when one is given."""
    fn, _ = available_methods(options)[method]
    img_path = Path(image)
    label = label or method
    path = Path(out_dir) / label / f"{img_path.stem}.json"
    done = _read_done(path)
    img = None
    for p in points:
        if _point_key(p) in done:
            continue
        if img is None:
            img = load_image(img_path)
            if img.shape[0] != 3:
                raise SplatpixError(f"{img_path}: the RD harness needs RGB images, got {img.shape[0]} channels")
        done[_point_key(p)] = fn(img, p, img_path.stem) if method in _gaussian_methods() else fn(img, p)
        _write_image_file(path, label, img_path, points, done)
        if done_queue is not None:
            done_queue.put(float(done[_point_key(p)]["psnr"]))
    if not path.exists():
        _write_image_file(path, label, img_path, points, done)
    return str(path)


class _Bar:
    """The harness's progress bar: ``put(psnr)`` for each finished point (the same call a worker's queue gets)."""

    def __init__(self, total: int, initial: int, label: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.psnr: list[float] = []
        self.tqdm = tqdm(total=total, initial=initial, desc=label, unit="point", disable=not enabled,
                         dynamic_ncols=True, smoothing=0.1)

    def put(self, psnr: float) -> None:
        self.psnr.append(psnr)
        self.tqdm.set_postfix_str(f"mean PSNR {sum(self.psnr) / len(self.psnr):.2f} dB", refresh=False)
        self.tqdm.update(1)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.tqdm.close()


def _run_parallel(args: list[tuple[Any, ...]], jobs: int, pb: _Bar,
                  progress: Callable[[str], None] | None, threads: int | None = None) -> list[str]:
    """The images over ``jobs`` worker processes (each with ``threads`` numba/torch threads when given), the bar fed
    from a queue the workers write to."""
    import queue as queue_mod

    from ..batch.tasks import apply_threads

    ctx = multiprocessing.get_context("spawn")  # not fork: forking running torch/numba thread pools can deadlock
    with ctx.Manager() as manager, ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=apply_threads,
                                                       initargs=(threads,)) as ex:
        q = manager.Queue()
        futures = [ex.submit(_run_image, *a, done_queue=q) for a in args]
        files: list[str | None] = [None] * len(futures)
        pending = set(range(len(futures)))
        while pending:
            try:
                pb.put(q.get(timeout=0.5))
            except queue_mod.Empty:
                pass
            for i in [i for i in pending if futures[i].done()]:
                files[i] = futures[i].result()
                pending.discard(i)
                if progress:
                    progress(f"done {files[i]}")
        while not q.empty():
            pb.put(q.get())
    return [f for f in files if f is not None]


def run_rd(images_dir: str | os.PathLike[str], method: str, out_dir: str | os.PathLike[str],
           points: Sequence[float] | None = None, jobs: int = 1, limit: int | None = None,
           progress: Callable[[str], None] | None = None, options: dict[str, Any] | None = None,
           label: str | None = None, bar: bool = False, ray: str | None = None, threads: int | None = None,
           retries: int | None = None) -> RDCurve:
    """Run ``method`` on every image of ``images_dir`` at ``points``; returns (and writes) the mean curve.

    ``label`` names the run (its folder and curve file; default: the method name), e.g. for ablations. ``progress``
    gets a line per finished image; ``bar``: one progress bar (tqdm, on stderr) over images x points, with the ETA
    and the mean PSNR of the points run so far (points already done by an earlier run count as done).

    ``ray``: run every missing (image, point) as a Ray task (:mod:`splatpix.batch`) on the cluster at that address,
    or on a local Ray instance when it is ``""``; each task asks for ``threads`` CPUs (default 1), a task whose worker
    died is resubmitted up to ``retries`` times, and a point that fails is recorded in the manifest while the others
    go on. This process writes the same per-image files as the local path, after every finished point. Both paths
    write ``out_dir/<label>.manifest.json`` (per point: status, bytes, PSNR, times, node)."""
    methods = available_methods(options)
    if method not in methods:
        raise SplatpixError(f"unknown or unavailable method {method!r}; available: {', '.join(sorted(methods))}")
    pts = tuple(float(p) for p in (points if points else methods[method][1]))
    if not pts or any(not p > 0 for p in pts):
        raise SplatpixError(f"points must be positive numbers, got {list(pts)}")
    images = list_images(images_dir, limit)
    label = label or method
    if not label.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise SplatpixError(f"label must be letters, digits, '-', '_' or '.', got {label!r}")
    (Path(out_dir) / label).mkdir(parents=True, exist_ok=True)
    args = [(method, str(im), pts, str(out_dir), options, label) for im in images]
    already = sum(sum(_point_key(p) in _read_done(Path(out_dir) / label / f"{im.stem}.json") for p in pts)
                  for im in images)
    manifest = _rd_manifest(out_dir, method, label, pts, options, "ray" if ray is not None else "local")
    with _Bar(len(images) * len(pts), already, label, bar) as pb:
        if ray is not None:
            files = _run_ray(method, images, pts, out_dir, options, label, pb, manifest, ray, threads, retries)
        elif jobs > 1:
            files = _run_parallel(args, jobs, pb, progress, threads)
        else:
            files = []
            for a in args:
                files.append(_run_image(*a, done_queue=pb))
                if progress:
                    progress(f"done {files[-1]}")
    _record_points(manifest, images, pts, out_dir, label)
    manifest.finish("complete", {"images": len(images), "points": len(pts)})
    curves = []
    for f in files:
        data = json.loads(Path(f).read_text())
        res = data["results"]
        curves.append(RDCurve(name=label, description=data["description"], bpp=res["bpp"], psnr=res["psnr-rgb"],
                              ms_ssim=res.get("ms-ssim-rgb"), raw={"name": label, "results": res}))
    mean = mean_curve(curves, name=label, description=f"{method}: mean over {len(curves)} images of "
                      f"{Path(images_dir).name} at points {list(pts)}"
                      + (f" with {options}" if options else ""))
    save_curve(mean, Path(out_dir) / f"{label}.json")
    return mean


# ----------------------------------------------------------------------------------------------------------------
# The manifest and the Ray path (splatpix.batch)
# ----------------------------------------------------------------------------------------------------------------


def _rd_manifest(out_dir: str | os.PathLike[str], method: str, label: str, pts: tuple[float, ...],
                 options: dict[str, Any] | None, backend: str) -> Any:
    from ..batch.manifest import Manifest

    settings = json.loads(json.dumps({"method": method, "points": list(pts),
                                      "options": {k: v for k, v in (options or {}).items() if k != "compare_dir"}}))
    # the per-image files are the record of what is done (as without a manifest): a run with other options or points
    # under the same label adds to them, so the manifest does not refuse it
    return Manifest(Path(out_dir) / f"{label}.manifest.json", f"eval rd {label}", settings, backend,
                    check_settings=False)


def _point_name(image: Path, point: float) -> str:
    return f"{image.name}@{point:g}"


def _point_entry(image: Path, point: float, row: dict[str, Any]) -> dict[str, Any]:
    return {"image": image.name, "point": point, "status": "ok", "bytes": row.get("bytes"), "bpp": row.get("bpp"),
            "psnr": row.get("psnr"), "seconds": row.get("encoding_time"), "decoding_seconds": row.get("decoding_time")}


def _record_points(manifest: Any, images: list[Path], pts: tuple[float, ...], out_dir: str | os.PathLike[str],
                   label: str) -> None:
    """Points finished (by this run's local path, or an earlier run) that the manifest does not hold yet."""
    import socket

    for im in images:
        done = _read_done(Path(out_dir) / label / f"{im.stem}.json")
        for p in pts:
            key = _point_name(im, p)
            if _point_key(p) in done and manifest.items.get(key, {}).get("status") != "ok":
                manifest.items[key] = _point_entry(im, p, done[_point_key(p)]) | {"node": socket.gethostname()}


def rd_point(method: str, options: dict[str, Any] | None, name: str, data: bytes, point: float,
             compare: bool) -> Any:
    """One (image, point) of ``eval rd --ray``, in a Ray worker: the image arrives as bytes, the row (and, with
    ``compare``, the comparison picture) go back to the driver, which writes them."""
    import tempfile

    from ..batch.tasks import OK, Outcome, staged_image

    with staged_image(name, data) as path, tempfile.TemporaryDirectory(prefix="splatpix-rd-") as cmp:
        img = load_image(path)
        if img.shape[0] != 3:
            raise SplatpixError(f"{name}: the RD harness needs RGB images, got {img.shape[0]} channels")
        opts = dict(options or {})
        if compare:
            opts["compare_dir"] = cmp
        fn, _ = available_methods(opts)[method]
        row = fn(img, point, path.stem) if method in _gaussian_methods() else fn(img, point)
        files = {p.name: p.read_bytes() for p in Path(cmp).iterdir()} if compare else {}
    if row.get("bytes") is None:
        row_bytes = round(row["bpp"] * img.shape[1] * img.shape[2] / 8)
    else:
        row_bytes = row["bytes"]
    record = {"point": point, "bytes": row_bytes, "bpp": row["bpp"], "psnr": row["psnr"],
              "seconds": row["encoding_time"], "decoding_seconds": row["decoding_time"]}
    return Outcome(OK, record, files, data=row)


def _run_ray(method: str, images: list[Path], pts: tuple[float, ...], out_dir: str | os.PathLike[str],
             options: dict[str, Any] | None, label: str, pb: _Bar, manifest: Any, address: str,
             threads: int | None, retries: int | None) -> list[str]:
    from ..batch.executors import RayCluster
    from ..batch.runner import DEFAULT_RETRIES, Job, run_jobs
    from ..batch.tasks import ERROR

    compare_dir = (options or {}).get("compare_dir")
    opts = {k: v for k, v in (options or {}).items() if k != "compare_dir"} or None
    paths = {im: Path(out_dir) / label / f"{im.stem}.json" for im in images}
    dones = {im: _read_done(paths[im]) for im in images}
    earlier = {im: list(dones[im]) for im in images}
    where: dict[str, tuple[Path, float]] = {}
    jobs = []
    for im in images:
        for p in pts:
            if _point_key(p) not in dones[im]:
                key = _point_name(im, p)
                where[key] = (im, p)
                jobs.append(Job(key, rd_point, prepare=lambda im=im, p=p: (method, opts, im.name, im.read_bytes(), p,
                                                                           compare_dir is not None)))
    failed: list[tuple[str, str]] = []

    def done(job: Job, outcome: Any) -> None:
        im, p = where[job.key]
        if outcome.status == ERROR:
            failed.append((job.key, outcome.error or "failed"))
            pb.tqdm.update(1)
        else:
            d = dones[im]
            d[_point_key(p)] = outcome.data
            new = [_point_key(q) for q in pts if _point_key(q) in d and _point_key(q) not in earlier[im]]
            dones[im] = {k: d[k] for k in earlier[im] + new}  # the sequential run's order: earlier points, then new
            _write_image_file(paths[im], label, im, pts, dones[im])
            for name, data in outcome.files.items():
                Path(compare_dir).mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(Path(compare_dir) / name, data)
            pb.put(float(outcome.data["psnr"]))
        manifest.record(job.key, {"image": im.name, "status": outcome.status, **outcome.record,
                                  "error": outcome.error})

    def stopped(running: list[Job]) -> None:
        for job in running:
            manifest.items[job.key] = {"image": where[job.key][0].name, "point": where[job.key][1],
                                       "status": "interrupted", "attempts": job.attempts}
        manifest.finish("interrupted", {})

    executor = RayCluster(address or None, threads or 1)
    try:
        run_jobs(jobs, executor, done, retries=DEFAULT_RETRIES if retries is None else retries, on_stop=stopped)
    finally:
        executor.close()
    for im in images:  # an image whose points were all done earlier still gets its file
        if not paths[im].exists():
            _write_image_file(paths[im], label, im, pts, dones[im])
    if failed:
        _record_points(manifest, images, pts, out_dir, label)
        manifest.finish("failed", {"failed": len(failed)})
        key, message = failed[0]
        raise SplatpixError(f"{len(failed)} of {len(jobs)} points failed (first: {key}: {message}); the manifest "
                            f"{manifest.path} has each error; a re-run retries them (the mean curve needs every point)")
    return [str(paths[im]) for im in images]
