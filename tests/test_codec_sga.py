"""The structure-guided codec (method sga): round trip, tiers in the file, malformed files, CLI, harness."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from splatpix.cli import main
from splatpix.codec import bitstream as bs
from splatpix.codec.qat import QATConfig
from splatpix.codec.sga import SGAConfig, SGAQuantized, pack_sga
from splatpix.codec.spix import decode_bytes, encode, unpack
from splatpix.errors import SplatpixError
from splatpix.fit import FitConfig
from splatpix.render import render


def _image(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack((x / (w - 1), y / (h - 1), 0.5 + 0.4 * np.sin(x / 4.0) * np.cos(y / 6.0)), 0)
    return torch.from_numpy(rgb.astype(np.float32))


FIT = FitConfig(steps=150, optimizer="adam", lr=1e-2, lr_decay_every=100, log_every=50, init="structure",
                colour_solve_init=True)
QAT = QATConfig(steps=60, optimizer="adam", lr=1e-3, log_every=30)


@pytest.fixture(scope="module")
def encoded():
    img = _image()
    rd = encode(img, 150, method="sga", fit_config=FIT, qat_config=QAT, progress=False)
    fixed = encode(img, 150, method="sga", fit_config=FIT, qat_config=QAT, progress=False,
                   sga_config=SGAConfig(tier_bits=(6, 6, 6)))
    return img, rd, fixed


def test_round_trip_is_exact_and_tiers_are_signalled(encoded):
    img, res, fixed = encoded
    g = decode_bytes(res.data)
    assert torch.equal(render(g, clamp=True), render(res.quantized.dequantize(), clamp=True))
    q, meta = unpack(res.data)
    assert isinstance(q, SGAQuantized) and q.n == 150 and meta["method"] == "sga"
    # the file holds the same set of Gaussians (in the position coder's order)
    a = sorted(map(tuple, np.concatenate([res.quantized.grid, res.quantized.cov_symbols], 1).tolist()))
    b = sorted(map(tuple, np.concatenate([q.grid, q.cov_symbols], 1).tolist()))
    assert a == b
    assert q.tier_bits == res.report["tier_bits"] and len(q.tier_bits) == 3
    assert np.bincount(q.tiers, minlength=3).min() > 20  # tiers of about equal size
    assert fixed.report["tier_bits"] == [6, 6, 6]
    assert res.report["bpp"] == len(res.data) * 8 / (48 * 64)
    assert res.report["psnr"] > 20


def test_sga_positions_cost_less_than_fp16(encoded):
    img, res, _ = encoded
    base = encode(img, 150, fit_config=FitConfig(steps=150, optimizer="adam", lr=1e-2, lr_decay_every=100),
                  qat_config=QAT, progress=False)
    _, s_sga = bs.read_spix(res.data)
    _, s_gi = bs.read_spix(base.data)
    assert len(s_sga[bs.GRID_POSITIONS]) < 0.6 * len(s_gi[bs.POSITIONS])


def test_fixed_length_sga_round_trips(encoded):
    _, res, _ = encoded
    data = pack_sga(res.quantized, fixed_length=True)
    assert torch.equal(render(decode_bytes(data)), render(res.quantized.dequantize()))


def test_malformed_sga_files_raise_clean_errors(encoded):
    _, res, _ = encoded
    data = res.data
    rng = np.random.default_rng(0)
    for cut in sorted(set(rng.integers(0, len(data), 60).tolist()) | {0, 1, 24, 25, len(data) - 1}):
        with pytest.raises(SplatpixError):
            unpack(data[:cut])
    for _ in range(300):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(0, len(buf)))] ^= 1 << int(rng.integers(0, 8))
        try:
            q, _ = unpack(bytes(buf))
        except SplatpixError:
            continue
        assert torch.isfinite(render(q.dequantize())).all()


def test_forged_sections_with_valid_crc_are_refused(encoded):
    """Forged payloads re-framed with correct CRCs: the codec's own checks must reject them."""
    _, res, _ = encoded
    header, sections = bs.read_spix(res.data)

    def forge(section: int, payload: bytes) -> bytes:
        return bs.write_spix(header, [(k, payload if k == section else v, k == bs.METADATA)
                                      for k, v in sections.items()])

    tiers = sections[bs.COV_TIERS]
    for forged in (b"\0" + tiers[1:], tiers[:1] + b"\0" + tiers[2:], tiers[:-1], tiers + b"\0"):
        with pytest.raises(SplatpixError, match="corrupt"):
            unpack(forge(bs.COV_TIERS, forged))
    pos = sections[bs.GRID_POSITIONS]
    for forged in (b"\0" + pos[1:], bytes([65]) + pos[1:], pos[:1]):
        with pytest.raises(SplatpixError, match="corrupt"):
            unpack(forge(bs.GRID_POSITIONS, forged))


def test_sga_config_validation():
    for bad in ({"subdiv": 0}, {"subdiv": 65}, {"n_tiers": 0}, {"tier_bits": (6, 6)}, {"tier_bits": (0, 6, 6)},
                {"tier_k": 0}, {"tier_candidates": ()}):
        with pytest.raises(SplatpixError, match="invalid sga config"):
            SGAConfig(**bad)
    with pytest.raises(SplatpixError, match="unknown method"):
        encode(_image(), 10, method="jpeg", progress=False)


def test_cli_encode_sga_info_decode(tmp_path, capsys):
    arr = (_image().permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "in.png")
    spix, rep = tmp_path / "o.spix", tmp_path / "r.json"
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(spix), "-n", "120", "--steps", "100",
                 "--qat-steps", "40", "--quiet", "--method", "sga", "--tier-bits", "5", "6", "7",
                 "--report", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["bytes"] == os.path.getsize(spix) and report["method"] == "sga"
    assert report["tier_bits"] == [5, 6, 7]
    # encode --method sga defaults to the structure-guided fit (structure init + colour solve) ...
    assert report["fit_config"]["init"] == "structure" and report["fit_config"]["colour_solve_init"] is True
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "p.spix"), "-n", "60", "--steps", "20",
                 "--qat-steps", "5", "--quiet", "--method", "sga", "--init", "random", "--no-colour-solve-init",
                 "--report", str(rep)]) == 0
    # ... which the user can switch off, mechanism by mechanism
    fc = json.loads(rep.read_text())["fit_config"]
    assert fc["init"] == "random" and fc["colour_solve_init"] is False
    capsys.readouterr()
    assert main(["info", str(spix)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "sga" and info["tier_bits"] == [5, 6, 7] and sum(info["tier_counts"]) == 120
    assert main(["decode", str(spix), "-o", str(tmp_path / "d.png"), "--scale", "2"]) == 0
    assert Image.open(tmp_path / "d.png").size == (128, 96)
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.spix"), "-n", "50", "--method", "sga",
                 "--tier-bits", "0", "6", "6", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("splatpix: error:") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.spix").exists()


def test_harness_runs_sga_with_a_label(tmp_path):
    from splatpix.eval import harness
    from splatpix.io import sample_image_path

    d = tmp_path / "imgs"
    d.mkdir()
    Image.open(sample_image_path()).crop((0, 0, 64, 48)).save(d / "a.png")
    curve = harness.run_rd(d, "sga", tmp_path / "rd", points=(60, 120), label="sga-fixed",
                           options={"steps": 60, "qat_steps": 20, "tier_bits": [6, 6, 6]})
    assert len(curve) == 2 and curve.name == "sga-fixed"
    per = json.loads((tmp_path / "rd" / "sga-fixed" / "a.json").read_text())
    assert [r["tier_bits"] for r in per["per_point"].values()] == [[6, 6, 6]] * 2
    with pytest.raises(SplatpixError, match="label"):
        harness.run_rd(d, "sga", tmp_path / "rd", points=(60,), label="../x")
