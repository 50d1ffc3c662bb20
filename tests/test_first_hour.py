"""Output that tells the truth (parts of the first-hour issue): the --bpp search shows its trials, info names a
picture as a picture, help texts without markup, BD-rate caveats as one line, --threads everywhere, warm render
times."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from helpers import one_error_line, ramp_image, run_cli, write_png

from splatpix.cli import build_parser, main

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_encode_bpp_prints_each_trial_and_reports_them(tmp_path, capsys):
    write_png(tmp_path / "in.png", ramp_image(24, 32, 3.0, 4.0))
    code, out, err = run_cli(capsys, "encode", tmp_path / "in.png", "-o", tmp_path / "o.spix", "--bpp", "4",
                             "--steps", "10", "--qat-steps", "3", "--quiet", "--report", tmp_path / "r.json")
    assert code == 0, err
    trials = json.loads((tmp_path / "r.json").read_text())["trials"]
    assert 1 <= len(trials) <= 3 and all({"n_gaussians", "bpp", "psnr", "encode_seconds"} <= set(t) for t in trials)
    assert out.count("trial N = ") == len(trials) and "in all ->" in out


def test_info_on_a_picture_says_so(tmp_path, capsys):
    write_png(tmp_path / "photo.png", ramp_image())
    code, _, err = run_cli(capsys, "info", tmp_path / "photo.png")
    assert code == 2 and one_error_line(err).endswith("photo.png: a PNG image, not a splatpix model or .spix file")
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 64)
    code, _, err = run_cli(capsys, "info", tmp_path / "junk.bin")
    assert code == 2 and one_error_line(err).endswith("junk.bin: not a splatpix model or .spix file")


@pytest.mark.parametrize("command", ["edit", "simulate"])
def test_help_texts_have_no_markup(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert f"splatpix {command}" in text
    assert ":mod:" not in text and ":class:" not in text and "``" not in text


def test_bdrate_caveats_are_one_line_and_eval_rd_warns_of_too_few_points(tmp_path, capsys):
    def curve(name, bpp, psnr):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"name": name, "results": {"bpp": bpp, "psnr-rgb": psnr}}))
        return path

    a = curve("a", [0.1, 0.2, 0.4, 0.8], [25.0, 28.0, 31.0, 34.0])
    b = curve("b", [0.3, 0.5, 0.7, 0.9], [30.0, 32.0, 33.5, 34.5])
    code, out, err = run_cli(capsys, "eval", "bdrate", a, b)
    assert code == 0 and "BD-rate of b vs a" in out
    assert "RuntimeWarning" not in err and all(line.startswith("splatpix: note: ") for line in err.splitlines())
    images = tmp_path / "imgs"
    images.mkdir()
    write_png(images / "x.png", ramp_image(32, 40))
    code, _, err = run_cli(capsys, "eval", "rd", "--images", images, "--method", "jpeg", "--points", "0.5", "1.0",
                           "--out", tmp_path / "rd")
    assert code == 0 and "a BD-rate (eval bdrate) needs at least 4" in err


def test_every_command_takes_threads():
    def leaves(parser, path=()):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, parser
        for a in subs:
            for name, child in a.choices.items():
                yield from leaves(child, (*path, name))

    found = dict(leaves(build_parser()))
    assert len(found) >= 13
    for path, parser in found.items():
        assert any("--threads" in a.option_strings for a in parser._actions), path


def test_render_reports_the_warm_time(tmp_path, capsys, monkeypatch):
    from splatpix.cli import model as cli_model

    calls = []
    real = cli_model._warm

    def warm(fn, window):
        calls.append(window)
        return real(fn, window) + 1.0  # as if compiling had taken a second

    monkeypatch.setattr(cli_model, "_warm", warm)
    code, out, err = run_cli(capsys, "render", GOLDEN / "gaussianimage-rs.safetensors", "-o", tmp_path / "x.png",
                             "--threads", "1")
    assert code == 0, err
    assert calls == [None]
    assert "(warm; the first call compiled or loaded the kernels in" in out
