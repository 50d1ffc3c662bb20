"""The loop over a run's jobs: submit while an executor has room, hand each finished job to the caller, resubmit a
job whose worker died (up to ``retries`` more times), and on Ctrl-C (or SIGTERM) stop every worker and re-raise.

The caller writes outputs and the manifest as jobs finish (``on_done``), so an interrupted run keeps every finished
job and a re-run skips them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SplatpixError
from ..io.files import reason
from .tasks import ERROR, Outcome

__all__ = ["DEFAULT_RETRIES", "Job", "Progress", "run_jobs"]

DEFAULT_RETRIES = 2
"""Resubmissions of a job whose worker died (so three attempts in all)."""


@dataclass
class Job:
    """One unit of work: ``func(*args)`` (a module-level function returning an :class:`~.tasks.Outcome`); ``key``
    names it in the manifest. ``prepare`` (instead of ``args``) makes the arguments when the job is first submitted
    (e.g. reads the image), so a large folder is not held in memory at once; an error there fails the job.
    ``crashes`` lists why earlier attempts' workers died."""

    key: str
    func: Callable[..., Outcome]
    args: tuple[Any, ...] | None = None
    prepare: Callable[[], tuple[Any, ...]] | None = None
    attempts: int = 0
    crashes: list[str] = field(default_factory=list)


def run_jobs(jobs: Sequence[Job], executor: Any, on_done: Callable[[Job, Outcome], None],
             retries: int = DEFAULT_RETRIES, on_stop: Callable[[list[Job]], None] | None = None) -> None:
    """Run ``jobs`` on ``executor`` (:mod:`.executors`); ``on_done(job, outcome)`` for each as it finishes (its
    record holds ``attempts`` and, after a retry, ``crashes``). On KeyboardInterrupt the executor is stopped,
    ``on_stop`` gets the jobs that were running, and the interrupt is re-raised."""
    queue = deque(jobs)
    try:
        while queue or executor.busy():
            while queue and executor.has_room():
                job = queue.popleft()
                if job.args is None and job.prepare is not None:
                    try:
                        job.args = job.prepare()
                    except (SplatpixError, OSError) as e:
                        on_done(job, Outcome(ERROR, {"attempts": 0}, error=reason(e)))
                        continue
                job.attempts += 1
                executor.submit(job)
            for job, outcome, crash in executor.wait(0.5):
                if crash is not None:
                    job.crashes.append(crash)
                    if job.attempts <= retries:
                        queue.appendleft(job)
                        continue
                    outcome = Outcome(ERROR, error=f"its worker died {job.attempts} times (last: {crash})")
                assert outcome is not None
                outcome.record["attempts"] = job.attempts
                if job.crashes:
                    outcome.record["crashes"] = list(job.crashes)
                job.args = None  # the image's bytes are not needed any more
                on_done(job, outcome)
    except KeyboardInterrupt:
        running = executor.running()
        executor.stop()
        if on_stop is not None:
            on_stop(running)
        raise


class Progress:
    """One progress bar over a run (tqdm on stderr): done / total with the ETA, the mean PSNR of the jobs finished
    in this run and the number that failed. Finished jobs of an earlier run start it further along."""

    def __init__(self, total: int, initial: int, label: str, unit: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.psnr: list[float] = []
        self.failed = 0
        self.tqdm = tqdm(total=total, initial=initial, desc=label, unit=unit, disable=not enabled,
                         dynamic_ncols=True, smoothing=0.1)

    def put(self, psnr: float | None, failed: bool = False) -> None:
        if psnr is not None:
            self.psnr.append(float(psnr))
        self.failed += failed
        parts = [f"mean PSNR {sum(self.psnr) / len(self.psnr):.2f} dB"] if self.psnr else []
        if self.failed:
            parts.append(f"{self.failed} failed")
        self.tqdm.set_postfix_str(", ".join(parts), refresh=False)
        self.tqdm.update(1)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.tqdm.close()
