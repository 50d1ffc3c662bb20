"""Tests of splatpix.codec.entropy: categorical ANS coding and fixed-length packing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from splatpix.codec import entropy
from splatpix.codec.entropy import (
    decode_categorical,
    encode_categorical,
    ideal_code_length_bits,
    pack_fixed,
    read_histogram,
    unpack_fixed,
)
from splatpix.errors import SplatpixError


def _skewed(rng: np.random.Generator, n: int, alphabet: int, decay: float = 4.0) -> np.ndarray:
    p = np.exp(-np.arange(alphabet) / decay)
    return rng.choice(alphabet, size=n, p=p / p.sum())


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


# --------------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alphabet", [1, 2, 8, 64, 65536])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000])
@pytest.mark.parametrize("kind", ["single", "uniform", "skewed"])
def test_round_trip(alphabet: int, n: int, kind: str) -> None:
    rng = np.random.default_rng(alphabet * 1000 + n)
    if kind == "single":
        x = np.full(n, alphabet - 1)
    elif kind == "uniform":
        x = rng.integers(0, alphabet, n)
    else:
        x = _skewed(rng, n, alphabet, decay=max(1.0, alphabet / 16))
    data = encode_categorical(x, alphabet)
    y = decode_categorical(data, n, alphabet)
    assert y.dtype == np.int64 and y.shape == (n,)
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.int64, np.uint64])
def test_input_dtypes(dtype: type) -> None:
    x = np.array([0, 3, 3, 1, 200, 3], dtype=dtype)
    np.testing.assert_array_equal(decode_categorical(encode_categorical(x, 256), 6, 256), x)


def test_empty_input_is_one_byte() -> None:
    assert encode_categorical(np.zeros(0, dtype=np.int64), 64) == b"\x00"
    assert decode_categorical(b"\x00", 0, 64).shape == (0,)


def test_single_symbol_has_no_ans_data() -> None:
    n = 100_000
    data = encode_categorical(np.full(n, 41), 64)
    # k=1, gap coding, symbol 41, count n-1: a handful of bytes, no ANS words.
    assert data == b"\x01\x00" + _varint(41) + _varint(n - 1)
    assert read_histogram(data, n, 64).size == len(data)
    np.testing.assert_array_equal(decode_categorical(data, n, 64), np.full(n, 41))
    with pytest.raises(SplatpixError):
        decode_categorical(data, n - 1, 64)
    with pytest.raises(SplatpixError):
        decode_categorical(data + b"\x00", n, 64)


def test_trailing_run_of_first_symbol() -> None:
    # constriction's ANS starts from state 0, so a trailing run of the lowest-cdf symbol costs nothing.
    x = np.array([1] * 5 + [0] * 1000)
    np.testing.assert_array_equal(decode_categorical(encode_categorical(x, 2), x.size, 2), x)


def test_histogram_symbol_set_coding_is_the_smaller() -> None:
    rng = np.random.default_rng(1)
    dense = rng.integers(0, 64, 5000)  # all 64 symbols used: bitmap (8 bytes) beats 64 gap varints
    h = read_histogram(encode_categorical(dense, 64), dense.size, 64)
    assert h.symbols.tolist() == list(range(64))
    assert encode_categorical(dense, 64)[1] == 1
    sparse = np.array([5, 60000, 5, 70])  # 3 symbols over 65536: gap varints beat an 8 KiB bitmap
    data = encode_categorical(sparse, 65536)
    assert data[1] == 0 and len(data) < 40
    h = read_histogram(data, 4, 65536)
    assert h.symbols.tolist() == [5, 70, 60000] and h.counts.tolist() == [2, 1, 1]


def test_large_alphabet_all_symbols() -> None:
    x = np.random.default_rng(2).permutation(np.arange(65536).repeat(2))
    np.testing.assert_array_equal(decode_categorical(encode_categorical(x, 65536), x.size, 65536), x)


def test_coded_size_near_entropy() -> None:
    """On 1e5 skewed symbols the payload is within 1 % of n*H + side information."""
    rng = np.random.default_rng(3)
    n = 100_000
    for alphabet, decay in [(64, 4.0), (8, 1.0), (2, 0.3)]:
        x = _skewed(rng, n, alphabet, decay)
        data = encode_categorical(x, alphabet)
        side_bits = 8 * read_histogram(data, n, alphabet).size
        ideal = ideal_code_length_bits(x, alphabet)
        assert ideal > 0.2 * n
        assert 8 * len(data) <= 1.01 * ideal + side_bits
        # In practice ANS is much closer than 1 %: 32-bit words plus a 64-bit final state.
        assert 8 * len(data) - side_bits <= ideal * 1.001 + 64
        np.testing.assert_array_equal(decode_categorical(data, n, alphabet), x)


# --------------------------------------------------------------------------------------------------------
# Bad arguments (caller errors) -> ValueError
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "symbols, alphabet",
    [
        (np.array([0, 64]), 64),
        (np.array([-1, 0]), 64),
        (np.zeros((2, 2), dtype=np.int64), 64),
        (np.array([0.0, 1.0]), 64),
        (np.array([True, False]), 64),
        (np.array([0]), 0),
        (np.array([0]), 65537),
    ],
)
def test_encode_bad_arguments(symbols: np.ndarray, alphabet: int) -> None:
    with pytest.raises(ValueError):
        encode_categorical(symbols, alphabet)


def test_decode_bad_arguments() -> None:
    with pytest.raises(ValueError):
        decode_categorical(b"\x00", -1, 64)
    with pytest.raises(ValueError):
        decode_categorical(b"\x00", 0, 0)
    with pytest.raises(ValueError):
        decode_categorical(b"\x00", 0, 1 << 17)


# --------------------------------------------------------------------------------------------------------
# Untrusted data -> SplatpixError
# --------------------------------------------------------------------------------------------------------


def _small_payload() -> tuple[bytes, np.ndarray]:
    x = _skewed(np.random.default_rng(4), 300, 16, 2.0)
    return encode_categorical(x, 16), x


def test_wrong_n_or_alphabet() -> None:
    data, x = _small_payload()
    for n in (0, 1, x.size - 1, x.size + 1, 10 * x.size):
        with pytest.raises(SplatpixError):
            decode_categorical(data, n, 16)
    with pytest.raises(SplatpixError):
        decode_categorical(data, x.size, int(x.max()))  # a used symbol outside the smaller alphabet
    with pytest.raises(SplatpixError):
        decode_categorical(b"", 0, 16)


def test_every_truncation_and_extension() -> None:
    data, x = _small_payload()
    for cut in range(len(data)):
        with pytest.raises(SplatpixError):
            decode_categorical(data[:cut], x.size, 16)
    for extra in (b"\x00", b"\x01", b"\x00\x00\x00\x00", b"\x01\x00\x00\x00"):
        with pytest.raises(SplatpixError):
            decode_categorical(data + extra, x.size, 16)


def _decode_or_error(data: bytes, n: int, alphabet: int) -> np.ndarray | None:
    """Decode; only SplatpixError may be raised, and a result must be a plausible symbol array."""
    try:
        y = decode_categorical(data, n, alphabet)
    except SplatpixError as e:
        assert "\n" not in str(e)
        return None
    assert y.shape == (n,) and y.dtype == np.int64
    assert n == 0 or (y.min() >= 0 and y.max() < alphabet)
    return y


def test_every_byte_flip_of_histogram_is_detected() -> None:
    data, x = _small_payload()
    side = read_histogram(data, x.size, 16).size
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= mask
            y = _decode_or_error(bytes(bad), x.size, 16)
            if i < side:
                assert y is None, (i, mask)
            elif y is not None:  # an ANS flip can only pass as another stream with the same histogram
                np.testing.assert_array_equal(np.bincount(y, minlength=16), np.bincount(x, minlength=16))


def test_forged_histograms() -> None:
    n = 10
    cases = [
        _varint(1 << 40),  # k huge
        _varint(2),  # k without a symbol set
        _varint(2) + b"\x05",  # unknown set coding
        _varint(2) + b"\x00" + _varint(3) + _varint(1 << 30) + _varint(0) + _varint(0),  # symbol > alphabet
        _varint(2) + b"\x00" + _varint(0) + _varint(0) + _varint(3) + _varint(3),  # counts 4 + 4 != n
        _varint(2) + b"\x00" + _varint(0) + _varint(0) + _varint((1 << 49) - 1) + _varint(0),  # count overflow
        _varint(2) + b"\x00" + _varint(0) + _varint(0) + b"\xff" * 20,  # endless varint
        _varint(2) + b"\x00" + b"\x80\x00" + _varint(0) + _varint(4) + _varint(4),  # non-canonical varint
        _varint(2) + b"\x00" + _varint(3) + _varint(9) + _varint(4) + _varint(4),  # second symbol 13 >= 10
        _varint(1) + b"\x01" + b"\x00\x00",  # bitmap with no bit set
        _varint(1) + b"\x01" + b"\x01\x80",  # bitmap bit beyond the 10-symbol alphabet... (bit 15)
        _varint(0),  # no symbols but n > 0
    ]
    for data in cases:
        with pytest.raises(SplatpixError):
            decode_categorical(data, n, 10)
    # A valid histogram (counts 5 + 5) without ANS data, or with a zero or partial word.
    ok_hist = _varint(2) + b"\x00" + _varint(0) + _varint(0) + _varint(4) + _varint(4)
    for tail in (b"", b"\x00\x00\x00\x00", b"\x01\x02\x03"):
        with pytest.raises(SplatpixError):
            decode_categorical(ok_hist + tail, 10, 10)


def test_forged_huge_n_is_rejected_cheaply() -> None:
    # A 5-byte payload claiming one symbol repeated many times decodes (the codec checks n against its
    # limits first); a histogram that does not sum to n is rejected before any O(n) allocation.
    data, x = _small_payload()
    t0 = time.perf_counter()
    with pytest.raises(SplatpixError):
        decode_categorical(data, 1 << 40, 16)
    assert time.perf_counter() - t0 < 1.0


def test_fuzz_decode_categorical() -> None:
    rng = np.random.default_rng(1234)
    payloads = []
    for alphabet, n in [(16, 300), (64, 200), (2, 100), (65536, 50), (8, 1)]:
        x = _skewed(rng, n, alphabet, max(1.0, alphabet / 8))
        payloads.append((encode_categorical(x, alphabet), n, alphabet))
    t0 = time.perf_counter()
    outcomes = {"error": 0, "ok": 0}
    for trial in range(3000):
        data, n, alphabet = payloads[trial % len(payloads)]
        bad = bytearray(data)
        op = rng.integers(0, 6)
        if op == 0:  # bit flips
            for _ in range(rng.integers(1, 4)):
                bad[rng.integers(len(bad))] ^= 1 << int(rng.integers(8))
        elif op == 1:  # truncation
            bad = bad[: rng.integers(0, len(bad))]
        elif op == 2:  # insertion
            pos = int(rng.integers(0, len(bad) + 1))
            bad[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif op == 3:  # forged varint (counts, k, gaps) at a random place near the start
            pos = int(rng.integers(0, min(len(bad), 12)))
            value = int(rng.choice([0, 1, 255, 65535, 65536, (1 << 32) - 1, (1 << 40), int(rng.integers(1 << 62))]))
            bad[pos : pos + 1] = _varint(value)
        elif op == 4:  # random garbage
            bad = bytearray(rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes())
        else:  # wrong n
            n = int(rng.choice([0, 1, n - 1, n + 1, 2 * n]))
        y = _decode_or_error(bytes(bad), max(n, 0), alphabet)
        outcomes["error" if y is None else "ok"] += 1
    assert outcomes["error"] > 2000
    assert time.perf_counter() - t0 < 10.0


def _varints_or_error(fn, data: bytes, pos: int, count: int, max_value: int) -> tuple[list[int], int] | None:
    try:
        values, end = fn(data, pos, count, max_value, "test")
    except SplatpixError as e:
        assert "\n" not in str(e)
        return None
    return values.tolist(), end


def test_varint_kernel_matches_numpy_reference() -> None:
    """The numba varint decoder agrees with the vectorised numpy oracle on valid and corrupt streams: the same
    values and end position, or both raise SplatpixError."""
    rng = np.random.default_rng(7)
    outcomes = {"error": 0, "ok": 0}
    for trial in range(1500):
        count = int(rng.integers(1, 40))
        bits = rng.integers(0, 50, count)  # values of every varint length, up to the 49-bit maximum
        values = [int(rng.integers(0, 1 << int(b))) if b else 0 for b in bits]
        prefix = rng.integers(0, 256, int(rng.integers(0, 4)), dtype=np.uint8).tobytes()
        data = bytearray(prefix + b"".join(_varint(v) for v in values) + b"\x05\x81")
        op = trial % 5
        if op == 1:
            data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        elif op == 2:  # truncated, never before the start position (the callers' invariant)
            data = data[: rng.integers(len(prefix), len(data))]
        elif op == 3:
            p = int(rng.integers(0, len(data) + 1))
            data[p:p] = b"\x80" * int(rng.integers(1, 9)) + bytes([int(rng.integers(0, 256))])
        max_value = int(rng.choice([max(values), max(values) - 1, (1 << 49) - 1, 255]))
        got = _varints_or_error(entropy._decode_varints, bytes(data), len(prefix), count, max(max_value, 0))
        want = _varints_or_error(entropy._decode_varints_reference, bytes(data), len(prefix), count,
                                 max(max_value, 0))
        assert got == want, trial
        if op == 0 and max_value >= max(values):
            assert got == (values, len(data) - 2)
        outcomes["error" if got is None else "ok"] += 1
    assert min(outcomes.values()) > 300


def test_histogram_kernel_matches_reference() -> None:
    """The compiled histogram parser accepts exactly what :func:`read_histogram` accepts, with the same
    symbols, counts and size, on valid histograms (both set codings) and on flipped, truncated, forged ones."""
    rng = np.random.default_rng(5)
    outcomes = {"error": 0, "ok": 0}
    for trial in range(1500):
        alphabet = int(rng.choice([2, 10, 64, 300, 65536]))
        n = int(rng.integers(0, 200))
        x = _skewed(rng, n, alphabet, max(1.0, alphabet / 8)) if n else np.zeros(0, dtype=np.int64)
        data = bytearray(encode_categorical(x, alphabet))
        op = trial % 5
        if op == 1 and data:
            data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        elif op == 2:
            data = data[: rng.integers(0, len(data) + 1)]
        elif op == 3:
            p = int(rng.integers(0, min(len(data), 6) + 1))
            data[p:p + 1] = _varint(int(rng.choice([0, 1, 9, 300, 65536, 1 << 20])))
        elif op == 4:
            n = int(rng.choice([0, 1, max(n - 1, 0), n + 1]))
        try:
            want = read_histogram(bytes(data), n, alphabet)
        except SplatpixError:
            want = None
        ok, used, counts, size = entropy._histogram_kernel(np.frombuffer(bytes(data), dtype=np.uint8), n, alphabet)
        assert ok == (want is not None), trial
        if want is not None:
            np.testing.assert_array_equal(used, want.symbols)
            np.testing.assert_array_equal(counts, want.counts)
            assert size == want.size
        outcomes["ok" if ok else "error"] += 1
    assert min(outcomes.values()) > 300


def test_map_symbols_matches_numpy() -> None:
    """The fused check-and-gather after ANS decoding equals ``symbols[index]`` and flags an out-of-range index
    or a histogram mismatch as the numpy checks would."""
    rng = np.random.default_rng(6)
    for trial in range(300):
        k = int(rng.integers(1, 20))
        symbols = np.sort(rng.choice(1000, k, replace=False)).astype(np.int64)
        index = rng.integers(0, k, int(rng.integers(1, 100))).astype(np.int32)
        counts = np.bincount(index, minlength=k).astype(np.int64)
        if trial % 3 == 1:
            index[rng.integers(index.size)] = int(rng.choice([-1, k, k + 5]))
        elif trial % 3 == 2:
            counts[rng.integers(k)] += 1
        out = np.empty(index.size, dtype=np.int64)
        status = entropy._map_symbols(index, symbols, counts, out)
        in_range = bool(index.min() >= 0 and index.max() < k)
        if not in_range:
            assert status == entropy._MAP_RANGE
        elif not np.array_equal(np.bincount(index, minlength=k), counts):
            assert status == entropy._MAP_MISMATCH
        else:
            assert status == entropy._MAP_OK
            np.testing.assert_array_equal(out, symbols[index])


def test_no_constriction_exception_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even an unexpected failure inside constriction (a Rust panic is a BaseException) is a SplatpixError."""
    import constriction

    class Boom(BaseException):
        pass

    class BadCoder:
        def __init__(self, *args: object) -> None:
            raise Boom("panic")

    data, x = _small_payload()
    monkeypatch.setattr(constriction.stream.stack, "AnsCoder", BadCoder)
    with pytest.raises(SplatpixError, match="ANS decoder failed"):
        decode_categorical(data, x.size, 16)


# --------------------------------------------------------------------------------------------------------
# Fixed-length packing
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", list(range(1, 33)))
def test_fixed_round_trip(bits: int) -> None:
    rng = np.random.default_rng(bits)
    for n in (0, 1, 7, 33):
        x = rng.integers(0, 1 << bits, n, dtype=np.int64)
        if n:
            x[0] = (1 << bits) - 1
        data = pack_fixed(x, bits)
        assert len(data) == (n * bits + 7) // 8
        np.testing.assert_array_equal(unpack_fixed(data, n, bits), x)


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_fixed_byte_aligned_fast_path_matches_generic(bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(5).integers(0, 1 << bits, 101, dtype=np.int64)
    fast = pack_fixed(x, bits)
    monkeypatch.setattr(entropy, "_BYTE_ALIGNED", {})
    assert pack_fixed(x, bits) == fast
    np.testing.assert_array_equal(unpack_fixed(fast, 101, bits), x)


def test_fixed_bit_order() -> None:
    # 3-bit symbols 1, 2, 7 -> stream bits (LSB first) 100 010 111 -> byte0 = 0b11010001, byte1 = 0b1
    assert pack_fixed(np.array([1, 2, 7]), 3) == bytes([0b11010001, 0b00000001])
    assert pack_fixed(np.array([0x1234]), 16) == b"\x34\x12"


def test_fixed_errors() -> None:
    with pytest.raises(ValueError):
        pack_fixed(np.array([8]), 3)
    with pytest.raises(ValueError):
        pack_fixed(np.array([1]), 0)
    with pytest.raises(ValueError):
        pack_fixed(np.array([1]), 33)
    data = pack_fixed(np.array([1, 2, 7]), 3)
    for bad in (data[:1], data + b"\x00", b""):
        with pytest.raises(SplatpixError):
            unpack_fixed(bad, 3, 3)
    with pytest.raises(SplatpixError, match="padding"):
        unpack_fixed(bytes([data[0], data[1] | 0x80]), 3, 3)
    with pytest.raises(SplatpixError):
        unpack_fixed(b"\x00", 1 << 40, 3)
