"""Scalar-quantised colours of method sga (codec/colours.py, codec/colours_qat.py): the transform, the quantiser's
exactness against the decoder, the payload's round trip and refusals, the RD-aware bit depths, and whole encodes
with 1, 3 and 4 channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import check_spix_corruptions, ramp_image

from splatpix.codec import bitstream as bs
from splatpix.codec import symbols
from splatpix.codec.api import decode_bytes, encode, unpack
from splatpix.codec.colours import (
    TRANSFORM_IDENTITY,
    TRANSFORM_YCOCG,
    ScalarColours,
    pack_scalar_colours,
    unpack_scalar_colours,
    ycocg_forward_np,
    ycocg_inverse_np,
)
from splatpix.codec.colours_qat import ScalarColourQuantizer, ptq_colours, ycocg_forward_torch, ycocg_inverse_torch
from splatpix.codec.methods.sga import SGAConfig
from splatpix.codec.qat import QATConfig
from splatpix.errors import SplatpixError
from splatpix.render import render
from splatpix.train.loop import FitConfig

FIT = FitConfig(steps=80, optimizer="adam", lr=1e-2, log_every=40, init="structure", colour_solve_init=True)
QAT = QATConfig(steps=30, optimizer="adam", lr=1e-3, log_every=15)


def _colours(n: int = 500, c: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * 0.4 + 0.3


def test_ycocg_inverse_is_bit_identical_in_torch_and_numpy_and_inverts_the_forward():
    x = _colours(2000) * 3
    ycc = ycocg_forward_torch(x)
    assert np.array_equal(ycocg_inverse_torch(ycc).numpy(), ycocg_inverse_np(ycc.numpy()))
    assert np.allclose(ycocg_forward_np(x.numpy()), ycc.numpy(), atol=1e-6)
    assert torch.allclose(ycocg_inverse_torch(ycc), x, atol=1e-5)


@pytest.mark.parametrize("c", [1, 3, 4])
def test_quantizer_forward_equals_the_decoders_dequantisation(c):
    x = _colours(c=c)
    bits = [7, 6, 5, 8][:c]
    q = ScalarColourQuantizer(bits).init_from(x)
    sc = q.encode(x)
    assert sc.transform == (TRANSFORM_YCOCG if c == 3 else TRANSFORM_IDENTITY) and sc.bits == bits
    fake = q(x)
    assert np.array_equal(fake.detach().numpy(), sc.dequantize())  # bit for bit
    # the error is within half a step per channel in the transformed space
    assert float((fake.detach() - x).abs().max()) < 0.1
    # straight-through gradients reach the colours and every quantiser parameter
    xg = x.clone().requires_grad_(True)
    q(xg).square().sum().backward()
    assert xg.grad is not None and bool(torch.isfinite(xg.grad).all()) and float(xg.grad.abs().sum()) > 0
    assert all(p.grad is not None for p in q.parameters())


def test_ptq_matches_a_fresh_quantizer():
    x = _colours()
    deq, sym = ptq_colours(x, [7, 6, 6])
    q = ScalarColourQuantizer([7, 6, 6]).init_from(x)
    assert torch.equal(deq, q(x)) and np.array_equal(sym, q.encode(x).symbols)


@pytest.mark.parametrize("mode", [symbols.MODE_FIXED, symbols.MODE_ENTROPY])
def test_payload_round_trip(mode):
    x = _colours()
    sc = ScalarColourQuantizer([8, 6, 6]).init_from(x).encode(x)
    back = unpack_scalar_colours(pack_scalar_colours(sc, mode), x.shape[0], 3, "t")
    assert back.bits == sc.bits and back.transform == sc.transform
    assert np.array_equal(back.symbols, sc.symbols) and np.array_equal(back.dequantize(), sc.dequantize())


def test_payload_refusals_are_one_line_errors():
    x = _colours(50)
    data = pack_scalar_colours(ScalarColourQuantizer([6, 6, 6]).init_from(x).encode(x), symbols.MODE_ENTROPY)
    for cut in range(len(data)):
        with pytest.raises(SplatpixError, match="corrupt"):
            unpack_scalar_colours(data[:cut], 50, 3, "t")
    with pytest.raises(SplatpixError, match="trailing|exceeds|corrupt"):
        unpack_scalar_colours(data + b"\0", 50, 3, "t")
    with pytest.raises(SplatpixError, match="channel count"):
        unpack_scalar_colours(data, 50, 4, "t")
    bad = bytearray(data)
    bad[1] = 7  # unknown transform
    with pytest.raises(SplatpixError, match="transform"):
        unpack_scalar_colours(bytes(bad), 50, 3, "t")
    bad = bytearray(data)
    bad[3] = 0  # zero bits
    with pytest.raises(SplatpixError, match="quantiser is invalid"):
        unpack_scalar_colours(bytes(bad), 50, 3, "t")
    bad = bytearray(data)
    bad[4:8] = np.float32(-1).tobytes()  # a negative step
    with pytest.raises(SplatpixError, match="quantiser is invalid"):
        unpack_scalar_colours(bytes(bad), 50, 3, "t")
    with pytest.raises(SplatpixError, match="out of its channel|outside"):
        ScalarColours(TRANSFORM_YCOCG, [2, 2, 2], np.ones(3), np.zeros(3), np.full((4, 3), 4))
    with pytest.raises(SplatpixError, match="does not apply"):
        ScalarColours(TRANSFORM_YCOCG, [2, 2], np.ones(2), np.zeros(2), np.zeros((4, 2)))


@pytest.fixture(scope="module")
def scalar_encode():
    img = ramp_image()
    return img, encode(img, 120, method="sga", fit_config=FIT, qat_config=QAT, progress=False,
                       options={"colour": "scalar"})


def test_scalar_colour_file_round_trip_and_corruptions(scalar_encode):
    img, res = scalar_encode
    q, meta = unpack(res.data)
    assert q.scalar_colours is not None and meta["colour_bits"] == q.scalar_colours.bits == res.report["colour_bits"]
    g = decode_bytes(res.data)
    assert torch.equal(render(g, clamp=True), render(res.quantized.dequantize(), clamp=True))
    assert res.report["psnr"] > 25
    check_spix_corruptions(res.data)


def test_a_file_with_both_colour_codings_is_refused(scalar_encode):
    _, res = scalar_encode
    header, sections = bs.read_spix(res.data)
    vq = encode(ramp_image(), 120, method="sga", fit_config=FIT, qat_config=QAT, progress=False,
                options={"colour": "vq"})
    _, vq_sections = bs.read_spix(vq.data)
    framed = [(t, p, False) for t, p in sections.items() if t != bs.METADATA]
    framed += [(bs.COLOUR_INDICES, vq_sections[bs.COLOUR_INDICES], False),
               (bs.CODEBOOKS, vq_sections[bs.CODEBOOKS], False)]
    with pytest.raises(SplatpixError, match="both scalar colours and colour indices"):
        unpack(bs.write_spix(header, framed))
    no_colour = [(t, p, False) for t, p in sections.items() if t not in (bs.METADATA, bs.COLOUR_SCALAR)]
    with pytest.raises(SplatpixError, match="missing section COLOUR_INDICES"):
        unpack(bs.write_spix(header, no_colour))


def test_scalar_colours_beat_the_vq_at_equal_fit(scalar_encode):
    """The reason for the default: on the same fit, scalar colours keep more of its quality (the RD comparison on
    Kodak is in docs/results.md)."""
    img, res = scalar_encode
    from splatpix.train.loop import fit

    fc = FitConfig(**{**FIT.__dict__, "n_gaussians": 120, "param": "cholesky"})
    fitted = fit(img, fc, progress=False)
    a = encode(img, 120, method="sga", fit_config=fc, qat_config=QAT, progress=False, fitted=fitted,
               options={"colour": "scalar"})
    b = encode(img, 120, method="sga", fit_config=fc, qat_config=QAT, progress=False, fitted=fitted,
               options={"colour": "vq"})
    assert a.report["psnr"] > b.report["psnr"]


@pytest.mark.parametrize("channels", [1, 4])
def test_other_channel_counts_use_no_transform(channels):
    img = ramp_image()
    img = img[:1] if channels == 1 else torch.cat([img, img[:1]], 0)
    res = encode(img, 80, method="sga", fit_config=FIT, qat_config=QAT, progress=False, options={"colour": "scalar"})
    q, _ = unpack(res.data)
    assert q.scalar_colours.transform == TRANSFORM_IDENTITY and len(q.scalar_colours.bits) == channels
    assert torch.equal(render(decode_bytes(res.data), clamp=True), render(res.quantized.dequantize(), clamp=True))


def test_fixed_colour_bits_and_config_checks():
    img = ramp_image()
    res = encode(img, 80, method="sga", fit_config=FIT, qat_config=QAT, progress=False,
                 options={"colour": "scalar", "colour_bits": (5, 4, 4), "tier_bits": (6, 6, 6)})
    assert unpack(res.data)[0].scalar_colours.bits == [5, 4, 4] == res.report["colour_bits"]
    # one fixed, the other chosen: the fixed one is kept as given
    res = encode(img, 80, method="sga", fit_config=FIT, qat_config=QAT, progress=False, options={"colour": "scalar",
                                                                                           "colour_bits": (3, 2, 2)})
    assert res.report["colour_bits"] == [3, 2, 2]
    res = encode(img, 80, method="sga", fit_config=FIT, qat_config=QAT, progress=False, options={"colour": "scalar",
                                                                                           "tier_bits": (2, 2, 2)})
    assert res.report["tier_bits"] == [2, 2, 2] and len(res.report["colour_bits"]) == 3
    with pytest.raises(SplatpixError, match="one bit depth per channel"):
        encode(img, 80, method="sga", fit_config=FIT, qat_config=QAT, progress=False,
               options={"colour": "scalar", "colour_bits": (5, 4)})
    with pytest.raises(SplatpixError, match="colour must be one of"):
        SGAConfig(colour="jpeg")
    with pytest.raises(SplatpixError, match="applies to colour='scalar' or 'auto' only"):
        SGAConfig(colour="vq", colour_bits=(6, 6, 6))
    with pytest.raises(SplatpixError, match="colour_bits must be"):
        SGAConfig(colour_bits=(0, 6, 6))
    with pytest.raises(SplatpixError, match="residual VQ"):
        encode(img, 80, method="sga", fit_config=FIT, qat_config=QATConfig(steps=5, vq_codebook=32), progress=False,
               options={"colour": "scalar"})


def test_auto_keeps_the_cheaper_coding_of_the_two():
    """``colour="auto"`` (the default) fine-tunes and codes both colour codings and keeps the one with the smaller
    SSE + lambda * bits; scalar colours fine-tune shorter and slower (SCALAR_QAT_*)."""
    from splatpix.codec.methods.sga_qat import SCALAR_QAT_LR, SCALAR_QAT_STEPS

    img = ramp_image()
    res = encode(img, 100, method="sga", fit_config=FIT, qat_config=QAT, progress=False)
    alts = res.report["alternatives"]
    assert [a["colour"] for a in alts] == ["scalar", "vq"]
    best = min(alts, key=lambda a: a["cost"])
    assert res.report["colour"] == best["colour"] and res.report["bytes"] == best["bytes"] == len(res.data)
    assert (unpack(res.data)[0].scalar_colours is not None) == (best["colour"] == "scalar")
    if best["colour"] == "scalar":
        assert res.report["qat_config"]["steps"] == round(QAT.steps * SCALAR_QAT_STEPS)
        assert res.report["qat_config"]["lr"] == QAT.lr * SCALAR_QAT_LR
    else:
        assert res.report["qat_config"]["steps"] == QAT.steps
