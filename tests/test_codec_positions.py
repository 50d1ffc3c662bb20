"""Grid positions: quantisation, STE, set coding round trips, size vs the information bound, untrusted input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from splatpix.codec.entropy import encode_categorical
from splatpix.codec.grid import dequantize_grid, grid_ste, quantize_grid
from splatpix.codec.positions import (
    _LEN_SYMBOLS,
    ORDER_MORTON,
    ORDER_RASTER,
    decode_grid_points,
    encode_grid_points,
    grid_levels,
)
from splatpix.errors import SplatpixError

SIZES = [(512, 768, 4), (7, 5, 1), (1, 1, 1), (1, 300, 64), (200, 3, 8), (64, 64, 2)]


def _round_trip(q: np.ndarray, levels: tuple[int, int], **kw) -> bytes:
    data, perm = encode_grid_points(q, levels, **kw)
    assert sorted(perm.tolist()) == list(range(q.shape[0]))
    out = decode_grid_points(data, q.shape[0], levels)
    assert out.dtype == np.int64 and out.shape == (q.shape[0], 2)
    np.testing.assert_array_equal(out, q[perm])
    return data


def _uniform_distinct(rng: np.random.Generator, n: int, levels: tuple[int, int]) -> np.ndarray:
    lx, ly = levels
    cells = rng.choice(lx * ly, n, replace=False)
    return np.stack((cells % lx, cells // lx), axis=1).astype(np.int64)


def _log2_binom(m: int, n: int) -> float:
    return (math.lgamma(m + 1) - math.lgamma(n + 1) - math.lgamma(m - n + 1)) / math.log(2)


# ------------------------------------------------------------------------------------------ quantisation


@pytest.mark.parametrize("h,w,subdiv", SIZES)
def test_quantisation_error_and_range(h: int, w: int, subdiv: int) -> None:
    rng = np.random.default_rng(h * w + subdiv)
    u = torch.from_numpy(rng.random((500, 2), dtype=np.float32))
    u[:4] = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    q, deq = quantize_grid(u, (h, w), subdiv)
    lx, ly = grid_levels((h, w), subdiv)
    assert (lx, ly) == (w * subdiv + 1, h * subdiv + 1)
    assert q.dtype == np.int64 and q.shape == (500, 2) and deq.dtype == torch.float32
    assert q.min() >= 0 and q[:, 0].max() <= lx - 1 and q[:, 1].max() <= ly - 1
    np.testing.assert_array_equal(q[:4], [[0, 0], [lx - 1, ly - 1], [0, ly - 1], [lx - 1, 0]])
    assert torch.equal(deq[:2], torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    err_px = ((deq.double() - u.double()).abs() * torch.tensor([w, h], dtype=torch.float64)).max(dim=0).values
    assert float(err_px.max()) <= 0.5 / subdiv + 1e-4
    assert torch.equal(dequantize_grid(q, (h, w), subdiv), deq)
    assert torch.equal(dequantize_grid(torch.from_numpy(q), (h, w), subdiv), deq)


def test_quantisation_clamps_and_rejects_non_finite() -> None:
    q, deq = quantize_grid(torch.tensor([[-0.3, 1.7], [2.0, -1.0]]), (10, 20), 2)
    np.testing.assert_array_equal(q, [[0, 20], [40, 0]])
    assert torch.equal(deq, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(SplatpixError):
        quantize_grid(torch.tensor([[0.5, float("nan")]]), (10, 20), 2)
    with pytest.raises(ValueError):
        quantize_grid(torch.zeros(3, 2), (10, 20), 0)
    with pytest.raises(ValueError):
        dequantize_grid(np.array([[41, 0]]), (10, 20), 2)
    q0, d0 = quantize_grid(torch.zeros(0, 2), (10, 20), 2)
    assert q0.shape == (0, 2) and d0.shape == (0, 2)


@pytest.mark.parametrize("h,w,subdiv", [(512, 768, 4), (1, 300, 64), (33, 17, 3)])
def test_ste_forward_exact_and_identity_gradient(h: int, w: int, subdiv: int) -> None:
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(1000, 2, generator=gen) * 1.2 - 0.1).requires_grad_(True)
    y = grid_ste(x, (h, w), subdiv)
    _, deq = quantize_grid(x, (h, w), subdiv)
    assert y.dtype == x.dtype and torch.equal(y.detach(), deq)
    weights = torch.randn(1000, 2, generator=gen)
    (y * weights).sum().backward()
    assert torch.equal(x.grad, weights)


# ---------------------------------------------------------------------------------------------- coding


@pytest.mark.parametrize("h,w,subdiv", SIZES)
@pytest.mark.parametrize("order", [ORDER_MORTON, ORDER_RASTER])
def test_round_trip_uniform_clustered_corners(h: int, w: int, subdiv: int, order: int) -> None:
    levels = grid_levels((h, w), subdiv)
    lx, ly = levels
    rng = np.random.default_rng(lx * 7 + ly)
    uniform = np.stack((rng.integers(0, lx, 300), rng.integers(0, ly, 300)), axis=1)
    centre = rng.integers(0, [lx, ly], size=(5, 2))
    clustered = np.clip(centre[rng.integers(0, 5, 300)] + rng.normal(0, 3, (300, 2)).round().astype(np.int64),
                        0, [lx - 1, ly - 1])
    corners = np.array([[lx - 1, ly - 1], [0, 0], [lx - 1, 0], [0, ly - 1], [lx - 1, ly - 1]])
    for q in (uniform, clustered, corners, corners[:1], np.zeros((0, 2), dtype=np.int64)):
        for t in (None, 0, 3):
            _round_trip(q.astype(np.int64), levels, order=order, model_bits=t)


def test_empty_single_duplicates_and_trivial_grid() -> None:
    data, perm = encode_grid_points(np.zeros((0, 2), dtype=np.int64), (11, 7))
    assert data == b"" and perm.shape == (0,)
    assert decode_grid_points(b"", 0, (11, 7)).shape == (0, 2)
    _round_trip(np.array([[3, 4]]), (11, 7))
    _round_trip(np.array([[3, 4]] * 50), (11, 7))
    _round_trip(np.array([[3, 4], [0, 0], [3, 4], [10, 6], [0, 0], [10, 6]]), (11, 7))
    _round_trip(np.zeros((20, 2), dtype=np.int64), (1, 1))
    _round_trip(np.array([[0, 0], [0, 1], [0, 1]]), (1, 2))
    # the permutation is stable: duplicates keep their input order
    _, perm = encode_grid_points(np.array([[5, 5], [1, 1], [5, 5], [1, 1]]), (11, 7))
    assert perm.tolist() == [1, 3, 0, 2]


def test_exact_bytes_of_the_documented_example() -> None:
    """docs/format.md, "Grid positions payload (method sga)"."""
    q = np.array([[4, 2], [1, 0], [3, 1], [1, 0]])
    data, perm = encode_grid_points(q, (5, 3))
    assert data.hex(" ") == "01 0c 03 00 00 00 01 00 00 01 00 00 40 18 0b"
    assert perm.tolist() == [1, 3, 2, 0]
    np.testing.assert_array_equal(decode_grid_points(data, 4, (5, 3)), [[1, 0], [1, 0], [3, 1], [4, 2]])


def test_default_is_the_smallest_candidate() -> None:
    levels = grid_levels((64, 96), 4)
    rng = np.random.default_rng(3)
    for n in (30, 3000):
        q = np.stack((rng.integers(0, levels[0], n), rng.integers(0, levels[1], n)), axis=1)
        best = len(encode_grid_points(q, levels)[0])
        sizes = [len(encode_grid_points(q, levels, order=o, model_bits=t)[0])
                 for o in (ORDER_MORTON, ORDER_RASTER) for t in range(4)]
        assert best == min(sizes)


def test_round_trip_big() -> None:
    levels = grid_levels((512, 768), 8)
    rng = np.random.default_rng(5)
    q = np.stack((rng.integers(0, levels[0], 100_000), rng.integers(0, levels[1], 100_000)), axis=1)
    _round_trip(q, levels)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        encode_grid_points(np.array([[11, 0]]), (11, 7))
    with pytest.raises(ValueError):
        encode_grid_points(np.array([[-1, 0]]), (11, 7))
    with pytest.raises(ValueError):
        encode_grid_points(np.array([[1.0, 0.0]]), (11, 7))
    with pytest.raises(ValueError):
        encode_grid_points(np.array([[1, 0]]), (0, 7))
    with pytest.raises(ValueError):
        encode_grid_points(np.array([[1, 0]]), (1 << 30, 1 << 30))
    with pytest.raises(ValueError):
        encode_grid_points(np.array([[1, 0]]), (11, 7), order=2)


# ---------------------------------------------------------------------------------- size vs the bound


@pytest.mark.parametrize("n,subdiv,slack", [(1000, 4, 0.5), (50_000, 2, 0.08)])
def test_size_close_to_information_bound(n: int, subdiv: int, slack: float) -> None:
    """Bits per point vs ``log2(C(M, N)) / N`` for N distinct uniform points among M cells. Measured overhead
    (seeds 0-4): 0.35-0.44 bits at N = 1000 (mostly the histogram side information), 0.055-0.059 at
    N = 50 000 (the Elias-gamma split and Morton's unused code space)."""
    levels = grid_levels((256, 384), subdiv)
    m = levels[0] * levels[1]
    for seed in range(3):
        q = _uniform_distinct(np.random.default_rng(seed), n, levels)
        data = _round_trip(q, levels)
        bits = len(data) * 8 / n
        bound = _log2_binom(m, n) / n
        assert bound <= bits <= bound + slack, (bits, bound)


# ------------------------------------------------------------------------------------------ untrusted


def _decode_ok_or_splatpix_error(data: bytes, n: int, levels: tuple[int, int]) -> bool:
    try:
        out = decode_grid_points(data, n, levels, source="f.spix")
    except SplatpixError as e:
        assert str(e).startswith("f.spix: corrupt .spix file: ")
        return False
    assert out.shape == (n, 2) and out.dtype == np.int64
    if n:
        assert out.min() >= 0 and out[:, 0].max() < levels[0] and out[:, 1].max() < levels[1]
    return True


def _small_payload(levels: tuple[int, int] = (49, 33), n: int = 40, t: int | None = None) -> tuple[bytes, int]:
    rng = np.random.default_rng(11)
    q = np.stack((rng.integers(0, levels[0], n), rng.integers(0, levels[1], n)), axis=1)
    return encode_grid_points(q, levels, model_bits=t)[0], n


@pytest.mark.parametrize("t", [0, 2])
def test_truncation_at_every_byte(t: int) -> None:
    data, n = _small_payload(t=t)
    for cut in range(len(data)):
        assert not _decode_ok_or_splatpix_error(data[:cut], n, (49, 33))
    assert not _decode_ok_or_splatpix_error(data + b"\x00", n, (49, 33))
    assert _decode_ok_or_splatpix_error(data, n, (49, 33))


def test_wrong_count_is_an_error() -> None:
    data, n = _small_payload()
    for m in (0, 1, n - 1, n + 1, 10 * n):
        assert not _decode_ok_or_splatpix_error(data, m, (49, 33))


def test_random_bit_flips() -> None:
    data, n = _small_payload()
    for seed in range(400):
        rng = np.random.default_rng(seed)
        buf = bytearray(data)
        for _ in range(1 + seed % 3):
            i = int(rng.integers(len(buf) * 8))
            buf[i // 8] ^= 1 << (i % 8)
        _decode_ok_or_splatpix_error(bytes(buf), n, (49, 33))


def test_random_garbage() -> None:
    for seed in range(300):
        rng = np.random.default_rng(seed)
        garbage = rng.integers(0, 256, int(rng.integers(0, 80)), dtype=np.uint8).tobytes()
        if seed % 2 and garbage:  # a valid scheme byte, so the decoder goes further
            garbage = bytes([int(rng.integers(0, 2)) | int(rng.integers(0, 4)) << 2]) + garbage[1:]
        _decode_ok_or_splatpix_error(garbage, int(rng.integers(0, 30)), (49, 33))


def test_forged_payloads() -> None:
    levels = (49, 33)
    # unknown scheme bits, a non-canonical / oversized / overlong length varint
    data, n = _small_payload()
    for bad in (bytes([0x10]) + data[1:], bytes([0x03]) + data[1:], data[:1] + b"\x80\x00" + data[2:],
                data[:1] + b"\xff\xff\xff\xff\x0f" + data[2:], data[:1] + b"\xff" * 6):
        assert not _decode_ok_or_splatpix_error(bad, n, levels)
    # a point in the Morton code space but outside the grid: (3, 0) is valid for 4 x 4 levels, not for 3 x 3
    data, _ = encode_grid_points(np.array([[3, 0]]), (4, 4), order=ORDER_MORTON, model_bits=0)
    assert not _decode_ok_or_splatpix_error(data, 1, (3, 3))
    # gaps that run past the code space, and a sum of gaps that would overflow int64
    big = encode_grid_points(np.array([[0, 1 << 20]]), (1 << 20, (1 << 20) + 1), order=ORDER_RASTER)[0]
    assert not _decode_ok_or_splatpix_error(big, 1, levels)
    lengths = np.full(200, 46)  # 200 gaps of 2^45: the cumulative sum wraps around in int64 arithmetic
    cat = encode_categorical(lengths, 64)
    raw = bytes((45 * 200 + 7) // 8)
    forged = bytes([ORDER_RASTER]) + bytes([len(cat)]) + cat + raw
    assert len(cat) < 128
    assert not _decode_ok_or_splatpix_error(forged, 200, (1 << 23, 1 << 23))
    # a symbol whose "top mantissa bits" do not exist (L = 1 has no mantissa bits)
    cat = encode_categorical(np.array([(1 << 2) | 1]), 64 << 2)
    forged = bytes([ORDER_RASTER | 2 << 2]) + bytes([len(cat)]) + cat
    assert not _decode_ok_or_splatpix_error(forged, 1, levels)
    # nonzero padding bits after the raw mantissa bits: one point at raster code 5 = 0b101 (L = 3, 2 raw bits)
    data, _ = encode_grid_points(np.array([[5, 0]]), levels, order=ORDER_RASTER, model_bits=0)
    assert data[-1] == 0b01 and _decode_ok_or_splatpix_error(data, 1, levels)
    assert not _decode_ok_or_splatpix_error(data[:-1] + bytes([data[-1] | 0x80]), 1, levels)


# ------------------------------------------------------------------------------------ kernel vs oracle


def _kernel_or_error(sym: np.ndarray, t: int, raw: np.ndarray, order: int, lx: int, ly: int) -> np.ndarray | str:
    from splatpix.codec.positions import _PTS_OK, _bitlen, _code_space, _points_error, _points_kernel

    out = np.empty((sym.size, 2), dtype=np.int64)
    status, expected = _points_kernel(sym, t, raw, order, lx, ly, _bitlen(lx - 1), _bitlen(ly - 1),
                                      _code_space(order, lx, ly), out)
    return out if status == _PTS_OK else _points_error(status, raw.size, expected)


def _reference_or_error(sym: np.ndarray, t: int, raw: np.ndarray, order: int, lx: int, ly: int) -> np.ndarray | str:
    from splatpix.codec.positions import _points_reference

    try:
        return _points_reference(sym, t, raw, order, lx, ly)
    except SplatpixError as e:
        return str(e)


def _split_payload(data: bytes, n: int) -> tuple[np.ndarray, int, int, np.ndarray]:
    """(gap symbols, t, order, raw bytes) of an :func:`encode_grid_points` payload of ``n`` points."""
    from splatpix.codec.entropy import decode_categorical
    from splatpix.codec.positions import _LEN_SYMBOLS, _read_varint

    order, t = data[0] & 3, (data[0] >> 2) & 3
    cat_len, pos = _read_varint(data, 1, SplatpixError)
    sym = decode_categorical(data[pos:pos + cat_len], n, _LEN_SYMBOLS << t)
    return sym, t, order, np.frombuffer(data, dtype=np.uint8, offset=pos + cat_len)


def _same(a: np.ndarray | str, b: np.ndarray | str) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, str):
        assert a == b
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("order", [ORDER_MORTON, ORDER_RASTER])
@pytest.mark.parametrize("t", [0, 1, 3])
@pytest.mark.parametrize("levels", [(3073, 2049), (49, 33), (2, 9000), (5000, 3)])
def test_points_kernel_matches_oracle(order: int, t: int, levels: tuple[int, int]) -> None:
    """The numba decoder of the gaps equals its numpy oracle on valid payloads (clustered and uniform points,
    duplicates) and on the same payloads with corrupted symbols or raw bits (same points or same message)."""
    lx, ly = levels
    rng = np.random.default_rng(lx + 7 * t + order)
    for trial in range(6):
        n = int(rng.integers(1, 400))
        if trial % 2:
            q = np.stack((rng.integers(0, lx, n), rng.integers(0, ly, n)), axis=1)
        else:  # clusters and duplicates
            c = np.stack((rng.integers(0, lx, 4), rng.integers(0, ly, 4)), axis=1)
            q = np.clip(c[rng.integers(0, 4, n)] + rng.integers(-3, 4, (n, 2)), 0, [lx - 1, ly - 1])
        data, _ = encode_grid_points(q, levels, order=order, model_bits=t)
        sym, tt, oo, raw = _split_payload(data, n)
        good = _kernel_or_error(sym, tt, raw, oo, lx, ly)
        assert isinstance(good, np.ndarray)
        _same(good, _reference_or_error(sym, tt, raw, oo, lx, ly))
        for _ in range(20):
            bad_sym, bad_raw = sym.copy(), raw.copy()
            what = int(rng.integers(3))
            if what == 0:
                bad_sym[rng.integers(n)] = rng.integers(0, _LEN_SYMBOLS << tt)
            elif what == 1 and raw.size:
                bad_raw[rng.integers(raw.size)] ^= np.uint8(1 << int(rng.integers(8)))
            else:
                bad_raw = np.concatenate((raw, np.zeros(int(rng.integers(1, 3)), dtype=np.uint8)))[
                    : max(raw.size + int(rng.integers(-2, 3)), 0)]
            args = (bad_sym, tt, bad_raw, oo, lx, ly)
            _same(_kernel_or_error(*args), _reference_or_error(*args))

