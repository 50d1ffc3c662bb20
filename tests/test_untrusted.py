"""Untrusted files cannot hurt: the reproducers of the hardening issue, each as a test.

Every case ends in one line on stderr and exit status 2 from the CLI (a :class:`SplatpixError` from the API),
quickly, with no output file: numbers out of range in model metadata, decompression bombs (a tiny file declaring
millions of Gaussians or a huge canvas), parameters that decode to non-finite values, renders with non-finite pixels.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_error_line, rewrite_safetensors_meta, run_cli

import splatpix
from splatpix.cli import main
from splatpix.codec import bitstream as bs
from splatpix.codec.api import decode_bytes, unpack
from splatpix.codec.methods.gaussianimage import pack
from splatpix.codec.methods.sga import SGAQuantized, pack_sga
from splatpix.codec.quantize import QuantizedGaussians
from splatpix.errors import SplatpixError
from splatpix.gainer import load_gainer, read_gainer_metadata, save_gainer

GOLDEN = Path(__file__).resolve().parent / "golden"
_HEAD = struct.Struct("<4sBIIBBIH")


def _reheader(data: bytes, **fields: int) -> bytes:
    """``data`` with header fields replaced (``width``, ``height``, ``n_gaussians``) and the header CRC redone."""
    magic, version, w, h, c, m, n, k = _HEAD.unpack_from(data, 0)
    vals = {"width": w, "height": h, "n_gaussians": n} | fields
    head = _HEAD.pack(magic, version, vals["width"], vals["height"], c, m, vals["n_gaussians"], k)
    return head + struct.pack("<I", zlib.crc32(head)) + data[bs.HEADER_SIZE:]


def _lattice_sga(n_side: int = 4) -> bytes:
    """An ``sga`` file whose every histogram has one symbol: a regular lattice, equal covariances and colours."""
    ys, xs = np.mgrid[0:n_side, 0:n_side]
    grid = np.stack((xs.ravel() * 8, ys.ravel() * 8), 1)
    n = grid.shape[0]
    q = SGAQuantized(size=(n_side * 2, n_side * 2), channels=3, subdiv=4, grid=grid, tier_k=4, thresholds=[],
                     tier_bits=[6], cov_scale=np.full((1, 3), 0.01, np.float32),
                     cov_offset=np.zeros((1, 3), np.float32), cov_symbols=np.full((n, 3), 20),
                     colour_indices=np.zeros((n, 1), dtype=np.int64), codebooks=np.full((1, 1, 3), 0.6, np.float32))
    return pack_sga(q)


def _gi(n: int = 4, codebooks: np.ndarray | None = None, positions: np.ndarray | None = None) -> bytes:
    rng = np.random.default_rng(0)
    pos = positions if positions is not None else rng.integers(0, 15000, (n, 2)).astype(np.uint16)
    q = QuantizedGaussians(size=(8, 8), channels=3, position_symbols=pos, cov_symbols=rng.integers(0, 64, (n, 3)),
                           cov_scale=np.full(3, 0.05, np.float32), cov_offset=np.full(3, 0.5, np.float32),
                           colour_indices=np.zeros((n, 2), dtype=np.int64),
                           codebooks=codebooks if codebooks is not None else np.full((2, 8, 3), 0.1, np.float32),
                           cov_bits=6)
    return pack(q)


# ------------------------------------------------------------------------------ numbers in model metadata


@pytest.mark.parametrize("field,value", [("radius_scale", 10 ** 400), ("radius", 10 ** 400), ("radius_scale", 2 ** 64),
                                         ("radius", 1e300), ("k", 10 ** 30)])
def test_huge_numbers_in_gainer_metadata_are_one_line_errors(tmp_path, capsys, field, value):
    data = rewrite_safetensors_meta((GOLDEN / "gainer.safetensors").read_bytes(),
                                    lambda header, meta: meta["config"].__setitem__(field, value))
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    for fn in (load_gainer, read_gainer_metadata):
        with pytest.raises(SplatpixError, match=field):
            fn(path)
    for cmd in (["info", path], ["render", path, "-o", tmp_path / "x.png"]):
        code, _, err = run_cli(capsys, *cmd)
        assert code == 2 and field in one_error_line(err)
    assert not (tmp_path / "x.png").exists()


def test_an_unexpected_exception_is_one_line_and_asks_for_a_report(tmp_path, capsys, monkeypatch):
    from splatpix.cli import model as cli_model

    def boom(*a, **k):
        raise ZeroDivisionError("unexpected")

    monkeypatch.setattr(cli_model, "render_to", boom)
    code, _, err = run_cli(capsys, "render", GOLDEN / "gaussianimage-rs.safetensors", "-o", tmp_path / "x.png")
    line = err.strip()
    assert code == 1 and "\n" not in line and "Traceback" not in err
    assert line.startswith("splatpix: internal error: ZeroDivisionError: unexpected") and "report" in line


# ------------------------------------------------------------------------------ decompression bombs


def test_a_tiny_file_declaring_fifty_million_gaussians_is_refused_before_decoding(tmp_path, capsys):
    bomb = _reheader(_lattice_sga(), width=10_000, height=10_000, n_gaussians=50_000_000)
    assert len(bomb) < 250
    t0 = time.perf_counter()
    with pytest.raises(SplatpixError, match="needs about .* over the memory budget"):
        unpack(bomb, source="bomb.spix")
    assert time.perf_counter() - t0 < 1.0
    path = tmp_path / "bomb.spix"
    path.write_bytes(bomb)
    code, _, err = run_cli(capsys, "decode", path, "-o", tmp_path / "x.png")
    assert code == 2 and "--max-memory" in one_error_line(err) and not (tmp_path / "x.png").exists()
    code, _, err = run_cli(capsys, "info", path)
    assert code == 2 and "memory budget" in one_error_line(err)


def test_the_memory_budget_and_gaussian_limit_are_the_callers(tmp_path, capsys):
    bomb = _reheader(_lattice_sga(), width=3000, height=3000, n_gaussians=5_000_000)
    with pytest.raises(SplatpixError, match="memory budget of 64.0 MiB"):
        unpack(bomb, max_memory=64 << 20)
    with pytest.raises(SplatpixError, match="too many Gaussians"):
        unpack(bomb, max_gaussians=1_000_000)
    path = tmp_path / "b.spix"
    path.write_bytes(bomb)
    with pytest.raises(SplatpixError, match="memory budget"):
        splatpix.decode(path, max_memory=64 << 20)
    for opts in (["--max-memory", "64M"], ["--max-gaussians", "1000000"]):
        code, _, err = run_cli(capsys, "decode", path, "-o", tmp_path / "x.png", *opts)
        assert code == 2 and one_error_line(err)


def test_a_huge_canvas_is_rendered_in_bands_within_the_budget(tmp_path, capsys):
    """One Gaussian on a canvas far larger than the memory budget: the PNG is rendered and written band by band
    and equals the whole-frame render (to one 8-bit level, the rounding of the bands' windows)."""
    small = _lattice_sga()
    path = tmp_path / "wide.spix"
    path.write_bytes(small)
    big, full = tmp_path / "banded.png", tmp_path / "full.png"
    assert main(["decode", str(path), "-o", str(big), "--size", "1200x900", "--max-memory", "2M"]) == 0
    assert main(["decode", str(path), "-o", str(full), "--size", "1200x900"]) == 0
    a, b = splatpix.load_image(big), splatpix.load_image(full)
    assert a.shape == (3, 900, 1200) and (a - b).abs().max() <= 1 / 255 + 1e-6
    code, _, err = run_cli(capsys, "decode", path, "-o", tmp_path / "x.jpg", "--size", "1200x900", "--max-memory", "2M")
    assert code == 2 and "bands" in one_error_line(err)


def test_the_work_of_a_render_is_bounded(tmp_path, capsys):
    path = tmp_path / "w.spix"
    path.write_bytes(_lattice_sga())
    code, _, err = run_cli(capsys, "decode", path, "-o", tmp_path / "x.png", "--size", "800x800", "--max-pairs", "1e4")
    assert code == 2 and "--max-pairs" in one_error_line(err) and not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------ non-finite values


@pytest.mark.parametrize("case", ["overflowing codebooks", "fp16 infinity", "fp16 nan"])
def test_parameters_that_decode_to_non_finite_values_are_refused(case):
    if case == "overflowing codebooks":
        data = _gi(codebooks=np.full((2, 8, 3), 3e38, np.float32))  # two stages of FLT_MAX-ish sum to inf
    else:  # a file whose positions are fp16 infinities or NaNs
        header, sections = bs.read_spix(_gi())
        pattern = 0x7C00 if case == "fp16 infinity" else 0x7E00
        sections[bs.POSITIONS] = bytes([0]) + np.full((4, 2), pattern, dtype="<u2").tobytes()
        data = bs.write_spix(header, [(t, p, t == bs.METADATA) for t, p in sections.items()])
    with pytest.raises(SplatpixError, match="f.spix: corrupt .spix file: .*non-finite"):
        decode_bytes(data, source="f.spix")


def test_a_render_with_non_finite_pixels_is_an_error_and_writes_nothing(tmp_path, capsys):
    field = load_gainer(GOLDEN / "gainer.safetensors")
    with torch.no_grad():
        for i, p in enumerate(field.mlp.parameters()):
            p.mul_(1e30 if i % 2 == 0 else -1e30)  # finite weights whose products overflow to inf - inf = nan
    path = tmp_path / "nan.safetensors"
    save_gainer(field, path)
    assert not bool(torch.isfinite(load_gainer(path).render(8, 8)).all())
    out = tmp_path / "x.png"
    code, _, err = run_cli(capsys, "render", path, "-o", out)
    assert code == 2 and "non-finite pixels" in one_error_line(err) and not out.exists()
    with pytest.raises(SplatpixError, match="non-finite"):
        splatpix.save_image(torch.full((3, 2, 2), float("nan")), tmp_path / "y.png")
    assert not (tmp_path / "y.png").exists()


# ------------------------------------------------------------------------------ messages


def test_option_values_are_one_line_errors(capsys):
    for args in (["render", "m", "-o", "x.png", "--scale", "-1"], ["render", "m", "-o", "x.png", "--size", "ten"],
                 ["render", "m", "-o", "x.png", "--crop", "1,2"], ["render", "m", "-o", "x.png", "--bits", "12"],
                 ["decode", "a.spix", "-o", "x.png", "--max-memory", "lots"]):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith("splatpix: error: argument") and f"(see splatpix {args[0]} --help)" in line


def test_info_names_what_is_wrong_with_its_input(tmp_path, capsys):
    empty = tmp_path / "e.spix"
    empty.write_bytes(b"")
    for path, expected in ((tmp_path / "missing.spix", "no such file"), (tmp_path, "is a directory"),
                           (empty, "empty file")):
        code, _, err = run_cli(capsys, "info", path)
        line = one_error_line(err)
        assert code == 2 and expected in line and str(path) in line and "Errno" not in line


def test_coder_errors_name_the_file():
    data = bytearray(_gi(n=40))
    header, sections = bs.read_spix(bytes(data))
    cov = bytearray(sections[bs.COVARIANCE])
    # the first covariance chunk: u32 length, mode byte, payload; break its payload and re-frame the file
    cov[5:9] = b"\xff\xff\xff\xff"
    forged = bs.write_spix(header, [(t, bytes(cov) if t == bs.COVARIANCE else p, t == bs.METADATA)
                                    for t, p in sections.items()])
    with pytest.raises(SplatpixError) as e:
        unpack(forged, source="named.spix")
    assert str(e.value).startswith("named.spix: ")


def test_sigterm_removes_the_temporary_output(tmp_path):
    src = tmp_path / "a.spix"
    src.write_bytes(_lattice_sga())
    out = tmp_path / "out.png"
    proc = subprocess.Popen([sys.executable, "-m", "splatpix.cli", "decode", str(src), "-o", str(out),
                             "--size", "8000x8000", "--max-memory", "1M"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    def partial() -> bool:  # the temporary PNG exists and holds some bands already
        return any(p.name.endswith(".tmp") and p.stat().st_size > 0 for p in tmp_path.iterdir())

    while time.monotonic() < deadline and not partial():
        time.sleep(0.02)
        if proc.poll() is not None:
            break
    assert proc.poll() is None, "the decode ended before its temporary file was seen"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "terminated" in err, (proc.returncode, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.spix"]


def test_metadata_json_is_validated(tmp_path):
    data = rewrite_safetensors_meta((GOLDEN / "gainer.safetensors").read_bytes(),
                                    lambda header, meta: meta.__setitem__("height", 10 ** 400))
    path = tmp_path / "h.safetensors"
    path.write_bytes(data)
    with pytest.raises(SplatpixError):
        load_gainer(path)
    json.dumps(read_gainer_metadata(GOLDEN / "gainer.safetensors"))  # the valid file still reads


# ------------------------------------------------------------------------------ found by fuzz/run.py


def test_a_safetensors_dtype_of_the_wrong_type_is_a_clean_error(tmp_path):
    def change(header, meta):
        header["means"]["dtype"] = ["F32"]

    path = tmp_path / "d.safetensors"
    path.write_bytes(rewrite_safetensors_meta((GOLDEN / "gaussianimage-rs.safetensors").read_bytes(), change))
    with pytest.raises(SplatpixError, match="dtype"):
        splatpix.load_model(path)


@pytest.mark.parametrize("spec", [{"edits": [{"op": {"str": 0.3}}]}, {"edits": [{"op": ["bend"]}]},
                                  {"edits": [{"op": "bend", "params": {"angle": 10}, "easing": ["linear"]}]}])
def test_edit_spec_names_of_the_wrong_type_are_clean_errors(spec):
    from splatpix.edit.spec import parse_spec

    with pytest.raises(SplatpixError, match=r"spec\.edits\[0\]\.(op|easing)"):
        parse_spec(spec, timing=False)


@pytest.mark.parametrize("scene", [{"materials": [{"preset": ["jelly"], "region": "all"}]},
                                   {"materials": [{"preset": "jelly", "region": "all"}],
                                    "simulation": {"boundary": {"slip": 1}}}])
def test_scene_names_of_the_wrong_type_are_clean_errors(scene):
    from splatpix.physics.scene import parse_scene

    with pytest.raises(SplatpixError, match="scene"):
        parse_scene(scene)


def test_the_work_of_a_gainer_render_is_bounded(tmp_path, capsys):
    field = load_gainer(GOLDEN / "gainer.safetensors")
    with torch.no_grad():
        field.cov_params[:, 0] += 5.0  # every Gaussian e^5 times wider: each one's radius covers the whole image
        field.cov_params[:, 2] += 5.0
    path = tmp_path / "wide.safetensors"
    save_gainer(field, path)
    code, _, err = run_cli(capsys, "render", path, "-o", tmp_path / "x.png", "--size", "400x300", "--max-pairs", "1e6")
    assert code == 2 and "--max-pairs" in one_error_line(err) and not (tmp_path / "x.png").exists()
    assert run_cli(capsys, "render", path, "-o", tmp_path / "y.png", "--size", "40x30")[0] == 0


@pytest.mark.parametrize("change", [lambda m: m.__setitem__("seconds", 10 ** 400),
                                    lambda m: m.__setitem__("rng_state", ""),
                                    lambda m: m.__setitem__("height", 10 ** 30),
                                    lambda m: m.__setitem__("history", [{"step": [1]}]),
                                    lambda m: m.__setitem__("history", [{"step": None}]),
                                    lambda m: m.__setitem__("history", [{"psnr": "x"}])])
def test_hostile_checkpoint_metadata_is_a_clean_error(tmp_path, change):
    from splatpix.gainer.checkpoint import load_checkpoint

    seed = Path(__file__).resolve().parents[1] / "fuzz" / "corpus" / "checkpoint" / "tiny.ckpt"
    load_checkpoint(seed)  # the seed itself is valid
    path = tmp_path / "bad.ckpt"
    path.write_bytes(rewrite_safetensors_meta(seed.read_bytes(), lambda header, meta: change(meta)))
    with pytest.raises(SplatpixError):
        load_checkpoint(path)


def test_many_identical_sga_points_decode_in_n_log_n():
    """Found by the JavaScript decoder's tests: an sga file of many copies of one point (a few hundred bytes: every
    histogram has one symbol) made the k-d tree fallback of the tier assignment quadratic (40 000 copies: 4.7 s; two
    million, within the default budget: more than 16 minutes). The tree now holds the distinct points with their
    multiplicities; the tiers are those of the definition (copies are neighbours at distance 0)."""
    from splatpix.codec.decoding import decode_bytes_arrays
    from splatpix.codec.tiers import assign_tiers

    n = 100_000
    grid = np.zeros((n, 2), dtype=np.int64)
    grid[-3:] = [[40, 40], [44, 40], [60, 20]]  # three loners: their 4th other point is a copy of (0, 0)
    q = SGAQuantized(size=(16, 16), channels=3, subdiv=4, grid=grid, tier_k=4, thresholds=[0, 500, 3000],
                     tier_bits=[6, 6, 6, 6], cov_scale=np.full((4, 3), 0.01, np.float32),
                     cov_offset=np.zeros((4, 3), np.float32), cov_symbols=np.full((n, 3), 20),
                     colour_indices=np.zeros((n, 1), dtype=np.int64), codebooks=np.full((1, 1, 3), 0.6, np.float32))
    data = pack_sga(q)
    assert len(data) < 1000
    tiers = assign_tiers(grid, [0, 500, 3000], 4)
    assert np.bincount(tiers).tolist() == [n - 3, 0, 0, 3]  # spacings 0 for the copies, 3200+ for the loners
    assert decode_bytes_arrays(data).n == n
