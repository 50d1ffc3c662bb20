"""``batch encode|fit`` and ``eval rd`` with ``--ray`` on a local 2-CPU Ray cluster: the same outputs as the local
path, resume, a corrupt image, a worker killed mid-task (retried, its output whole), and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from batch_helpers import ENCODE, FIT, image_folder, interrupt_and_resume, manifest, temporaries, without_times

from splatpix.cli import main

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance (2 CPUs) for the module; the commands use it as it is (``--ray`` in this process)."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_encode_equals_local_resumes_and_reports_a_bad_image(tmp_path, cluster, capsys):
    src = image_folder(tmp_path)
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["batch", "encode", str(src), str(local), *ENCODE, "--quiet"]) == 2
    assert main(["batch", "encode", str(src), str(remote), *ENCODE, "--quiet", "--ray"]) == 2
    assert "1 of 4 images failed" in capsys.readouterr().err
    m = manifest(remote)
    assert m["backend"] == "ray" and m["status"] == "failed"
    assert m["items"]["bad.png"]["status"] == "error" and "not an image" in m["items"]["bad.png"]["error"]
    for stem in ("a", "b", "c"):  # bit-identical files; the reports differ only in their timings
        assert (remote / f"{stem}.spix").read_bytes() == (local / f"{stem}.spix").read_bytes()
        rl, rr = (json.loads((d / f"{stem}.report.json").read_text()) for d in (local, remote))
        assert without_times(rl) == without_times(rr)
    for name in ("a.png", "b.png", "c.jpg"):
        rec = m["items"][name]
        assert rec["status"] == "ok" and rec["threads"] == 1 and rec["ray_node"] and rec["attempts"] == 1

    # resume: nothing finished runs again
    mtimes = {p.name: p.stat().st_mtime_ns for p in remote.glob("*.spix")}
    assert main(["batch", "encode", str(src), str(remote), *ENCODE, "--quiet", "--ray"]) == 2
    m2 = manifest(remote)
    assert m2["summary"]["skipped"] == 3 and m2["summary"]["ran"] == 1
    assert {p.name: p.stat().st_mtime_ns for p in remote.glob("*.spix")} == mtimes


def test_ray_fit_equals_local(tmp_path, cluster):
    from safetensors.numpy import load_file

    src = image_folder(tmp_path, corrupt=False)
    for kind in ("gaussianimage", "gainer"):
        dirs = [tmp_path / f"{kind}-{where}" for where in ("local", "ray")]
        for d, extra in zip(dirs, ([], ["--ray"]), strict=True):
            assert main(["batch", "fit", str(src), str(d), "--model", kind, *FIT, "--quiet", "--limit", "2",
                         *extra]) == 0
        for stem in ("a", "b"):
            tl, tr = (load_file(str(d / f"{stem}.safetensors")) for d in dirs)
            assert tl.keys() == tr.keys() and all((tl[k] == tr[k]).all() for k in tl)  # the same tensors
            rl, rr = (json.loads((d / f"{stem}.report.json").read_text()) for d in dirs)
            # a model file's metadata holds its fit time, so its size can differ by a few bytes
            assert abs(rl.pop("model_bytes", 0) - rr.pop("model_bytes", 0)) < 32
            assert without_times(rl) == without_times(rr)


def test_ray_eval_rd_equals_local(tmp_path, cluster):
    src = image_folder(tmp_path, corrupt=False)
    opts = ["--images", str(src), "--method", "gaussianimage", "--points", "16", "24", "--steps", "15",
            "--qat-steps", "5", "--quiet", "--limit", "2"]
    assert main(["eval", "rd", *opts, "--out", str(tmp_path / "l")]) == 0
    assert main(["eval", "rd", *opts, "--out", str(tmp_path / "r"), "--ray"]) == 0
    for stem in ("a", "b"):
        fl, fr = (json.loads((tmp_path / d / "gaussianimage" / f"{stem}.json").read_text()) for d in ("l", "r"))
        assert list(fl["per_point"]) == list(fr["per_point"]) == ["16.0", "24.0"]
        assert without_times(fl) == without_times(fr)
    cl, cr = (json.loads((tmp_path / d / "gaussianimage.json").read_text())["results"] for d in ("l", "r"))
    assert cl["bpp"] == cr["bpp"] and cl["psnr-rgb"] == cr["psnr-rgb"]
    ml, mr = (json.loads((tmp_path / d / "gaussianimage.manifest.json").read_text()) for d in ("l", "r"))
    assert sorted(ml["items"]) == sorted(mr["items"]) == ["a.png@16", "a.png@24", "b.png@16", "b.png@24"]
    assert all(v["status"] == "ok" and v["bytes"] > 0 for v in mr["items"].values())


def _task_pids(name: str) -> list[int]:
    """Ray workers running the task ``splatpix NAME`` (Ray titles a busy worker ``ray::<task name>``)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(f"ray::splatpix {name}".encode()):
                pids.append(int(p.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker in /proc")
def test_ray_killed_worker_is_retried_and_its_output_complete(tmp_path, cluster):
    src = image_folder(tmp_path, corrupt=False)
    (src / "b.png").unlink()
    (src / "c.jpg").unlink()
    opts = ["-n", "24", "--steps", "400", "--qat-steps", "5", "--quiet"]  # long enough to be caught running
    assert main(["batch", "encode", str(src), str(tmp_path / "ref"), *opts]) == 0
    out = tmp_path / "out"
    rc: list[int] = []
    run = threading.Thread(target=lambda: rc.append(main(["batch", "encode", str(src), str(out), *opts, "--ray"])))
    run.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and run.is_alive():
        pids = _task_pids("a.png")
        if pids:
            time.sleep(0.3)  # into the encode
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.05)
    run.join(120)
    assert killed is not None and rc == [0]
    rec = manifest(out)["items"]["a.png"]
    assert rec["status"] == "ok" and rec["attempts"] == 2 and rec["pid"] != killed
    assert "WorkerCrashedError" in rec["crashes"][0] or "died" in rec["crashes"][0]
    assert (out / "a.spix").read_bytes() == (tmp_path / "ref" / "a.spix").read_bytes()
    assert temporaries(out) == []


@pytest.mark.slow  # two runs of the command, each starting its own Ray instance: ~50 s on a busy 2-core machine
def test_ray_ctrl_c_stops_and_a_rerun_resumes(tmp_path):
    """SIGINT to the command (its own local Ray instance): exit 130, the manifest says interrupted, no partial
    file; the re-run finishes the rest."""
    interrupt_and_resume(tmp_path, ["--ray"])
