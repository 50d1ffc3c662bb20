"""The RD harness on classical codecs: output files, mean curve, resumability, CLI."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from splatpix.cli import main
from splatpix.eval import harness
from splatpix.eval.rd import load_curve
from splatpix.io import sample_image_path


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    im = Image.open(sample_image_path())
    im.crop((0, 0, 96, 64)).save(d / "a.png")
    im.crop((200, 100, 296, 164)).save(d / "b.png")
    return d


def test_rd_harness_resumes_and_averages(tmp_path, images, monkeypatch):
    out = tmp_path / "rd"
    points = (0.6, 1.0, 1.5, 2.5)
    curve = harness.run_rd(images, "jpeg", out, points=points)
    assert len(curve) == 4 and curve.bpp == sorted(curve.bpp)
    per = [json.loads((out / "jpeg" / f"{s}.json").read_text()) for s in ("a", "b")]
    for d in per:
        assert d["points"] == list(points) and len(d["results"]["bpp"]) == 4
    mean_bpp = [(x + y) / 2 for x, y in zip(per[0]["results"]["bpp"], per[1]["results"]["bpp"], strict=True)]
    assert curve.bpp == pytest.approx(mean_bpp)
    assert load_curve(out / "jpeg.json").psnr == pytest.approx(curve.psnr)

    # a second run with one more point computes only that point
    calls = []
    real = harness.available_methods

    def counting(options=None):
        methods = real(options)
        fn, pts = methods["jpeg"]

        def wrapped(img, p):
            calls.append(p)
            return fn(img, p)

        methods["jpeg"] = (wrapped, pts)
        return methods

    monkeypatch.setattr(harness, "available_methods", counting)
    curve2 = harness.run_rd(images, "jpeg", out, points=(*points, 3.0))
    assert calls == [3.0, 3.0] and len(curve2) == 5
    assert curve2.bpp[:4] == pytest.approx(curve.bpp)


def test_rd_cli_and_errors(tmp_path, images, capsys):
    out = tmp_path / "rd"
    assert main(["eval", "rd", "--images", str(images), "--method", "webp", "--points", "0.5", "1", "1.5", "2",
                 "--out", str(out), "--jobs", "2", "--quiet"]) == 0
    assert main(["eval", "rd", "--images", str(images), "--method", "jpeg", "--points", "0.6", "1", "1.5", "2.5",
                 "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", "bdrate", str(out / "jpeg.json"), str(out / "webp.json")]) == 0
    assert "BD-rate" in capsys.readouterr().out
    assert main(["eval", "plot", str(out / "jpeg.json"), str(out / "webp.json"), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert main(["eval", "rd", "--images", str(tmp_path / "nope"), "--method", "jpeg", "--out", str(out)]) == 2
    assert main(["eval", "rd", "--images", str(images), "--method", "bpg", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("splatpix: error:") == 2 and "Traceback" not in err


@pytest.mark.parametrize("jobs", [1, 2])
def test_rd_progress_bar_counts_every_point_and_resumes(tmp_path, images, capsys, jobs):
    """One bar over images x points (on stderr, with the mean PSNR so far); points done by an earlier run start it
    further along; the worker processes feed it (jobs > 1)."""
    out = tmp_path / "rd"
    harness.run_rd(images, "jpeg", out, points=(0.6, 1.0), jobs=jobs)
    capsys.readouterr()
    assert main(["eval", "rd", "--images", str(images), "--method", "jpeg", "--points", "0.6", "1", "1.5", "2.5",
                 "--out", str(out), "--jobs", str(jobs)]) == 0
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "8/8" in final and "mean PSNR" in final, err
    assert "4/8" in err.replace("\r", "\n")  # the 4 points of the first run counted as done


def test_rd_compare_pictures(tmp_path, images, capsys):
    """``eval rd --compare DIR``: per image and point, original | decoded | error | JPEG | WebP at the same bytes."""
    out, cmp = tmp_path / "rd", tmp_path / "cmp"
    assert main(["eval", "rd", "--images", str(images), "--method", "gaussianimage", "--points", "30", "--steps", "10",
                 "--qat-steps", "5", "--out", str(out), "--quiet", "--compare", str(cmp)]) == 0
    pics = sorted((cmp / "gaussianimage").glob("*.png"))
    assert [p.name for p in pics] == ["a_n30.png", "b_n30.png"]
    with Image.open(pics[0]) as im:
        assert im.size[0] == 5 * 96 + 4 * 4
    assert main(["eval", "rd", "--images", str(images), "--method", "jpeg", "--out", str(out), "--quiet",
                 "--compare", str(cmp)]) == 2
    assert capsys.readouterr().err.count("splatpix: error:") == 1
