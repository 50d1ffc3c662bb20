"""Tests for the codec's quantisers (fp16 positions, learned uniform quantiser, residual VQ) and QAT."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import torch
from helpers import nan_after, nan_param_on_step, wave_image

from splatpix.codec.methods.gaussianimage_qat import GaussianImageState
from splatpix.codec.qat import QATConfig, QATResult, quantization_aware_finetune
from splatpix.codec.quantize import (
    LearnedUniformQuantizer,
    QuantizedGaussians,
    ResidualVQ,
    dequantize_positions,
    fp16_ste,
    kmeans,
    quantize_positions,
)
from splatpix.errors import SplatpixError
from splatpix.metrics import psnr
from splatpix.model.gaussians import Gaussians
from splatpix.render import render
from splatpix.train.loop import FitConfig, fit
from splatpix.train.optim import Adan

qat_mod = importlib.import_module("splatpix.codec.qat")

# ------------------------------------------------------------------------------------------------ positions


def test_fp16_position_round_trip() -> None:
    gen = torch.Generator().manual_seed(0)
    means = torch.rand(500, 2, generator=gen)
    means[0] = torch.tensor([0.0, 1.0])
    means[1] = torch.tensor([1e-7, 0.9999])  # subnormal in fp16, and a value that rounds to 1
    sym, deq = quantize_positions(means)
    assert sym.dtype == np.uint16 and sym.shape == (500, 2)
    assert deq.dtype == torch.float32 and deq.shape == (500, 2)
    # the symbols are the fp16 bit patterns, and decode to what torch's fp16 rounding gives
    assert torch.equal(deq, means.half().float())
    assert torch.equal(dequantize_positions(sym), deq)
    assert np.array_equal(sym.view(np.float16).astype(np.float32), deq.numpy())
    # precision in [0, 1]: error <= half the fp16 spacing (2^-11 in [0.5, 1))
    assert float((deq - means).abs().max()) <= 2.0**-12
    assert torch.equal(deq[0], torch.tensor([0.0, 1.0]))
    with pytest.raises(SplatpixError, match="non-finite"):
        quantize_positions(torch.tensor([[0.5, float("nan")]]))
    with pytest.raises(SplatpixError, match="overflow"):
        quantize_positions(torch.tensor([[0.5, 1e6]]))


def test_fp16_ste_value_and_gradient() -> None:
    x = torch.tensor([0.1234567, 0.7654321, 0.5], requires_grad=True)
    y = fp16_ste(x)
    assert torch.equal(y.detach(), x.detach().half().float())
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.0, 2.0, 3.0]))


# ------------------------------------------------------------------------------------- uniform quantiser


def _cov_like(n: int = 400, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack((0.5 + 3.0 * torch.rand(n, generator=gen), torch.randn(n, generator=gen),
                        0.3 + 2.0 * torch.rand(n, generator=gen)), dim=1)


def test_uniform_quantizer_round_trip() -> None:
    x = _cov_like()
    q = LearnedUniformQuantizer(3, 6).init_from(x)
    sym = q.encode(x)
    assert sym.shape == (400, 3) and np.issubdtype(sym.dtype, np.integer)
    assert sym.min() >= 0 and sym.max() < 64
    assert sym.min(axis=0).tolist() == [0, 0, 0] and sym.max(axis=0).tolist() == [63, 63, 63]  # min/max init
    xh = q.decode(sym)
    scale = q.scale.detach()
    assert bool(((xh - x).abs() <= scale / 2 * (1 + 1e-5) + 1e-7).all())
    # the training forward gives exactly the decoded value
    assert torch.equal(q(x).detach(), xh)
    # side info: float32 values of scale and offset
    p = q.params()
    assert set(p) == {"scale", "offset"} and len(p["scale"]) == 3 and len(p["offset"]) == 3
    assert np.array_equal(np.asarray(p["scale"], dtype=np.float32), scale.numpy())
    assert np.array_equal(np.asarray(p["offset"], dtype=np.float32), q.offset.detach().numpy())
    # out-of-range values clamp to the end symbols
    far = torch.tensor([[-100.0, -100.0, -100.0], [100.0, 100.0, 100.0]])
    assert q.encode(far).tolist() == [[0, 0, 0], [63, 63, 63]]


def test_uniform_quantizer_other_bits_and_constant_channel() -> None:
    x = _cov_like(100)
    x[:, 1] = 0.25  # a constant channel must not give a zero step
    q = LearnedUniformQuantizer(3, 3).init_from(x)
    sym = q.encode(x)
    assert sym.max() < 8 and bool(torch.isfinite(q.scale).all()) and float(q.scale.detach().min()) > 0
    assert torch.allclose(q.decode(sym)[:, 1], torch.full((100,), 0.25))
    with pytest.raises(SplatpixError):
        LearnedUniformQuantizer(3, 0)
    with pytest.raises(SplatpixError):
        q.encode(torch.zeros(5, 2))


def test_uniform_quantizer_ste_gradients() -> None:
    x0 = _cov_like(200)
    q = LearnedUniformQuantizer(3, 6).init_from(x0)
    x = x0.clone()
    x[:5] += 50.0  # beyond the range: clamped
    x.requires_grad_(True)
    w = torch.randn(200, 3, generator=torch.Generator().manual_seed(1))
    (q(x) * w).sum().backward()
    # straight-through inside the range, zero where clamped
    assert torch.allclose(x.grad[5:], w[5:], rtol=1e-5, atol=1e-6)
    assert torch.equal(x.grad[:5], torch.zeros(5, 3))
    # LSQ-style gradients reach the quantiser's parameters
    assert q.log_scale.grad is not None and bool((q.log_scale.grad != 0).all())
    assert q.offset.grad is not None and bool((q.offset.grad != 0).all())
    # offset gradient: 0 inside the range, 1 (times the weight) where clamped
    assert torch.allclose(q.offset.grad, w[:5].sum(dim=0))


# --------------------------------------------------------------------------------------------- residual VQ


def _colours(n: int = 600, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(12, 3, generator=gen) * 1.4 - 0.2
    return centres[torch.randint(12, (n,), generator=gen)] + 0.05 * torch.randn(n, 3, generator=gen)


def test_rvq_two_stages_beat_one_and_indices_in_range() -> None:
    x = _colours()
    errs = []
    for stages in (1, 2):
        vq = ResidualVQ(3, stages, 8).init_from(x, seed=0)
        idx = vq.encode(x)
        assert idx.shape == (600, stages) and np.issubdtype(idx.dtype, np.integer)
        assert idx.min() >= 0 and idx.max() < 8
        assert vq.codebooks.shape == (stages, 8, 3)
        xh = vq.decode(idx)
        assert torch.equal(vq(x).detach(), xh)  # forward value is exactly the decoded value
        errs.append(float(((xh - x) ** 2).mean()))
    assert errs[1] < 0.6 * errs[0]


def test_kmeans_deterministic_and_better_than_seeding() -> None:
    x = _colours(seed=2)
    a = ResidualVQ(3, 2, 8).init_from(x, seed=5).codebooks.detach()
    b = ResidualVQ(3, 2, 8).init_from(x, seed=5).codebooks.detach()
    assert torch.equal(a, b)
    c = ResidualVQ(3, 2, 8).init_from(x, seed=6).codebooks.detach()
    assert not torch.equal(a, c)

    def err(cb: torch.Tensor) -> float:
        return float(((x[:, None] - cb[None]) ** 2).sum(2).min(1).values.mean())

    assert err(kmeans(x, 8, iters=10, seed=0)) < err(kmeans(x, 8, iters=0, seed=0))
    # fewer points than codewords: duplicates, no failure
    few = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    cb = kmeans(few, 8, seed=0)
    assert cb.shape == (8, 3) and bool(torch.isfinite(cb).all())
    vq = ResidualVQ(3, 2, 8).init_from(few)
    assert torch.allclose(vq.decode(vq.encode(few)), few)


def test_rvq_ste_gradients_and_losses() -> None:
    x = _colours(200).requires_grad_(True)
    vq = ResidualVQ(3, 2, 8, commitment=1.0, codebook_weight=1.0).init_from(x)
    w = torch.randn(200, 3, generator=torch.Generator().manual_seed(3))
    (vq(x) * w).sum().backward()
    assert torch.equal(x.grad, w)  # straight-through to the input
    g = vq.codebooks.grad
    assert g is not None and float(g.abs().sum()) > 0  # the lookup passes gradient to the codewords
    # codeword gradient = sum of the weights of the Gaussians using it
    idx = torch.from_numpy(vq.encode(x))
    expect = torch.zeros(8, 3).index_add_(0, idx[:, 0], w)
    assert torch.allclose(g[0], expect, atol=1e-5)

    x.grad = None
    vq.codebooks.grad = None
    loss = vq.loss(x)
    assert float(loss.detach()) > 0
    loss.backward()
    assert float(x.grad.abs().sum()) > 0 and float(vq.codebooks.grad.abs().sum()) > 0
    vq0 = ResidualVQ(3, 2, 8, commitment=1.0, codebook_weight=0.0).init_from(x)
    vq0.loss(x).backward()
    assert vq0.codebooks.grad is None or float(vq0.codebooks.grad.abs().sum()) == 0


# ------------------------------------------------------------------------------------ QuantizedGaussians


def _qg(**kw) -> QuantizedGaussians:
    n = 4
    base = dict(
        size=(8, 10), channels=3,
        position_symbols=np.full((n, 2), np.float16(0.5).view(np.uint16), dtype=np.uint16),
        cov_symbols=np.arange(12).reshape(n, 3), cov_scale=np.full(3, 0.1, np.float32),
        cov_offset=np.array([0.5, -1.0, 0.5], np.float32), colour_indices=np.zeros((n, 2), np.int64),
        codebooks=np.zeros((2, 8, 3), np.float32),
    )
    base.update(kw)
    return QuantizedGaussians(**base)


def test_quantized_gaussians_validation() -> None:
    q = _qg()
    assert q.n == 4 and q.stages == 2 and q.codebook_size == 8
    g = q.dequantize()
    assert g.param == "cholesky" and g.size == (8, 10) and g.means.dtype == torch.float32
    assert torch.allclose(g.cov_params[1], torch.tensor([0.8, -0.6, 1.0]))
    bad = [
        dict(cov_symbols=np.full((4, 3), 64)),
        dict(cov_symbols=np.full((4, 3), -1)),
        dict(cov_symbols=np.zeros((3, 3), np.int64)),
        dict(colour_indices=np.full((4, 2), 8)),
        dict(colour_indices=np.zeros((4, 3), np.int64)),
        dict(position_symbols=np.full((4, 2), np.float16("inf").view(np.uint16), dtype=np.uint16)),
        dict(position_symbols=np.zeros((4, 2), np.int32)),
        dict(cov_scale=np.array([0.1, 0.0, 0.1], np.float32)),
        dict(cov_offset=np.array([0.1, np.nan, 0.1], np.float32)),
        dict(codebooks=np.full((2, 8, 3), np.inf, np.float32)),
        dict(codebooks=np.zeros((2, 8, 4), np.float32)),
        dict(size=(0, 10)),
        dict(cov_bits=0),
    ]
    for kw in bad:
        with pytest.raises(SplatpixError, match="invalid quantised model"):
            _qg(**kw)


# -------------------------------------------------------------------------------------------------- QAT


@pytest.fixture(scope="module")
def fitted() -> tuple[Gaussians, torch.Tensor]:
    img = wave_image(48, 64, disc=True)
    res = fit(img, FitConfig(n_gaussians=150, steps=600, lr=1e-2, log_every=600), progress=False)
    return res.gaussians, img


def _same_quantized(a: QuantizedGaussians, b: QuantizedGaussians) -> bool:
    names = ("position_symbols", "cov_symbols", "cov_scale", "cov_offset", "colour_indices", "codebooks")
    return a.size == b.size and all(np.array_equal(getattr(a, k), getattr(b, k)) for k in names)


def test_qat_beats_naive_ptq(fitted: tuple[Gaussians, torch.Tensor]) -> None:
    g, img = fitted
    ptq = quantization_aware_finetune(g, img, QATConfig(steps=0), progress=False)
    res = quantization_aware_finetune(g, img, QATConfig(steps=300, log_every=100), progress=False)
    assert isinstance(res, QATResult) and not res.diverged and res.steps == 300
    # measured (48x64, N=150 fitted 600 steps, 300 QAT steps): 28.68 dB unquantised, 22.71 dB naive PTQ,
    # 27.12 dB after QAT (the fit is not converged, so QAT also keeps fitting: 29.6 dB after 1000 steps)
    assert res.psnr_before == pytest.approx(ptq.psnr_before)
    assert ptq.psnr == pytest.approx(ptq.psnr_ptq) and res.psnr_ptq == pytest.approx(ptq.psnr)
    assert res.psnr_before > ptq.psnr + 2.0  # quantisation costs something
    assert res.psnr >= ptq.psnr + 2.0
    assert [h["step"] for h in res.history] == [0, 100, 200, 300]
    assert res.history[0]["psnr"] == pytest.approx(ptq.psnr)
    q = res.quantized
    assert q.n == 150 and q.channels == 3 and q.size == (48, 64) and q.cov_bits == 6
    assert q.position_symbols.dtype == np.uint16 and q.codebooks.shape == (2, 8, 3)
    assert q.colour_indices.shape == (150, 2) and q.cov_symbols.max() < 64
    deq = q.dequantize()
    assert float(deq.means.min()) >= 0 and float(deq.means.max()) <= 1
    assert psnr(render(deq, clamp=True), img) == res.psnr
    rep = json.loads(json.dumps(res.report(), allow_nan=False))
    assert rep["n_gaussians"] == 150 and rep["psnr"] == res.psnr and rep["config"]["cov_bits"] == 6


def test_dequantize_is_bit_exact_with_trained_model(fitted: tuple[Gaussians, torch.Tensor]) -> None:
    g, img = fitted
    cfg = QATConfig(steps=5, lr=1e-2)
    state = GaussianImageState(g, cfg, torch.device("cpu"))
    opt = Adan(list(state.tensors().values()), lr=cfg.lr)
    for _ in range(5):
        loss = qat_mod.clamped_mse(render(state.fake_quantized()), img) + state.vq.loss(state.colours)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        trained = state.fake_quantized()
    q = state.encode()
    # what the file stores (the fields, through raw bytes) decodes to exactly the model training evaluated
    copy = QuantizedGaussians(
        size=q.size, channels=q.channels,
        position_symbols=np.frombuffer(q.position_symbols.tobytes(), np.uint16).reshape(-1, 2),
        cov_symbols=q.cov_symbols.astype(np.uint8), cov_scale=np.frombuffer(q.cov_scale.tobytes(), np.float32),
        cov_offset=np.frombuffer(q.cov_offset.tobytes(), np.float32), colour_indices=q.colour_indices.astype(np.uint8),
        codebooks=np.frombuffer(q.codebooks.tobytes(), np.float32).reshape(q.codebooks.shape),
    )
    deq = copy.dequantize()
    for a, b in ((trained.means, deq.means), (trained.cov_params, deq.cov_params), (trained.colours, deq.colours)):
        assert torch.equal(a, b)
    assert torch.equal(render(trained), render(deq))


def test_qat_grayscale_and_nearest_in_blocks(monkeypatch) -> None:
    img = wave_image(24, 32, disc=True)[:1]
    g = fit(img, FitConfig(n_gaussians=40, steps=30, lr=1e-2, log_every=30), progress=False).gaussians
    res = quantization_aware_finetune(g, img, QATConfig(steps=3, log_every=1), progress=False)
    assert res.quantized.codebooks.shape == (2, 8, 1) and res.quantized.channels == 1
    assert psnr(render(res.quantized.dequantize(), clamp=True), img) == res.psnr
    # nearest-codeword search in small blocks gives the same indices
    x = _colours(300)
    vq = ResidualVQ(3, 2, 8).init_from(x)
    whole = vq.encode(x)
    monkeypatch.setattr(importlib.import_module("splatpix.codec.quantize"), "_NEAREST_BLOCK", 7 * 24)
    assert np.array_equal(vq.encode(x), whole)


def test_qat_rejects_rs_and_mismatches(fitted: tuple[Gaussians, torch.Tensor]) -> None:
    g, img = fitted
    rs = Gaussians(g.means, g.cov_params.abs(), g.colours, "rs", g.size)
    with pytest.raises(SplatpixError, match="Cholesky"):
        quantization_aware_finetune(rs, img, QATConfig(steps=1), progress=False)
    with pytest.raises(SplatpixError, match="size"):
        quantization_aware_finetune(g, img[:, :40], QATConfig(steps=1), progress=False)
    with pytest.raises(SplatpixError, match="channels"):
        quantization_aware_finetune(g, img[:1], QATConfig(steps=1), progress=False)


@pytest.mark.parametrize(
    "kw",
    [dict(steps=-1), dict(steps=1.5), dict(lr=0.0), dict(lr=float("nan")), dict(optimizer="sgd"), dict(cov_bits=0),
     dict(cov_bits=17), dict(vq_stages=0), dict(vq_codebook=0),
     dict(vq_codebook=5000), dict(seed=0.5), dict(log_every=0),
     dict(position_bits=8), dict(position_bits=32), dict(vq_commitment=-1.0), dict(vq_codebook_weight=math.inf)],
)
def test_qat_config_validation(kw: dict) -> None:
    with pytest.raises(SplatpixError, match="invalid QAT config"):
        QATConfig(**kw)


def test_qat_nan_loss_restores_last_good(fitted: tuple[Gaussians, torch.Tensor], monkeypatch) -> None:
    g, img = fitted
    cfg = QATConfig(steps=4, lr=1e-2, optimizer="adam")
    ref = quantization_aware_finetune(g, img, cfg, progress=False)
    real_render = qat_mod.render
    # the 6th training render (params after 5 steps) turns to NaN: the last good state is that after 4
    monkeypatch.setattr(qat_mod, "render", nan_after(real_render, 5, grad_only=True, once=True))
    res = quantization_aware_finetune(g, img, QATConfig(steps=20, lr=1e-2, optimizer="adam"), progress=True)
    monkeypatch.setattr(qat_mod, "render", real_render)
    assert res.diverged and "non-finite loss" in res.message and res.steps == 4
    assert _same_quantized(res.quantized, ref.quantized)
    assert res.psnr == ref.psnr


def test_qat_nan_params_restores_last_good(fitted: tuple[Gaussians, torch.Tensor], monkeypatch) -> None:
    g, img = fitted
    ref = quantization_aware_finetune(g, img, QATConfig(steps=3, lr=1e-2), progress=False)
    real_step = Adan.step
    # after the 4th step a NaN in a Cholesky parameter (group 0, tensor 1)
    monkeypatch.setattr(Adan, "step", nan_param_on_step(real_step, 4, group=0, index=1))
    res = quantization_aware_finetune(g, img, QATConfig(steps=20, lr=1e-2), progress=False)
    monkeypatch.setattr(Adan, "step", real_step)
    assert res.diverged and "non-finite parameters" in res.message and res.steps == 3
    assert _same_quantized(res.quantized, ref.quantized)


def test_numpy_decoder_definitions_equal_the_torch_ones_bit_for_bit() -> None:
    """Decoders dequantise with numpy (no torch thread pool before the numba render): the same float32 bits as
    the torch definitions that training uses, on random symbols, steps, offsets and codebooks."""
    from splatpix.codec.grid import _grid_values
    from splatpix.codec.positions import grid_levels
    from splatpix.codec.quantize import _dequant_uniform, _rvq_lookup
    from splatpix.codec.quantized import _dequant_uniform_np, _rvq_lookup_np

    rng = np.random.default_rng(3)
    sym = rng.integers(0, 1 << 7, size=(5000, 3))
    scale = rng.uniform(1e-3, 2.0, size=(4, 3)).astype(np.float32)
    offset = rng.normal(0, 3, size=(4, 3)).astype(np.float32)
    tiers = rng.integers(0, 4, size=5000)
    ref = _dequant_uniform(torch.from_numpy(sym).float(), torch.from_numpy(scale)[torch.from_numpy(tiers)],
                           torch.from_numpy(offset)[torch.from_numpy(tiers)])
    assert np.array_equal(_dequant_uniform_np(sym, scale[tiers], offset[tiers]), ref.numpy())
    books = rng.normal(0, 1, size=(3, 8, 3)).astype(np.float32)
    idx = rng.integers(0, 8, size=(5000, 3))
    got = _rvq_lookup_np(books, idx)
    assert got.dtype == np.float32 and np.array_equal(got, _rvq_lookup(torch.from_numpy(books),
                                                                        torch.from_numpy(idx)).numpy())
    lx, ly = grid_levels((37, 53), 4)
    q = np.stack((rng.integers(0, lx, 5000), rng.integers(0, ly, 5000)), 1)
    steps = np.array([lx - 1, ly - 1], dtype=np.float64)
    assert np.array_equal((q / steps).astype(np.float32),
                          _grid_values(torch.from_numpy(q), torch.from_numpy(steps)).numpy())


def test_compiled_dequantisers_equal_the_numpy_definitions_bit_for_bit() -> None:
    """The compiled decoder forms (dequant_uniform_rows, rvq_lookup) give the numpy definitions' float32 bits (and
    so the torch ones, above), over random shapes, bit depths, quantisers, stages and codebook sizes."""
    from splatpix.codec.quantized import _dequant_uniform_np, _rvq_lookup_np, dequant_uniform_rows, rvq_lookup

    rng = np.random.default_rng(4)
    for _ in range(20):
        n = int(rng.integers(0, 3000))
        t, c = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        sym = rng.integers(0, 1 << int(rng.integers(1, 17)), size=(n, c))
        scale = rng.uniform(1e-4, 3.0, size=(t, c)).astype(np.float32)
        offset = rng.normal(0, 3, size=(t, c)).astype(np.float32)
        rows = rng.integers(0, t, size=n)
        got = dequant_uniform_rows(sym, rows, scale, offset)
        assert got.dtype == np.float32 and got.shape == (n, c)
        assert np.array_equal(got, _dequant_uniform_np(sym, scale[rows], offset[rows]))
        stages, k = int(rng.integers(1, 4)), int(rng.integers(1, 65))
        books = rng.normal(0, 1, size=(stages, k, c)).astype(np.float32)
        idx = rng.integers(0, k, size=(n, stages))
        got = rvq_lookup(books, idx)
        assert got.dtype == np.float32 and got.shape == (n, c) and np.array_equal(got, _rvq_lookup_np(books, idx))


def test_compiled_dequantisers_reject_out_of_range_indices() -> None:
    """The compiled gathers check their indices (numba does not): a bad row or codeword index raises."""
    from splatpix.codec.quantize import dequant_uniform_rows, rvq_lookup

    scale = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(ValueError):
        dequant_uniform_rows(np.zeros((4, 3), dtype=np.int64), np.array([0, 1, 2, 0]), scale, scale)
    with pytest.raises(ValueError):
        dequant_uniform_rows(np.zeros((4, 3), dtype=np.int64), np.array([0, -1, 1, 0]), scale, scale)
    books = np.zeros((2, 8, 3), dtype=np.float32)
    with pytest.raises(ValueError):
        rvq_lookup(books, np.array([[0, 8]]))
    with pytest.raises(ValueError):
        rvq_lookup(books, np.array([[0, 1, 2]]))
