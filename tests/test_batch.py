"""``splatpix batch encode|fit`` on local processes: outputs, manifest, a corrupt image, resume, option checks, a
worker that dies, and --ray without Ray."""

from __future__ import annotations

import json
import sys

import pytest
from batch_helpers import (
    ENCODE,
    FIT,
    die_once,
    image_folder,
    interrupt_and_resume,
    manifest,
    temporaries,
    without_times,
)

from splatpix.batch.executors import Processes
from splatpix.batch.runner import Job, run_jobs
from splatpix.cli import main
from splatpix.codec.decoding import decode_bytes_arrays


def test_batch_encode_manifest_bad_image_and_resume(tmp_path, capsys):
    src, out = image_folder(tmp_path), tmp_path / "out"
    assert main(["batch", "encode", str(src), str(out), *ENCODE, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "failed: bad.png: not an image file" in err and "1 of 4 images failed" in err and "Traceback" not in err
    m = manifest(out)
    assert m["status"] == "failed" and m["backend"] == "local" and m["settings"]["gaussians"] == 24
    items = m["items"]
    assert {k: v["status"] for k, v in items.items()} == {"a.png": "ok", "b.png": "ok", "bad.png": "error",
                                                          "c.jpg": "ok"}
    assert items["bad.png"]["error"].startswith("bad.png: not an image file")
    for stem in ("a", "b", "c"):
        data = (out / f"{stem}.spix").read_bytes()
        rec = items[f"{stem}.png" if stem != "c" else "c.jpg"]
        assert rec["bytes"] == len(data) and rec["psnr"] > 5 and rec["node"] and rec["attempts"] == 1
        assert decode_bytes_arrays(data).n == 24
        report = json.loads((out / f"{stem}.report.json").read_text())
        assert report["bytes"] == len(data) and report["output"] == f"{stem}.spix"
    assert temporaries(out) == [] and not (out / "bad.spix").exists()

    # a re-run skips the finished images (their files untouched) and retries only the failed one
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.spix")}
    (src / "bad.png").unlink()
    assert main(["batch", "encode", str(src), str(out), *ENCODE, "--quiet"]) == 0
    assert "3 of 3 images finished (0 now, 3 earlier)" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.spix")} == mtimes
    m2 = manifest(out)
    assert m2["status"] == "complete" and m2["summary"]["ran"] == 0 and m2["summary"]["skipped"] == 3
    assert m2["items"]["a.png"] == items["a.png"]

    # other options into the same folder are refused (the skipped outputs would not be theirs)
    assert main(["batch", "encode", str(src), str(out), "-n", "25", "--steps", "15", "--qat-steps", "5",
                 "--quiet"]) == 2
    assert "gaussians: 24 there, 25 now" in capsys.readouterr().err


def test_batch_fit_both_model_kinds(tmp_path, capsys):
    src = image_folder(tmp_path, corrupt=False)
    assert main(["batch", "fit", str(src), str(tmp_path / "g"), *FIT, "--quiet", "--limit", "2"]) == 0
    assert main(["batch", "fit", str(src), str(tmp_path / "k"), "--model", "gainer", *FIT, "--quiet",
                 "--limit", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["a.report.json", "a.safetensors",
                                                                  "b.report.json", "b.safetensors", "manifest.json"]
    from splatpix.gainer import load_gainer
    from splatpix.model.files import load_model

    assert load_model(tmp_path / "g" / "a.safetensors").n == 24
    assert load_gainer(tmp_path / "k" / "a.safetensors").size == (24, 32)
    rep = json.loads((tmp_path / "k" / "a.report.json").read_text())
    assert rep["model"] == "gainer" and rep["image"] == "a.png" and rep["steps"] == 10
    # option errors are one line, before any image runs
    capsys.readouterr()
    assert main(["batch", "fit", str(src), str(tmp_path / "x"), "--k", "4", "--quiet"]) == 2
    assert main(["batch", "fit", str(src), str(tmp_path / "x"), "--model", "gainer", "--lr", "0.1"]) == 2
    assert main(["batch", "encode", str(src), str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("splatpix: error:") == 3 and not (tmp_path / "x").exists()


def test_processes_retry_a_dead_worker(tmp_path):
    """A job whose worker process dies is resubmitted to a fresh pool and its output comes back whole."""
    done = {}
    jobs = [Job(str(i), die_once, (str(tmp_path / f"m{i}"), i)) for i in range(2)]
    run_jobs(jobs, Processes(2, 1), lambda job, o: done.setdefault(job.key, o), retries=2)
    assert sorted(done) == ["0", "1"]
    for key, o in done.items():
        assert o.status == "ok" and o.files == {f"{key}.txt": key.encode()}
        assert o.record["attempts"] >= 2 and "worker process died" in o.record["crashes"][0]

    # with no retries left the job fails (and says why) instead of stopping the run
    failed = {}
    run_jobs([Job("x", die_once, (str(tmp_path / "mx"), 7))], Processes(1, 1),
             lambda job, o: failed.setdefault(job.key, o), retries=0)
    assert failed["x"].status == "error" and "worker died 1 times" in failed["x"].error


def test_ray_option_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    src = image_folder(tmp_path, corrupt=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main(["batch", "encode", str(src), str(tmp_path / "o"), *ENCODE, "--ray"]) == 2
    assert main(["eval", "rd", "--images", str(src), "--method", "jpeg", "--out", str(tmp_path / "rd"),
                 "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["splatpix: error: --ray needs Ray: pip install 'splatpix[ray]' (or pip install 'ray>=2.9')"] * 2
    # a folder taken for the address
    assert main(["batch", "encode", "--ray", str(src), str(tmp_path / "o"), *ENCODE]) == 2
    assert "put --ray after the folders" in capsys.readouterr().err


def test_ctrl_c_stops_and_a_rerun_resumes(tmp_path):
    interrupt_and_resume(tmp_path, [])


def test_without_times_keeps_the_rest():
    assert without_times({"psnr": 1, "seconds": 2, "x": [{"encoding_time": 3, "bpp": 4}]}) == {"psnr": 1,
                                                                                            "x": [{"bpp": 4}]}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
