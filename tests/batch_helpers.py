"""Shared set-up of tests/test_batch*.py: a folder of tiny images (one corrupt) and the options of a quick encode."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from PIL import Image

from splatpix.io import sample_image_path

# a few steps: enough for a real file, quick on 2 cores
ENCODE = ["-n", "24", "--steps", "15", "--qat-steps", "5"]
FIT = ["-n", "24", "--steps", "10"]
TIME_KEYS = {"seconds", "encode_seconds", "decode_seconds", "fit_seconds", "qat_seconds", "init_seconds",
             "total_seconds", "encoding_time", "decoding_time", "history", "trials", "wall_seconds"}


def image_folder(root: Path, corrupt: bool = True) -> Path:
    d = root / "in"
    d.mkdir()
    im = Image.open(sample_image_path())
    im.crop((0, 0, 32, 24)).save(d / "a.png")
    im.crop((100, 100, 124, 124)).save(d / "b.png")
    im.crop((200, 50, 216, 66)).save(d / "c.jpg")
    if corrupt:
        (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 4)
    return d


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def without_times(v):
    """A report or RD file with its timings (which differ run to run) removed."""
    if isinstance(v, dict):
        return {k: without_times(x) for k, x in v.items() if k not in TIME_KEYS}
    if isinstance(v, list):
        return [without_times(x) for x in v]
    return v


def temporaries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))


def die_once(marker: str, value: int):
    """A job that kills its own worker process the first time (``marker`` not there yet), then succeeds."""
    from splatpix.batch.tasks import OK, Outcome

    if not os.path.exists(marker):
        Path(marker).write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return Outcome(OK, {"psnr": float(value)}, {f"{value}.txt": str(value).encode()})


def interrupt_and_resume(tmp_path: Path, extra: list[str]) -> None:
    """``batch encode`` in a subprocess, SIGINT once its first output is written: exit 130, "interrupted" in the
    manifest, no partial file; then a re-run finishes the rest and skips what was done."""
    import subprocess
    import sys
    import time

    src = image_folder(tmp_path, corrupt=False)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "splatpix.cli", "batch", "encode", str(src), str(out), "-n", "24", "--steps", "80",
           "--qat-steps", "5", "--quiet", *extra]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and p.poll() is None and not list(out.glob("*.report.json")):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "splatpix: interrupted" in err and "Traceback" not in err
    m = manifest(out)
    assert m["status"] == "interrupted"  # (the job then running, if the signal came during one, is "interrupted")
    assert {v["status"] for v in m["items"].values()} <= {"ok", "interrupted"}
    assert temporaries(out) == []
    finished = {q.name for q in out.glob("*.spix")}
    assert 1 <= len(finished) < 3
    assert all((out / n.replace(".spix", ".report.json")).exists() for n in finished)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"3 of 3 images finished ({3 - len(finished)} now, {len(finished)} earlier)" in r.stdout
