"""Coverage-guided fuzzing of splatpix's readers of untrusted files (atheris, libFuzzer).

    .venv/bin/python fuzz/run.py TARGET [libFuzzer options]            # e.g. -max_total_time=600 or -runs=20000
    make fuzz TARGET=spix SECONDS=600

TARGET is one of ``fuzz/targets.py``'s (spix, model, gainer, checkpoint, edit_spec, scene). The seed corpus is
``fuzz/corpus/TARGET/`` (small valid files of every method and kind); new inputs that reach new code go to
``fuzz/work/TARGET/`` (not committed; ``SPLATPIX_FUZZ_DIR`` moves ``work/`` and ``artifacts/`` elsewhere).
Outcomes: a clean rejection (SplatpixError) and a decode are fine; any other
exception is a crash, an input slower than ``-timeout`` (default here 10 s) a hang, one above ``-rss_limit_mb``
(default here 2048) a budget breach: each stops the run with a non-zero exit and saves the input as
``fuzz/artifacts/TARGET-crash-*`` / ``-timeout-*`` / ``-oom-*``. libFuzzer's last line says how many cases ran
(``Done N runs in S second(s)``); ``fuzz/work/TARGET.stats.json`` (rewritten every 500 cases) counts the outcomes
and records the slowest case, the worst seconds per input byte and the peak memory.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(HERE))
from targets import TARGETS, run_one  # noqa: E402


def _instrument_splatpix() -> int:
    """Coverage for splatpix's Python code, the numba kernels left as they are (atheris rewrites bytecode, which
    numba cannot compile): every plain function and method of every splatpix module is replaced by its instrumented
    copy wherever a module refers to it. Returns the number of functions instrumented."""
    import importlib
    import inspect
    import pkgutil

    import splatpix

    mods = [importlib.import_module(m.name) for m in pkgutil.walk_packages(splatpix.__path__, "splatpix.")
            if not m.name.startswith("splatpix.cli.__main__")]
    mods.append(splatpix)
    new: dict[int, object] = {}
    for mod in mods:
        for obj in list(vars(mod).values()):
            targets = [obj] if inspect.isfunction(obj) else (
                [v for v in vars(obj).values() if inspect.isfunction(v)] if inspect.isclass(obj) else [])
            for fn in targets:
                if fn.__module__.startswith("splatpix") and id(fn) not in new:
                    new[id(fn)] = atheris.instrument_func(fn)
    for mod in mods:
        for name, obj in list(vars(mod).items()):
            if id(obj) in new:
                setattr(mod, name, new[id(obj)])
            elif inspect.isclass(obj) and obj.__module__.startswith("splatpix"):
                for attr, v in list(vars(obj).items()):
                    if id(v) in new:
                        setattr(obj, attr, new[id(v)])
    return len(new)


def _rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        print(f"usage: {sys.argv[0]} TARGET [libFuzzer options]; targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    name = sys.argv[1]
    base = Path(os.environ.get("SPLATPIX_FUZZ_DIR", HERE))  # where new inputs, stats and crashes go
    work = base / "work" / name
    artifacts = base / "artifacts"
    work.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(exist_ok=True)
    stats = {"target": name, "cases": 0, "accepted": 0, "rejected": 0, "max_seconds": 0.0,
             "max_seconds_per_byte": 0.0}
    stats_path = work.parent / f"{name}.stats.json"
    rss0 = _rss_mb()

    def one(data: bytes) -> None:
        t0 = time.perf_counter()
        outcome = run_one(name, data)
        dt = time.perf_counter() - t0
        stats["cases"] += 1
        stats[outcome] += 1
        stats["max_seconds"] = max(stats["max_seconds"], dt)
        stats["max_seconds_per_byte"] = max(stats["max_seconds_per_byte"], dt / max(len(data), 1))
        if stats["cases"] % 500 == 0:
            stats["peak_rss_mb"] = _rss_mb()
            stats["rss_growth_mb"] = stats["peak_rss_mb"] - rss0
            stats_path.write_text(json.dumps(stats, indent=1) + "\n")

    args = [sys.argv[0], *sys.argv[2:]]
    if not any(a.startswith("-timeout=") for a in args):
        args.append("-timeout=10")
    if not any(a.startswith("-rss_limit_mb=") for a in args):
        args.append("-rss_limit_mb=2048")
    args += [f"-artifact_prefix={artifacts}/{name}-", str(work), str(HERE / "corpus" / name)]

    import random

    from targets import mutate_structure

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            out = mutate_structure(name, data, rng)
            if out is not None and len(out) <= max_size:
                return out
        return atheris.Mutate(data, max_size)

    print(f"instrumented {_instrument_splatpix()} functions of splatpix", flush=True)
    for seed in sorted((HERE / "corpus" / name).iterdir()):  # compile the kernels before anything is timed
        run_one(name, seed.read_bytes())
    atheris.Setup(args, one, custom_mutator=mutator)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SPLATPIX_FUZZ", "1")
    sys.exit(main())
