"""Where jobs run: :class:`Inline` (this process, one at a time), :class:`Processes` (local worker processes, as
``eval rd --jobs``) and :class:`RayCluster` (Ray tasks on a cluster, or on a local Ray instance started for the run).

All three take :class:`~.runner.Job` objects and report, for each finished one, either its
:class:`~.tasks.Outcome` or why its worker died (``crash``: the runner retries the job). Every job runs through
:func:`~.tasks.execute`, so the outputs are the same whichever runs it.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from ..errors import SplatpixError
from .tasks import ERROR, Outcome, apply_threads, execute

if TYPE_CHECKING:
    from .runner import Job

__all__ = ["RAY_INSTALL", "Finished", "Inline", "Processes", "RayCluster", "import_ray"]

Finished = tuple["Job", Outcome | None, str | None]
"""A finished job: ``(job, outcome, None)``, or ``(job, None, crash)`` when its worker died."""

RAY_INSTALL = "--ray needs Ray: pip install 'splatpix[ray]' (or pip install 'ray>=2.9')"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SplatpixError(RAY_INSTALL) from None
    return ray


class Inline:
    """Jobs in this process, one at a time (``--jobs 1``): the thread count of the command (``--threads``)."""

    name = "local"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self.pending: Job | None = None

    def has_room(self) -> bool:
        return self.pending is None

    def busy(self) -> bool:
        return self.pending is not None

    def submit(self, job: Job) -> None:
        self.pending = job

    def wait(self, timeout: float) -> list[Finished]:
        job = self.pending
        if job is None:
            return []
        outcome = execute(job.func, job.args, self.threads)  # an interrupt leaves it pending: running() names it
        self.pending = None
        return [(job, outcome, None)]

    def running(self) -> list[Job]:
        return [self.pending] if self.pending is not None else []

    def stop(self) -> None:
        self.pending = None

    def close(self) -> None:
        pass


def _init_worker(threads: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops the workers
    apply_threads(threads)


class Processes:
    """Jobs in ``jobs`` local worker processes (spawned, not forked: forking running torch/numba thread pools can
    deadlock), each with ``threads`` threads. A worker that dies breaks the pool: every job then running is reported
    as crashed (the runner retries them) and a fresh pool is started."""

    name = "local"

    def __init__(self, jobs: int, threads: int | None) -> None:
        import multiprocessing

        self.jobs, self.threads = jobs, threads
        self.ctx = multiprocessing.get_context("spawn")
        self.pool: ProcessPoolExecutor | None = None
        self.futures: dict[Future, Job] = {}

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=self.ctx, initializer=_init_worker,
                                            initargs=(self.threads,))
        return self.pool

    def has_room(self) -> bool:
        return len(self.futures) < self.jobs

    def busy(self) -> bool:
        return bool(self.futures)

    def submit(self, job: Job) -> None:
        self.futures[self._pool().submit(execute, job.func, job.args, self.threads)] = job

    def wait(self, timeout: float) -> list[Finished]:
        done, _ = wait(list(self.futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out: list[Finished] = []
        broken = False
        for fut in done:
            job = self.futures.pop(fut)
            try:
                out.append((job, fut.result(), None))
            except BrokenProcessPool:
                broken = True
                out.append((job, None, "a worker process died"))
            except Exception as e:  # e.g. a result that cannot be sent back
                out.append((job, Outcome(ERROR, error=f"{type(e).__name__}: {e}"), None))
        if broken:
            self._discard_pool()
        return out

    def _discard_pool(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            self._terminate(pool)
            pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _terminate(pool: ProcessPoolExecutor) -> None:
        for p in list(getattr(pool, "_processes", {}).values()):
            if p.is_alive():
                p.terminate()

    def running(self) -> list[Job]:
        return list(self.futures.values())

    def stop(self) -> None:
        self.futures.clear()
        self._discard_pool()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


class RayCluster:
    """Jobs as Ray tasks, each asking for ``cpus`` CPUs and running with that many numba/torch threads. ``address``:
    a running cluster (``ray start --head``'s address, or ``auto``); ``None``: a local Ray instance started for the
    run (all cores) and shut down after it; a Ray already initialised in this process is used as it is.

    Ray's own retries are off (``max_retries=0``): a task whose worker died comes back as a crash and the runner
    resubmits it, counting attempts for the manifest. At most ``2 x`` (cluster CPUs / ``cpus``) tasks are in flight,
    so the images of a large folder do not all sit in the object store at once."""

    name = "ray"

    def __init__(self, address: str | None, cpus: int) -> None:
        ray = import_ray()
        self.ray, self.cpus, self.started = ray, cpus, False
        if not ray.is_initialized():
            import logging

            kw: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            try:
                if address:
                    ray.init(address=address, **kw)
                else:
                    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, **kw)
            except Exception as e:  # ConnectionError, a bad address, ...
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise SplatpixError(f"cannot start or reach {where}: {str(e).strip().splitlines()[0] if str(e) else e}"
                                    ) from None
            self.started = True
        total = float(ray.cluster_resources().get("CPU", 0))
        if total < cpus:
            self.close()
            raise SplatpixError(f"each task asks for {cpus} CPUs (--threads) but the Ray cluster has {total:g}")
        self.max_in_flight = max(2, 2 * int(total // cpus))
        self.remote = ray.remote(execute)
        self.refs: dict[Any, Job] = {}

    def has_room(self) -> bool:
        return len(self.refs) < self.max_in_flight

    def busy(self) -> bool:
        return bool(self.refs)

    def submit(self, job: Job) -> None:
        ref = self.remote.options(num_cpus=self.cpus, max_retries=0, retry_exceptions=False,
                                  name=f"splatpix {job.key}").remote(job.func, job.args, self.cpus)
        self.refs[ref] = job

    def wait(self, timeout: float) -> list[Finished]:
        ray = self.ray
        refs = list(self.refs)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out: list[Finished] = []
        for ref in ready:
            job = self.refs.pop(ref)
            try:
                out.append((job, ray.get(ref), None))
            except ray.exceptions.RayTaskError as e:  # the task itself raised (execute catches errors: a bug)
                out.append((job, Outcome(ERROR, error=f"task failed: {str(e).strip().splitlines()[-1]}"), None))
            except ray.exceptions.RayError as e:  # the worker or its node died, was killed for memory, ...
                out.append((job, None, f"{type(e).__name__}: {_first(e)}"))
        return out

    def running(self) -> list[Job]:
        return list(self.refs.values())

    def stop(self) -> None:
        for ref in self.refs:
            try:
                self.ray.cancel(ref)  # KeyboardInterrupt inside the task: its temporary files are removed
            except Exception:  # noqa: S110 - already finished or gone
                pass
        self.refs.clear()

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def _first(e: BaseException) -> str:
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
