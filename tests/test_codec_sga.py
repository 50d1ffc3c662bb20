"""The structure-guided codec (method sga): round trip, tiers in the file, malformed files, CLI, harness."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from helpers import check_spix_corruptions, ramp_image, write_png
from PIL import Image

from splatpix.cli import main
from splatpix.codec import bitstream as bs
from splatpix.codec.api import decode_bytes, encode, unpack
from splatpix.codec.methods.sga import SGA_VQ_CODEBOOK, SGAConfig, SGAQuantized, pack_sga
from splatpix.codec.qat import QATConfig
from splatpix.errors import SplatpixError
from splatpix.render import render
from splatpix.train.loop import FitConfig

FIT = FitConfig(steps=150, optimizer="adam", lr=1e-2, lr_decay_every=100, log_every=50, init="structure",
                colour_solve_init=True)
QAT = QATConfig(steps=60, optimizer="adam", lr=1e-3, log_every=30)


@pytest.fixture(scope="module")
def encoded():
    img = ramp_image()
    rd = encode(img, 150, method="sga", fit_config=FIT, qat_config=QAT, progress=False, options={"colour": "scalar"})
    fixed = encode(img, 150, method="sga", fit_config=FIT, qat_config=QAT, progress=False,
                   options=SGAConfig(tier_bits=(6, 6, 6), colour="vq"))
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
    # scalar colours (here), their bit depths chosen per channel and signalled; the residual VQ on request
    assert q.codebooks is None and q.scalar_colours.bits == res.report["colour_bits"]
    assert len(q.scalar_colours.bits) == 3
    sections = bs.read_spix(res.data)[1]
    assert bs.COLOUR_SCALAR in sections and bs.COLOUR_INDICES not in sections and bs.CODEBOOKS not in sections
    qv, _ = unpack(fixed.data)
    assert qv.scalar_colours is None and fixed.report["colour"] == "vq"
    # the colour codebook size follows the method unless given (QATConfig.vq_codebook None)
    assert qv.codebooks.shape == (2, SGA_VQ_CODEBOOK, 3) and fixed.report["vq_codebook"] == SGA_VQ_CODEBOOK == 16


def test_colour_codebook_default_is_per_method():
    from splatpix.codec.methods.gaussianimage import VQ_CODEBOOK as GI_VQ_CODEBOOK
    from splatpix.codec.qat import quantization_aware_finetune
    from splatpix.train.loop import fit

    img = ramp_image()[:, :24, :32]
    fc = FitConfig(steps=20, optimizer="adam", lr=1e-2, n_gaussians=40)
    qc = QATConfig(steps=5, optimizer="adam", lr=1e-3)
    gi = encode(img, 40, fit_config=fc, qat_config=qc, progress=False)
    assert unpack(gi.data)[0].codebooks.shape == (2, GI_VQ_CODEBOOK, 3) == (2, 8, 3)
    fitted = fit(img, fc, progress=False)
    sga8 = encode(img, 40, method="sga", fit_config=fc, qat_config=QATConfig(steps=5, vq_codebook=8), progress=False,
                  fitted=fitted, options={"colour": "vq"})
    assert unpack(sga8.data)[0].codebooks.shape == (2, 8, 3) and sga8.report["vq_codebook"] == 8
    assert sga8.report["psnr_fit"] == fitted.psnr  # the given fit was quantised, not a new one
    alone = quantization_aware_finetune(fitted.gaussians, img, qc, progress=False)
    assert alone.quantized.codebooks.shape == (2, GI_VQ_CODEBOOK, 3)
    with pytest.raises(SplatpixError, match="fitted must be"):
        encode(img, 41, method="sga", fit_config=fc, qat_config=qc, progress=False, fitted=fitted)


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
    check_spix_corruptions(res.data, cuts=(0, 1, 24, 25))


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
        encode(ramp_image(), 10, method="jpeg", progress=False)


def test_cli_encode_sga_info_decode(tmp_path, capsys):
    write_png(tmp_path / "in.png", ramp_image())
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
                           options={"steps": 60, "qat_steps": 20, "tier_bits": [6, 6, 6], "vq_codebook": 16,
                                    "colour": "vq"})
    assert len(curve) == 2 and curve.name == "sga-fixed"
    per = json.loads((tmp_path / "rd" / "sga-fixed" / "a.json").read_text())
    assert [r["tier_bits"] for r in per["per_point"].values()] == [[6, 6, 6]] * 2
    assert [(r["vq_stages"], r["vq_codebook"]) for r in per["per_point"].values()] == [(2, 16)] * 2
    with pytest.raises(SplatpixError, match="label"):
        harness.run_rd(d, "sga", tmp_path / "rd", points=(60,), label="../x")


def test_covariance_context_coding_round_trips_and_saves_bits(encoded):
    """Policy 2 (l21/l22 in contexts of l11's top bits) decodes to the same symbols, is never larger than the plain
    policy, and its context widths are checked on decoding."""
    import copy

    from splatpix.codec.methods.sga import POLICY_CONDITIONAL, unpack_sections

    q = copy.copy(unpack(encoded[1].data)[0])  # in file order; the module's fixture stays untouched
    sizes = {}
    for cb in (0, 1, 2, 4):
        data = pack_sga(q, cov_context_bits=cb)
        sizes[cb] = len(data)
        q2, _ = unpack(data)
        np.testing.assert_array_equal(q2.cov_symbols, q.cov_symbols)
        np.testing.assert_array_equal(q2.colour_indices, q.colour_indices)
    assert sizes[4] <= sizes[2] <= sizes[1] <= sizes[0]
    # synthetic symbols (3000 Gaussians, 3 tiers) where l22 follows l11: context coding must win and be chosen
    from splatpix.codec.methods.sga import _pack_covariance, _unpack_covariance
    from splatpix.codec.symbols import MODE_ENTROPY

    rng = np.random.default_rng(0)
    tiers = rng.integers(0, 3, size=3000)
    bits = [5, 6, 4]
    sym = np.stack([rng.integers(0, 1 << bits[t], size=3) for t in tiers])
    sym[:, 2] = sym[:, 0]
    plain = _pack_covariance(sym, tiers, bits, MODE_ENTROPY, 0)
    cond = _pack_covariance(sym, tiers, bits, MODE_ENTROPY, 4)
    assert cond[0] == POLICY_CONDITIONAL and len(cond) < 0.95 * len(plain)  # l22 costs only its bits below the context
    np.testing.assert_array_equal(_unpack_covariance(memoryview(cond), tiers, bits, "f.spix"), sym)
    for cut in (1, 2, 5, len(cond) // 2, len(cond) - 1):  # truncations: clean errors
        with pytest.raises(SplatpixError):
            _unpack_covariance(memoryview(cond[:cut]), tiers, bits, "f.spix")
    for _ in range(200):  # bit flips: a clean error or some valid decode, never another exception
        bad = bytearray(cond)
        i = int(rng.integers(0, len(bad)))
        bad[i] ^= 1 << int(rng.integers(0, 8))
        try:
            out = _unpack_covariance(memoryview(bytes(bad)), tiers, bits, "f.spix")
        except SplatpixError:
            continue
        assert out.shape == sym.shape and all((out[tiers == t] < 1 << b).all() for t, b in enumerate(bits))
    header, sections = bs.read_spix(pack_sga(q, cov_context_bits=4))
    cov = sections[bs.COVARIANCE]
    # a context width wider than the tier's bits (or than 4) is refused as corrupt
    forged = bytes([POLICY_CONDITIONAL, 9]) + cov[2:]  # (whatever policy the small file used)
    with pytest.raises(SplatpixError, match="context width"):
        unpack_sections(header, {**sections, bs.COVARIANCE: forged}, "f.spix")
