"""Entropy coding of symbol streams: ANS with a categorical model, and fixed-length packing.

Two codings of a 1-D array of integer symbols in ``[0, alphabet)``:

* :func:`encode_categorical` / :func:`decode_categorical` -- the symbol histogram travels as side information
  and the symbols are coded with asymmetric numeral systems (``constriction``'s ``AnsCoder``, 32-bit words,
  ``Categorical`` model built from the histogram with ``perfect=False``), as in GaussianImage.
* :func:`pack_fixed` / :func:`unpack_fixed` -- every symbol takes exactly ``bits`` bits (GaussianImage's
  fixed-length comparison mode).

The byte layouts are specified in ``docs/format.md`` ("Entropy-coded payload"). Neither payload stores the
number of symbols ``n`` nor the alphabet size: the codec knows both from the ``.spix`` header.

Decoding treats its input as untrusted. Every inconsistency (truncation, trailing bytes, malformed or
non-canonical varints, a histogram that does not sum to ``n``, symbols outside the alphabet, an ANS stream
that is not exactly exhausted after ``n`` symbols or whose symbols do not match the histogram) raises
:class:`~splatpix.errors.SplatpixError`; memory and time are ``O(n + alphabet + len(data))``. ``n`` and
``alphabet`` themselves are the caller's to check against its limits; invalid *arguments* (as opposed to
invalid data) raise :class:`ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import constriction
import numpy as np

from ..checks import int_in_range
from ..errors import SplatpixError
from ..jit import njit, use_kernels

__all__ = [
    "MAX_ALPHABET",
    "MAX_FIXED_BITS",
    "MAX_SYMBOLS",
    "Histogram",
    "decode_categorical",
    "encode_categorical",
    "ideal_code_length_bits",
    "pack_fixed",
    "read_histogram",
    "unpack_fixed",
]

MAX_ALPHABET = 1 << 16
"""Largest supported alphabet size (symbols ``0 .. 65535``)."""

MAX_SYMBOLS = 1 << 40
"""Largest supported number of symbols in one stream (keeps every sum inside ``int64``)."""

MAX_FIXED_BITS = 32
"""Largest symbol width of :func:`pack_fixed`."""

_BYTE_ALIGNED = {8: np.dtype("u1"), 16: np.dtype("<u2"), 32: np.dtype("<u4")}  # same bits as the generic path
_SET_GAPS = 0  # the used symbols as varint gaps
_SET_BITMAP = 1  # the used symbols as a bitmap over the alphabet
_MAX_VARINT_BYTES = 7  # 49 bits: enough for any value <= MAX_SYMBOLS
_ERR = "corrupt entropy-coded data"


# --------------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------------


def _check_symbols(symbols: np.ndarray, limit: int, what: str) -> np.ndarray:
    """Validate a 1-D integer symbol array with values in ``[0, limit)``; return it as ``int64``."""
    arr = np.asarray(symbols)
    if arr.ndim != 1:
        raise ValueError(f"symbols must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"symbols must have an integer dtype, got {arr.dtype}")
    if arr.size > MAX_SYMBOLS:
        raise ValueError(f"too many symbols ({arr.size}; at most {MAX_SYMBOLS})")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= limit:
        raise ValueError(f"symbols must be in [0, {limit}) ({what}), got values in [{lo}, {hi}]")
    return arr.astype(np.int64, copy=False)


# --------------------------------------------------------------------------------------------------------
# Unsigned LEB128 varints
# --------------------------------------------------------------------------------------------------------


def _encode_varints(values: np.ndarray) -> bytes:
    """Unsigned LEB128 encoding of non-negative ``values`` (< 2**49), concatenated."""
    v = np.asarray(values, dtype=np.uint64)
    if v.size == 0:
        return b""
    nbytes = np.ones(v.size, dtype=np.int64)
    for j in range(1, _MAX_VARINT_BYTES):
        nbytes += (v >> np.uint64(7 * j)) > 0
    starts = np.concatenate(([0], np.cumsum(nbytes)[:-1]))
    out = np.zeros(int(nbytes.sum()), dtype=np.uint8)
    for j in range(int(nbytes.max())):
        sel = nbytes > j
        byte = (v[sel] >> np.uint64(7 * j)) & np.uint64(0x7F)
        more = (nbytes[sel] - 1 > j).astype(np.uint64) << np.uint64(7)
        out[starts[sel] + j] = (byte | more).astype(np.uint8)
    return out.tobytes()


_VARINT_OK, _VARINT_TRUNCATED, _VARINT_TOO_LONG, _VARINT_NON_CANONICAL, _VARINT_RANGE = range(5)


@njit()
def _varint_kernel(buf: np.ndarray, pos: int, count: int, max_value: int, out: np.ndarray) -> tuple[int, int]:
    """Sequential LEB128 decoding of ``count`` values into ``out``; returns ``(new pos, status)``; on an error
    ``out[0]`` holds the offending value (status ``_VARINT_RANGE``)."""
    n = buf.size
    for i in range(count):
        v = np.int64(0)
        shift = np.int64(0)
        length = 0
        byte = np.int64(0)
        while True:
            if pos >= n:
                return pos, _VARINT_TRUNCATED
            byte = np.int64(buf[pos])
            pos += 1
            length += 1
            if length > _MAX_VARINT_BYTES:
                return pos, _VARINT_TOO_LONG
            v |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if length > 1 and byte == 0:
            return pos, _VARINT_NON_CANONICAL
        if v > max_value:
            out[0] = v
            return pos, _VARINT_RANGE
        out[i] = v
    return pos, _VARINT_OK


def _decode_varints(data: bytes, pos: int, count: int, max_value: int, what: str) -> tuple[np.ndarray, int]:
    """Decode ``count`` canonical varints at ``data[pos:]``, each ``<= max_value``; return them and the new pos.

    A numba loop (one call per stream: the per-call cost of a dozen numpy operations was most of the time of
    decoding a small chunk); :func:`_decode_varints_reference` is its numpy oracle. Errors: as the oracle's
    (a stream with several defects may name a different one first)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64), pos
    if not use_kernels():
        return _decode_varints_reference(data, pos, count, max_value, what)
    out = np.empty(count, dtype=np.int64)
    new_pos, status = _varint_kernel(np.frombuffer(data, dtype=np.uint8), pos, count, max_value, out)
    if status == _VARINT_TRUNCATED:
        raise SplatpixError(f"{_ERR}: {what} truncated or malformed")
    if status == _VARINT_TOO_LONG:
        raise SplatpixError(f"{_ERR}: {what}: varint too long")
    if status == _VARINT_NON_CANONICAL:
        raise SplatpixError(f"{_ERR}: {what}: non-canonical varint")
    if status == _VARINT_RANGE:
        raise SplatpixError(f"{_ERR}: {what}: value {int(out[0])} out of range (at most {max_value})")
    return out, new_pos


def _decode_varints_reference(data: bytes, pos: int, count: int, max_value: int, what: str) -> tuple[np.ndarray, int]:
    """Vectorised numpy oracle of :func:`_decode_varints` (the tests compare the two on random and corrupt
    input): decode ``count`` canonical varints at ``data[pos:]``, each ``<= max_value``; return them and the new
    pos. Only ``count * 7`` bytes are scanned, so the cost is ``O(count)``."""
    if count == 0:
        return np.zeros(0, dtype=np.int64), pos
    window = np.frombuffer(data, dtype=np.uint8, count=min(len(data) - pos, count * _MAX_VARINT_BYTES), offset=pos)
    ends = np.flatnonzero(window < 0x80)[:count]
    if ends.size < count:
        raise SplatpixError(f"{_ERR}: {what} truncated or malformed")
    starts = np.empty(count, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > _MAX_VARINT_BYTES:
        raise SplatpixError(f"{_ERR}: {what}: varint too long")
    if np.any((lengths > 1) & (window[ends] == 0)):
        raise SplatpixError(f"{_ERR}: {what}: non-canonical varint")
    used = window[: int(ends[-1]) + 1].astype(np.uint64)
    owner = np.repeat(np.arange(count), lengths)
    shift = (np.arange(used.size, dtype=np.int64) - starts[owner]) * 7
    values = np.add.reduceat((used & np.uint64(0x7F)) << shift.astype(np.uint64), starts).astype(np.int64)
    if int(values.max()) > max_value:
        raise SplatpixError(f"{_ERR}: {what}: value {int(values.max())} out of range (at most {max_value})")
    return values, pos + int(ends[-1]) + 1


# --------------------------------------------------------------------------------------------------------
# Histogram side information
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """The side information of a categorical payload (see :func:`read_histogram`)."""

    symbols: np.ndarray
    """The distinct symbols that occur, increasing (``int64``)."""
    counts: np.ndarray
    """How often each of :attr:`symbols` occurs (``int64``, all ``>= 1``, summing to ``n``)."""
    size: int
    """Bytes of side information; the ANS words (if any) follow at this offset."""


def _encode_histogram(used: np.ndarray, counts: np.ndarray, alphabet: int) -> bytes:
    k = used.size
    head = _encode_varints(np.array([k]))
    if k == 0:
        return head
    gaps = _encode_varints(np.diff(used, prepend=-1) - 1)
    bitmap_len = (alphabet + 7) // 8
    if bitmap_len < len(gaps):
        mask = np.zeros(bitmap_len * 8, dtype=np.uint8)
        mask[used] = 1
        symbol_set = bytes([_SET_BITMAP]) + np.packbits(mask, bitorder="little").tobytes()
    else:
        symbol_set = bytes([_SET_GAPS]) + gaps
    return head + symbol_set + _encode_varints(counts - 1)


def read_histogram(data: bytes, n: int, alphabet: int) -> Histogram:
    """Parse and validate the histogram at the start of an :func:`encode_categorical` payload.

    Checks that the used symbols are distinct, increasing and inside the alphabet, that every count is
    ``>= 1`` and that the counts sum to exactly ``n``. Raises :class:`SplatpixError` otherwise.
    """
    n = int_in_range(n, "n", 0, MAX_SYMBOLS)
    alphabet = int_in_range(alphabet, "alphabet", 1, MAX_ALPHABET)
    data = bytes(data)
    if not data:
        raise SplatpixError(f"{_ERR}: empty payload")
    kk, pos = _decode_varints(data, 0, 1, MAX_ALPHABET, "symbol count")
    k = int(kk[0])
    if k > min(n, alphabet) or (n > 0 and k == 0):
        raise SplatpixError(f"{_ERR}: {k} distinct symbols for {n} symbols over an alphabet of {alphabet}")
    empty = np.zeros(0, dtype=np.int64)
    if k == 0:
        return Histogram(empty, empty, pos)
    if pos >= len(data):
        raise SplatpixError(f"{_ERR}: symbol set truncated")
    set_coding = data[pos]
    pos += 1
    if set_coding == _SET_GAPS:
        gaps, pos = _decode_varints(data, pos, k, alphabet - 1, "symbol set")
        used = np.cumsum(gaps + 1) - 1
        if int(used[-1]) >= alphabet:
            raise SplatpixError(f"{_ERR}: symbol {int(used[-1])} outside the alphabet of {alphabet}")
    elif set_coding == _SET_BITMAP:
        bitmap_len = (alphabet + 7) // 8
        if len(data) - pos < bitmap_len:
            raise SplatpixError(f"{_ERR}: symbol bitmap truncated")
        bits = np.unpackbits(np.frombuffer(data, np.uint8, bitmap_len, pos), bitorder="little")
        pos += bitmap_len
        if bits[alphabet:].any():
            raise SplatpixError(f"{_ERR}: symbol bitmap has bits set beyond the alphabet")
        used = np.flatnonzero(bits).astype(np.int64)
        if used.size != k:
            raise SplatpixError(f"{_ERR}: symbol bitmap has {used.size} symbols, expected {k}")
    else:
        raise SplatpixError(f"{_ERR}: unknown symbol-set coding {set_coding}")
    counts, pos = _decode_varints(data, pos, k, n - 1, "symbol counts")
    counts += 1
    total = int(counts.sum())  # k <= 2**16 counts <= 2**40 each: no overflow
    if total != n:
        raise SplatpixError(f"{_ERR}: histogram sums to {total}, expected {n} symbols")
    return Histogram(used, counts, pos)


@njit()
def _histogram_kernel(buf: np.ndarray, n: int, alphabet: int) -> tuple[bool, np.ndarray, np.ndarray, int]:
    """:func:`read_histogram` in one compiled call: ``(ok, symbols, counts, size)``. ``ok`` is False for any
    input the reference rejects (the caller then calls the reference for its message); the tests compare the
    two on valid and corrupt histograms."""
    empty = np.zeros(0, dtype=np.int64)
    one = np.empty(1, dtype=np.int64)
    size = buf.shape[0]
    if size == 0:
        return False, empty, empty, 0
    pos, status = _varint_kernel(buf, 0, 1, MAX_ALPHABET, one)
    k = one[0]
    if status != _VARINT_OK or k > min(n, alphabet) or (n > 0 and k == 0):
        return False, empty, empty, 0
    if k == 0:
        return True, empty, empty, pos
    if pos >= size:
        return False, empty, empty, 0
    coding = buf[pos]
    pos += 1
    used = np.empty(k, dtype=np.int64)
    if coding == _SET_GAPS:
        pos, status = _varint_kernel(buf, pos, k, alphabet - 1, used)
        if status != _VARINT_OK:
            return False, empty, empty, 0
        acc = -1
        for i in range(k):
            acc += used[i] + 1
            used[i] = acc
        if acc >= alphabet:
            return False, empty, empty, 0
    elif coding == _SET_BITMAP:
        bitmap_len = (alphabet + 7) // 8
        if size - pos < bitmap_len:
            return False, empty, empty, 0
        j = 0
        for b in range(8 * bitmap_len):
            if (buf[pos + (b >> 3)] >> (b & 7)) & 1:
                if b >= alphabet or j >= k:
                    return False, empty, empty, 0
                used[j] = b
                j += 1
        if j != k:
            return False, empty, empty, 0
        pos += bitmap_len
    else:
        return False, empty, empty, 0
    counts = np.empty(k, dtype=np.int64)
    pos, status = _varint_kernel(buf, pos, k, n - 1, counts)
    if status != _VARINT_OK:
        return False, empty, empty, 0
    total = 0
    for i in range(k):
        counts[i] += 1
        total += counts[i]
    if total != n:
        return False, empty, empty, 0
    return True, used, counts, pos


def _read_histogram_fast(data: bytes, n: int, alphabet: int) -> Histogram:
    """:func:`read_histogram` of already-checked arguments, through :func:`_histogram_kernel` (about 15 us less
    per chunk); invalid data raises the reference's error. The numpy engine calls the reference."""
    if not use_kernels():
        return read_histogram(data, n, alphabet)
    ok, used, counts, size = _histogram_kernel(np.frombuffer(data, dtype=np.uint8), n, alphabet)
    if not ok:
        read_histogram(data, n, alphabet)  # raises the precise error
        raise SplatpixError(f"{_ERR}: invalid histogram")  # unreachable unless the two disagree
    return Histogram(used, counts, int(size))


_MAP_OK, _MAP_RANGE, _MAP_MISMATCH = range(3)


@njit()
def _map_symbols(index: np.ndarray, symbols: np.ndarray, counts: np.ndarray, out: np.ndarray) -> int:
    """``out = symbols[index]`` after checking every index is in range and that the decoded symbols have exactly
    the transmitted ``counts`` (one pass; the numpy expression is in :func:`decode_categorical`'s docs)."""
    k = counts.shape[0]
    seen = np.zeros(k, dtype=np.int64)
    for i in range(index.shape[0]):
        v = index[i]
        if v < 0 or v >= k:
            return _MAP_RANGE
        seen[v] += 1
        out[i] = symbols[v]
    for j in range(k):
        if seen[j] != counts[j]:
            return _MAP_MISMATCH
    return _MAP_OK


def _map_symbols_np(index: np.ndarray, symbols: np.ndarray, counts: np.ndarray, out: np.ndarray) -> int:
    """:func:`_map_symbols` in numpy (the numpy engine; the tests compare the two)."""
    k = counts.shape[0]
    if index.size and (int(index.min()) < 0 or int(index.max()) >= k):
        return _MAP_RANGE
    if not np.array_equal(np.bincount(index, minlength=k), counts):
        return _MAP_MISMATCH
    out[:] = symbols[index]
    return _MAP_OK


def _model(counts: np.ndarray) -> Any:  # constriction has no type stubs
    return constriction.stream.model.Categorical(counts.astype(np.float64), perfect=False)


# --------------------------------------------------------------------------------------------------------
# Categorical ANS coding
# --------------------------------------------------------------------------------------------------------


def encode_categorical(symbols: np.ndarray, alphabet: int) -> bytes:
    """Entropy-code ``symbols`` (1-D integers in ``[0, alphabet)``, ``alphabet <= 65536``).

    Returns a self-describing payload: the histogram (side information) followed by the ANS words. The
    model is over the symbols that occur only, with probabilities proportional to their counts. An empty
    input or a single distinct symbol codes to the histogram alone (no ANS words).
    """
    alphabet = int_in_range(alphabet, "alphabet", 1, MAX_ALPHABET)
    sym = _check_symbols(symbols, alphabet, "the alphabet")
    counts_all = np.bincount(sym, minlength=alphabet)
    used = np.flatnonzero(counts_all).astype(np.int64)
    counts = counts_all[used].astype(np.int64)
    head = _encode_histogram(used, counts, alphabet)
    if used.size <= 1:
        return head
    index = np.full(alphabet, -1, dtype=np.int32)
    index[used] = np.arange(used.size, dtype=np.int32)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(index[sym], _model(counts))
    words = np.asarray(coder.get_compressed(), dtype=np.uint32)
    return head + words.astype("<u4").tobytes()


def decode_categorical(data: bytes, n: int, alphabet: int) -> np.ndarray:
    """Decode ``n`` symbols over ``[0, alphabet)`` from an :func:`encode_categorical` payload.

    Returns an ``int64`` array of length ``n``. ``data`` is untrusted: any inconsistency raises
    :class:`SplatpixError`. After decoding ``n`` symbols the ANS coder must be exactly empty (no words left
    and back in its initial state) and the decoded symbols must have exactly the transmitted histogram
    (``0 <= index < k`` and ``bincount(index) == counts``, then ``symbols[index]``: one compiled pass,
    :func:`_map_symbols`).
    """
    n = int_in_range(n, "n", 0, MAX_SYMBOLS)
    alphabet = int_in_range(alphabet, "alphabet", 1, MAX_ALPHABET)
    data = bytes(data)
    hist = _read_histogram_fast(data, n, alphabet)
    rest = len(data) - hist.size
    k = hist.symbols.size
    if k <= 1:
        if rest:
            raise SplatpixError(f"{_ERR}: {rest} unexpected bytes after the histogram")
        return np.full(n, hist.symbols[0] if k else 0, dtype=np.int64)
    if rest == 0 or rest % 4:
        raise SplatpixError(f"{_ERR}: ANS data of {rest} bytes (need a positive multiple of 4)")
    words = np.frombuffer(data, dtype="<u4", offset=hist.size).astype(np.uint32)
    if words[-1] == 0:
        raise SplatpixError(f"{_ERR}: ANS data ends in a zero word")
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        index = np.asarray(coder.decode(_model(hist.counts), n))
        exhausted = bool(coder.is_empty())
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise
    except BaseException as e:  # noqa: BLE001 - includes pyo3's PanicException (a BaseException)
        raise SplatpixError(f"{_ERR}: ANS decoder failed ({type(e).__name__})") from e
    if not exhausted:
        raise SplatpixError(f"{_ERR}: ANS data not exhausted after {n} symbols (wrong length or corrupt)")
    out = np.empty(n, dtype=np.int64)
    mapper = _map_symbols if use_kernels() else _map_symbols_np
    status = mapper(index, hist.symbols, hist.counts, out) if index.shape == (n,) else _MAP_RANGE
    if status == _MAP_RANGE:
        raise SplatpixError(f"{_ERR}: ANS decoder returned out-of-range symbols")
    if status == _MAP_MISMATCH:
        raise SplatpixError(f"{_ERR}: decoded symbols do not match the histogram")
    return out


def ideal_code_length_bits(symbols: np.ndarray, alphabet: int) -> float:
    """``n * H`` in bits, ``H`` the empirical entropy of ``symbols`` (the ideal size of the ANS part)."""
    alphabet = int_in_range(alphabet, "alphabet", 1, MAX_ALPHABET)
    sym = _check_symbols(symbols, alphabet, "the alphabet")
    counts = np.bincount(sym, minlength=alphabet)
    counts = counts[counts > 0].astype(np.float64)
    if counts.size <= 1:
        return 0.0
    n = float(counts.sum())
    return float(-(counts * np.log2(counts / n)).sum())


# --------------------------------------------------------------------------------------------------------
# Fixed-length coding
# --------------------------------------------------------------------------------------------------------


def _fixed_len(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


def pack_fixed(symbols: np.ndarray, bits: int) -> bytes:
    """Pack 1-D integer ``symbols`` in ``[0, 2**bits)`` into ``ceil(n * bits / 8)`` bytes.

    Symbol ``i`` occupies stream bits ``i*bits .. i*bits + bits - 1``, least significant bit first; stream bit
    ``j`` is bit ``j % 8`` (LSB = 0) of byte ``j // 8``. The padding bits of the last byte are zero.
    """
    bits = int_in_range(bits, "bits", 1, MAX_FIXED_BITS)
    sym = _check_symbols(symbols, 1 << bits, f"{bits} bits")
    if sym.size == 0:
        return b""
    if bits in _BYTE_ALIGNED:
        return sym.astype(_BYTE_ALIGNED[bits]).tobytes()
    planes = np.empty((sym.size, bits), dtype=np.uint8)
    for b in range(bits):
        planes[:, b] = (sym >> b) & 1
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def unpack_fixed(data: bytes, n: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed`: ``n`` symbols of ``bits`` bits as an ``int64`` array.

    ``data`` must be exactly ``ceil(n * bits / 8)`` bytes with zero padding bits, else
    :class:`SplatpixError`.
    """
    n = int_in_range(n, "n", 0, MAX_SYMBOLS)
    bits = int_in_range(bits, "bits", 1, MAX_FIXED_BITS)
    expected = _fixed_len(n, bits)
    if len(data) != expected:
        raise SplatpixError(
            f"corrupt fixed-length data: {len(data)} bytes, expected {expected} for {n} symbols of {bits} bits"
        )
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if bits in _BYTE_ALIGNED:
        return np.frombuffer(bytes(data), dtype=_BYTE_ALIGNED[bits]).astype(np.int64)
    stream = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8), bitorder="little")
    if stream[n * bits :].any():
        raise SplatpixError("corrupt fixed-length data: nonzero padding bits")
    planes = stream[: n * bits].reshape(n, bits)
    out = np.zeros(n, dtype=np.int64)
    for b in range(bits):
        out |= planes[:, b].astype(np.int64) << b
    return out
