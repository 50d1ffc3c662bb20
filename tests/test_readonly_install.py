"""A read-only install run by a user whose HOME is not writable: the kernels still compile (their cache falls back
to a per-user temporary folder, or to no cache at all) and the commands work.

numba decides where it may cache by creating a folder and a temporary file there (``os.makedirs`` and
``tempfile.TemporaryFile``). The subprocesses below make exactly those calls fail with ``PermissionError`` for the
source tree and HOME (and, in the second case, the temporary folder too) before anything is imported: root ignores
permission bits, so chmod alone cannot show the problem in CI. The first test checks that the simulation reproduces
numba's failure on a plain cached function."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import splatpix

SRC = Path(splatpix.__file__).resolve().parent

PRELUDE = """
import os, sys, tempfile
DENY = tuple(sys.argv[1:])
def denied(path):
    path = os.path.abspath(os.fspath(path))
    return any(path == d or path.startswith(d + os.sep) for d in DENY)
_makedirs, _tmpfile = os.makedirs, tempfile.TemporaryFile
def makedirs(name, *a, **k):
    if denied(name):
        raise PermissionError(13, "Permission denied", name)
    return _makedirs(name, *a, **k)
def temporary_file(*a, dir=None, **k):
    if dir is not None and denied(dir):
        raise PermissionError(13, "Permission denied", dir)
    return _tmpfile(*a, dir=dir, **k)
os.makedirs, tempfile.TemporaryFile = makedirs, temporary_file
"""

SPLATPIX = PRELUDE + """
import splatpix, torch
from splatpix import jit
g = splatpix.initialise(torch.rand(3, 16, 16), 20)
img = splatpix.render(g, clamp=True)
assert img.shape == (3, 16, 16) and bool(torch.isfinite(img).all())
print(jit.NUMBA_CACHE, jit.CACHE_DIR)
"""


def _run(script: str, deny: list[str], tmp: Path, **env_over: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(HOME=str(tmp / "home"), TMPDIR=str(tmp / "tmp"), XDG_CACHE_HOME=str(tmp / "home" / ".cache"))
    env.update(env_over)
    (tmp / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", script, *deny], capture_output=True, text=True, env=env,
                          timeout=600, cwd=tmp)


def test_the_simulation_reproduces_numbas_refusal(tmp_path):
    mod = tmp_path / "pkg"
    mod.mkdir()
    (mod / "kern.py").write_text("import numba\n@numba.njit(cache=True)\ndef f(x):\n    return x + 1\n")
    script = PRELUDE + f"sys.path.insert(0, {str(mod)!r})\nimport kern\n"
    res = _run(script, [str(mod), str(tmp_path / "home")], tmp_path)
    assert res.returncode != 0 and "cannot cache function" in res.stderr


def test_unwritable_tree_and_home_fall_back_to_a_temporary_cache(tmp_path):
    res = _run(SPLATPIX, [str(SRC), str(tmp_path / "home")], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    cache, folder = res.stdout.split()
    assert cache == "True" and folder.startswith(str(tmp_path / "tmp"))
    assert any(Path(folder).rglob("*.nbi"))  # the kernels were cached there


def test_nothing_writable_compiles_without_a_cache(tmp_path):
    res = _run(SPLATPIX, [str(SRC), str(tmp_path / "home"), str(tmp_path / "tmp")], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["False", "None"]


def test_an_unwritable_numba_cache_dir_of_the_user_falls_back_too(tmp_path):
    res = _run(SPLATPIX, [str(SRC), str(tmp_path / "home"), str(tmp_path / "mine")], tmp_path,
               NUMBA_CACHE_DIR=str(tmp_path / "mine"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[0] == "True"
