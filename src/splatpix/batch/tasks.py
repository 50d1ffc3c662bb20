"""What one job runs, in whatever process or Ray worker it lands on, and what it returns.

A job is a module-level function returning an :class:`Outcome`; :func:`execute` wraps it: it sets the worker's
numba and torch thread counts, times it, notes the node, and turns any error into a failed outcome with a one-line
message (so a bad image fails its own job only). The image arrives as bytes and the outputs leave as bytes: the job
works in a temporary folder of its worker and never touches the output folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import SplatpixError

__all__ = ["Outcome", "apply_threads", "encode_image", "execute", "fit_image", "now", "staged_image"]

OK, DIVERGED, ERROR = "ok", "diverged", "error"


@dataclass
class Outcome:
    """A job's result: ``status`` (``"ok"``, ``"diverged"``: its last good state was written, or ``"error"``),
    ``record`` (the manifest's fields: bytes, PSNR, times, node...), ``files`` (output name -> contents, written by
    the driver), ``error`` (one line) and ``data`` (anything else the driver needs, e.g. an RD point's row)."""

    status: str
    record: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    data: Any = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def apply_threads(n: int | None) -> None:
    """numba's and torch's thread counts for this worker (``None``: leave them)."""
    if n is None:
        return
    import numba

    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(n))
    else:
        os.environ["OMP_NUM_THREADS"] = str(int(n))  # torch reads it on import


def _threads() -> int | None:
    numba = sys.modules.get("numba")
    return numba.get_num_threads() if numba is not None else None


def _node() -> dict[str, Any]:
    info: dict[str, Any] = {"node": socket.gethostname(), "pid": os.getpid()}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        with contextlib.suppress(Exception):
            info["ray_node"] = ray.get_runtime_context().get_node_id()
    return info


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def execute(func: Callable[..., Outcome], args: tuple[Any, ...], threads: int | None) -> Outcome:
    """Run one job: ``func(*args)`` with ``threads`` numba/torch threads; every exception but an interrupt becomes
    an ``"error"`` outcome (an unexpected one says it is a bug)."""
    started, t0 = now(), time.perf_counter()
    apply_threads(threads)
    try:
        out = func(*args)
    except SplatpixError as e:
        out = Outcome(ERROR, error=_one_line(e))
    except MemoryError:
        out = Outcome(ERROR, error="out of memory")
    except (OSError, ValueError, RuntimeError) as e:
        out = Outcome(ERROR, error=_one_line(e))
    except Exception as e:  # a bug: say so, do not stop the other jobs
        out = Outcome(ERROR, error=f"internal error: {type(e).__name__}: {_one_line(e)} (a bug in splatpix: please "
                                   "report it)")
    out.record.update(_node(), started=started, finished=now(), wall_seconds=round(time.perf_counter() - t0, 3),
                      threads=threads or _threads())
    return out


@contextlib.contextmanager
def staged_image(name: str, data: bytes) -> Iterator[Path]:
    """``data`` as the file ``name`` in a fresh temporary folder (removed afterwards), whose path error messages
    replace with ``name``."""
    with tempfile.TemporaryDirectory(prefix="splatpix-job-") as d:
        path = Path(d) / name
        path.write_bytes(data)
        try:
            yield path
        except SplatpixError as e:
            raise SplatpixError(str(e).replace(str(path), name)) from None


def _report_bytes(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, indent=2, allow_nan=False) + "\n").encode()


def encode_image(name: str, data: bytes, settings: dict[str, Any]) -> Outcome:
    """``splatpix encode`` of one image: the ``.spix`` file and its report (``settings``: ``method``, ``preset``,
    ``options`` (:func:`splatpix.codec.api.encode_configs`'s), ``gaussians`` or ``bpp``, ``fixed_length``,
    ``max_pixels``). A divergence writes the last good state, as ``encode`` does."""
    from ..codec.api import EncodeDiverged, encode, encode_at_bpp, encode_configs
    from ..io import load_image

    with staged_image(name, data) as path:
        image = load_image(path, max_pixels=settings["max_pixels"])
    fit_cfg, qat_cfg, opts = encode_configs(settings["method"], settings["preset"], settings["options"])
    kw = {"method": settings["method"], "fit_config": fit_cfg, "qat_config": qat_cfg, "options": opts,
          "fixed_length": settings["fixed_length"], "progress": False}
    failure: EncodeDiverged | None = None
    try:
        if settings["gaussians"] is not None:
            res = encode(image, settings["gaussians"], **kw)
        else:
            res = encode_at_bpp(image, settings["bpp"], **kw)
    except EncodeDiverged as e:
        res, failure = e.result, e
    stem = Path(name).stem
    report = dict(res.report, image=name, output=f"{stem}.spix", method=settings["method"], preset=settings["preset"])
    record = {"output": f"{stem}.spix", "bytes": report["bytes"], "bpp": report["bpp"], "psnr": report["psnr"],
              "n_gaussians": report["n_gaussians"], "seconds": report["encode_seconds"]}
    return Outcome(DIVERGED if failure else OK, record,
                   {f"{stem}.spix": res.data, f"{stem}.report.json": _report_bytes(report)},
                   error=_one_line(failure) if failure else None)


def fit_image(name: str, data: bytes, args: argparse.Namespace) -> Outcome:
    """``splatpix fit`` (either model kind) of one image: the model file and its report, made by the command's own
    :func:`~splatpix.cli.model.run_fit` / ``run_fit_gainer`` with the batch's options ``args``."""
    from ..cli.model import run_fit, run_fit_gainer

    stem = Path(name).stem
    model_name, report_name = f"{stem}.safetensors", f"{stem}.report.json"
    args = argparse.Namespace(**vars(args))
    args.quiet = True
    status, error = OK, None
    with staged_image(name, data) as path:
        model_path, report_path = path.parent / model_name, path.parent / report_name
        run = run_fit_gainer if args.model == "gainer" else run_fit
        try:
            run(str(path), str(model_path), args, str(report_path))
        except SplatpixError as e:
            if getattr(e, "exit_code", None) != 3 or not model_path.exists():
                raise
            status, error = DIVERGED, str(e).replace(str(model_path), model_name)  # the last good model was saved
        report = json.loads(report_path.read_text())
        report["image"] = name
        report["output"] = model_name
        model = model_path.read_bytes()
    record = {"output": model_name, "bytes": len(model), "psnr": report.get("psnr"),
              "n_gaussians": report.get("n_gaussians"), "seconds": report.get("seconds")}
    return Outcome(status, record, {model_name: model, report_name: _report_bytes(report)}, error=error)
