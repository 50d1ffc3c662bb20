"""Tests for splatpix.model_io: safetensors model files, treated as untrusted input."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from splatpix.errors import SplatpixError
from splatpix.model.files import MODEL_FORMAT, MODEL_FORMAT_VERSION, load_model, read_model_metadata, save_model
from splatpix.model.gaussians import Gaussians


def _model(n: int = 7, c: int = 3, param: str = "cholesky", size: tuple[int, int] = (24, 40)) -> Gaussians:
    g = torch.Generator().manual_seed(n * 10 + c)
    return Gaussians(
        torch.rand(n, 2, generator=g),
        torch.rand(n, 3, generator=g) + 0.5,
        torch.rand(n, c, generator=g),
        param,
        size,
    )


def _meta(**over: object) -> dict:
    m = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "kind": "gaussians",
        "param": "cholesky",
        "height": 24,
        "width": 40,
        "channels": 3,
        "n_gaussians": 2,
    }
    m.update(over)
    return m


def _write_raw(path: Path, tensors: dict[str, torch.Tensor], meta: dict | None) -> Path:
    md = None if meta is None else {"splatpix": json.dumps(meta)}
    path.write_bytes(st_save(tensors, metadata=md))
    return path


def _tensors(n: int = 2, c: int = 3) -> dict[str, torch.Tensor]:
    return {"means": torch.rand(n, 2), "cov_params": torch.rand(n, 3), "colours": torch.rand(n, c)}


@pytest.mark.parametrize("param", ["cholesky", "rs"])
@pytest.mark.parametrize("c", [1, 3, 4])
def test_round_trip(tmp_path: Path, param: str, c: int) -> None:
    g = _model(9, c, param)
    p = tmp_path / "m.splat"
    save_model(g, p, extra={"psnr": 31.5, "steps": [1, 2], "note": "héllo"})
    h = load_model(p)
    assert torch.equal(h.means, g.means) and torch.equal(h.cov_params, g.cov_params)
    assert torch.equal(h.colours, g.colours)
    assert h.param == param and h.size == (24, 40) and h.channels == c and h.means.dtype == torch.float32
    assert h.meta["extra"] == {"psnr": 31.5, "steps": [1, 2], "note": "héllo"}
    assert h.meta["n_gaussians"] == 9 and h.meta["format"] == MODEL_FORMAT
    meta = read_model_metadata(p)
    assert meta == h.meta
    assert os.listdir(tmp_path) == ["m.splat"]


def test_empty_model_and_no_extra(tmp_path: Path) -> None:
    p = tmp_path / "e.splat"
    save_model(_model(0, 3), p)
    h = load_model(p)
    assert h.n == 0 and h.channels == 3 and "extra" not in h.meta


def test_save_refuses_bad_models(tmp_path: Path) -> None:
    g = _model(3)
    g.colours[0, 0] = float("nan")
    with pytest.raises(SplatpixError, match="non-finite"):
        save_model(g, tmp_path / "a.splat")
    with pytest.raises(SplatpixError, match="JSON"):
        save_model(_model(3), tmp_path / "b.splat", extra={"x": object()})
    assert os.listdir(tmp_path) == []


def _check_bad(path: Path, match: str | None = None) -> None:
    with pytest.raises(SplatpixError, match=match) as ei:
        load_model(path)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg


def test_missing_and_garbage(tmp_path: Path) -> None:
    _check_bad(tmp_path / "nope.splat", "no such file")
    with pytest.raises(SplatpixError, match="directory"):
        load_model(tmp_path)
    rnd = tmp_path / "random.splat"
    rnd.write_bytes(os.urandom(4096))
    _check_bad(rnd, "not a splatpix model")
    short = tmp_path / "short.splat"
    short.write_bytes(b"abc")
    _check_bad(short, "too short")


def test_truncated(tmp_path: Path) -> None:
    p = tmp_path / "m.splat"
    save_model(_model(50), p)
    data = p.read_bytes()
    for cut in (len(data) - 1, len(data) - 100, 20, 9):
        t = tmp_path / f"t{cut}.splat"
        t.write_bytes(data[:cut])
        _check_bad(t)
        with pytest.raises(SplatpixError):
            read_model_metadata(t)


def test_huge_header_length(tmp_path: Path) -> None:
    p = tmp_path / "m.splat"
    save_model(_model(5), p)
    data = p.read_bytes()
    for forged in (2**63, 10**12, len(data)):
        bad = tmp_path / "huge.splat"
        bad.write_bytes(struct.pack("<Q", forged) + data[8:])
        _check_bad(bad, "header length")
        with pytest.raises(SplatpixError, match="header length"):
            read_model_metadata(bad)


def test_bit_flips_in_header(tmp_path: Path) -> None:
    p = tmp_path / "m.splat"
    g = _model(4)
    save_model(g, p, extra={"a": 1})
    data = p.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    # The first byte of the JSON header is '{': flipping it must be rejected.
    bad = bytearray(data)
    bad[8] ^= 0x01
    q = tmp_path / "flip.splat"
    q.write_bytes(bytes(bad))
    _check_bad(q, "not a splatpix model")
    # Every single-bit flip anywhere in the header gives a SplatpixError or a valid model, nothing else.
    for i in range(8, 8 + n):
        for bit in (0x01, 0x20, 0x80):
            bad = bytearray(data)
            bad[i] ^= bit
            q.write_bytes(bytes(bad))
            try:
                h = load_model(q)
            except SplatpixError as e:
                assert "\n" not in str(e)
                continue
            assert h.n == 4 and torch.isfinite(h.means).all()


def test_wrong_format_and_version(tmp_path: Path) -> None:
    _check_bad(_write_raw(tmp_path / "a.splat", _tensors(), _meta(format="other")), "format")
    newer = _write_raw(tmp_path / "b.splat", _tensors(), _meta(format_version=MODEL_FORMAT_VERSION + 1))
    _check_bad(newer, "newer")
    with pytest.raises(SplatpixError, match="newer"):
        read_model_metadata(newer)
    _check_bad(_write_raw(tmp_path / "c.splat", _tensors(), None), "no splatpix metadata")
    _check_bad(_write_raw(tmp_path / "d.splat", _tensors(), _meta(param="quat")), "parameterisation")
    _check_bad(_write_raw(tmp_path / "e.splat", _tensors(), _meta(height=0)), "height")
    _check_bad(_write_raw(tmp_path / "f.splat", _tensors(), _meta(width="40")), "width")
    _check_bad(_write_raw(tmp_path / "g.splat", _tensors(c=2), _meta(channels=2)), "channel")
    _check_bad(_write_raw(tmp_path / "h.splat", _tensors(), _meta(format_version=True)), "version")
    _check_bad(_write_raw(tmp_path / "i.splat", _tensors(), _meta(kind="mesh")), "kind")
    raw = tmp_path / "j.splat"
    raw.write_bytes(st_save(_tensors(), metadata={"splatpix": "{not json"}))
    _check_bad(raw, "metadata")


def test_bad_tensors(tmp_path: Path) -> None:
    t = _tensors()
    t["cov_params"][1, 2] = float("nan")
    _check_bad(_write_raw(tmp_path / "nan.splat", t, _meta()), "non-finite")
    t = _tensors()
    t["means"][0, 0] = float("inf")
    _check_bad(_write_raw(tmp_path / "inf.splat", t, _meta()), "non-finite")
    _check_bad(_write_raw(tmp_path / "shape.splat", _tensors(n=3), _meta()), "shape")
    _check_bad(_write_raw(tmp_path / "chan.splat", _tensors(c=4), _meta()), "shape")
    t = _tensors()
    del t["colours"]
    _check_bad(_write_raw(tmp_path / "missing.splat", t, _meta()), "missing tensor")
    t = _tensors()
    t["means"] = torch.zeros(2, 2, dtype=torch.int32)
    _check_bad(_write_raw(tmp_path / "int.splat", t, _meta()), "dtype")
    t = _tensors()
    t["colours"] = t["colours"].half()
    h = load_model(_write_raw(tmp_path / "half.splat", t, _meta()))
    assert h.colours.dtype == torch.float32


def test_limits(tmp_path: Path) -> None:
    p = tmp_path / "m.splat"
    save_model(_model(5), p)
    with pytest.raises(SplatpixError, match="too large"):
        load_model(p, max_bytes=100)
