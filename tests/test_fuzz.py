"""A bounded fuzz run of every reader of untrusted files (``fuzz/run.py``: atheris, coverage-guided, seeded with
``fuzz/corpus/``): any crash, hang (over 10 s for one input) or memory breach (over 2 GiB) fails, and libFuzzer saves
the input. ``make fuzz`` runs the same targets for as long as asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("spix", "model", "gainer", "checkpoint", "edit_spec", "scene")
RUNS = {"spix": 4000, "model": 3000, "gainer": 2000, "checkpoint": 1500, "edit_spec": 1500, "scene": 800}

pytest.importorskip("atheris", reason="atheris (pip install splatpix[fuzz]) is needed for the fuzz run")


@pytest.mark.parametrize("target", TARGETS)
def test_bounded_fuzz_run_is_clean(target, tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "fuzz" / "run.py"), target, f"-runs={RUNS[target]}", "-seed=1"],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "SPLATPIX_FUZZ_DIR": str(tmp_path)})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"Done {RUNS[target]} runs" in res.stderr
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").iterdir())
    stats = json.loads((tmp_path / "work" / f"{target}.stats.json").read_text())
    assert stats["cases"] > 0 and stats["accepted"] + stats["rejected"] == stats["cases"]
