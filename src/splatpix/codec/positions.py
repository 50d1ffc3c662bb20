"""Grid positions: quantise Gaussian centres to a pixel-subdivision grid and code them as an unordered set.

The render is an order-free sum over the Gaussians, so the order in which a file lists them carries no
information. GaussianImage nevertheless pays for it: ``N`` fp16 pairs (32 bits per Gaussian) can describe every
one of the ``N!`` orderings of the same set. This module stores the *set* instead, which saves about
``log2(N!) / N`` bits per Gaussian, and quantises to a grid matched to the image rather than to fp16.

**Grid.** A normalised mean ``(u, v)`` (``x = u * W``, ``y = v * H`` in pixels, the model convention of
:class:`~splatpix.model.gaussians.Gaussians`) is quantised with ``subdiv`` steps per pixel:
``qx = clamp(round(u * W * subdiv), 0, W * subdiv)``, likewise ``qy`` with ``H``. There are
``Lx = W * subdiv + 1`` levels across (``qx = 0`` is the left edge, ``qx = Lx - 1`` the right edge) and
``Ly = H * subdiv + 1`` down; the error is at most ``0.5 / subdiv`` px per axis inside the image (means outside
``[0, 1]`` are clamped to the edge). The arithmetic is done in float64 (exact integers up to ``2^53``) and
dequantisation is ``float32(float64(q) / float64(W * subdiv))``, both correctly rounded IEEE operations, so CPU
and CUDA agree bit for bit. The quantiser (torch, training) is :mod:`.grid`: its ``_grid_symbols`` and
``_grid_values`` are the single definitions used by ``quantize_grid``, ``dequantize_grid`` and ``grid_ste``, so the
value a fake-quantised forward pass sees is exactly the one the decoder reproduces (the decoder's numpy form,
``SGAQuantized.dequantize_arrays``, is tested bit for bit against them). This module is the set coding (numpy).

**Set coding** (:func:`encode_grid_points`). The cells are linearised in Morton (Z-) order (see below) or
row by row, whichever gives the smaller payload; the points are sorted by their cell code (stably, so duplicates
are allowed) and the gaps between consecutive codes (the first from 0) are coded. A gap ``g`` is split
Elias-gamma style into its bit length ``L`` (0 for ``g = 0``) and the ``L - 1`` mantissa bits below its leading
one. The symbol ``(L, top t mantissa bits)`` is coded with :func:`.entropy.encode_categorical` (a histogram is
side information, so the model adapts to the data at no modelling cost beyond the histogram); the other
mantissa bits are stored raw. The encoder tries ``t = 0 .. 3`` (and both orders) and keeps the smallest payload:
at small ``N`` the larger histograms of ``t > 0`` cost more than they save. For ``N`` uniform points among ``M``
cells the gaps are nearly geometric and the payload is within a fraction of a bit per point of
``log2(C(M, N)) / N``; see docs/format.md ("Grid positions payload (method sga)") for the exact byte layout and
the measurements.

**Morton order on rectangles.** The two coordinates have ``bx = bitlen(Lx - 1)`` and ``by = bitlen(Ly - 1)``
bits. The low ``m = min(bx, by)`` bits of both are interleaved (bit ``i`` of ``qx`` to bit ``2i``, bit ``i`` of
``qy`` to bit ``2i + 1``), and the remaining high bits of the longer coordinate go above them, at bit ``2m``.
This is a bijection onto ``[0, 2^(bx + by))`` (less than ``4 * Lx * Ly``), so codes of very elongated images
stay small, unlike square Morton codes. Codes of cells outside the grid are never used; their code ranges come
in large aligned blocks, and only the few gaps that jump over such a block pay for them.

**Untrusted input.** :func:`decode_grid_points` checks every field (scheme byte, varint, histogram and ANS
stream via :func:`.entropy.decode_categorical`, symbol validity, the exact length and zero padding of the raw
bits, that the codes stay inside the code space and that every decoded point lies inside the grid) and raises
:class:`~splatpix.errors.SplatpixError` (``"<source>: corrupt .spix file: ..."``) for anything else. Time and
memory are ``O(n + len(data))``; ``n`` and ``levels`` are the caller's to check against its limits.
"""

from __future__ import annotations

import numpy as np

from ..checks import int_in_range
from ..errors import SplatpixError
from ..jit import njit, use_kernels
from .entropy import decode_categorical, encode_categorical

__all__ = [
    "MAX_CELLS",
    "MAX_SUBDIV",
    "ORDER_MORTON",
    "ORDER_RASTER",
    "decode_grid_points",
    "encode_grid_points",
    "grid_levels",
]

MAX_SUBDIV = 64
"""Largest number of grid steps per pixel."""

MAX_CELLS = 1 << 46
"""Largest grid, ``Lx * Ly`` (the Morton code space is below ``4 * Lx * Ly <= 2^48``; 100 Mpixel images at
``subdiv = 64`` need about ``2^38.6``)."""

ORDER_MORTON = 0
"""Cells linearised in (rectangular) Morton / Z-order (the smaller order on most fitted models)."""

ORDER_RASTER = 1
"""Cells linearised row by row, ``y * Lx + x``."""

_ORDERS = (ORDER_MORTON, ORDER_RASTER)
_MAX_MODEL_BITS = 3  # mantissa bits that may go into the categorical symbol (t)
_LEN_SYMBOLS = 64  # bit lengths 0..63 (at most 48 occur)
_MAX_VARINT_BYTES = 5  # the ANS payload length is < 2^35 bytes
_ERR = "corrupt .spix file"


# ----------------------------------------------------------------------------------------------- checks




def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = size
    except (TypeError, ValueError) as e:
        raise ValueError(f"size must be (height, width), got {size!r}") from e
    return int_in_range(h, "height", 1, MAX_CELLS), int_in_range(w, "width", 1, MAX_CELLS)


def _check_levels(levels: tuple[int, int]) -> tuple[int, int]:
    try:
        lx, ly = levels
    except (TypeError, ValueError) as e:
        raise ValueError(f"levels must be (Lx, Ly), got {levels!r}") from e
    lx = int_in_range(lx, "Lx", 1, MAX_CELLS)
    ly = int_in_range(ly, "Ly", 1, MAX_CELLS)
    if lx * ly > MAX_CELLS:
        raise ValueError(f"grid of {lx} x {ly} levels is too large (at most {MAX_CELLS} cells)")
    return lx, ly


def grid_levels(size: tuple[int, int], subdiv: int) -> tuple[int, int]:
    """``(Lx, Ly) = (W * subdiv + 1, H * subdiv + 1)`` for a native ``size = (H, W)``."""
    h, w = _check_size(size)
    subdiv = int_in_range(subdiv, "subdiv", 1, MAX_SUBDIV)
    return _check_levels((w * subdiv + 1, h * subdiv + 1))


# -------------------------------------------------------------------------------------- cell orders


def _bitlen(v: int) -> int:
    return int(v).bit_length()


def _spread(v: np.ndarray) -> np.ndarray:
    """Bits ``i`` of ``v`` (uint64, < 2^32) moved to bits ``2i``."""
    v = v & np.uint64(0xFFFFFFFF)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                        (2, 0x3333333333333333), (1, 0x5555555555555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _compact(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_spread`: bits ``2i`` of ``v`` (uint64) moved to bits ``i``."""
    v = v & np.uint64(0x5555555555555555)
    for shift, mask in ((1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F), (4, 0x00FF00FF00FF00FF),
                        (8, 0x0000FFFF0000FFFF), (16, 0x00000000FFFFFFFF)):
        v = (v | (v >> np.uint64(shift))) & np.uint64(mask)
    return v


def _code_space(order: int, lx: int, ly: int) -> int:
    """Number of codes of the cell order (all cell codes are below it)."""
    if order == ORDER_RASTER:
        return lx * ly
    return 1 << (_bitlen(lx - 1) + _bitlen(ly - 1))


def _cell_codes(q: np.ndarray, order: int, lx: int, ly: int) -> np.ndarray:
    """int64 codes of grid points ``q`` (``(N, 2)`` int64 inside the grid) in the given cell order."""
    x, y = q[:, 0], q[:, 1]
    if order == ORDER_RASTER:
        return y * lx + x
    bx, by = _bitlen(lx - 1), _bitlen(ly - 1)
    m = min(bx, by)  # <= 23 since Lx * Ly <= 2^46
    low = np.uint64((1 << m) - 1)
    xu, yu = x.astype(np.uint64), y.astype(np.uint64)
    code = _spread(xu & low) | (_spread(yu & low) << np.uint64(1))
    high = (xu if bx >= by else yu) >> np.uint64(m)
    return (code | (high << np.uint64(2 * m))).astype(np.int64)


def _cell_points(codes: np.ndarray, order: int, lx: int, ly: int) -> np.ndarray:
    """Inverse of :func:`_cell_codes` for codes below the code space; points may lie outside the grid (Morton
    codes of unused cells), which the caller checks."""
    if order == ORDER_RASTER:
        return np.stack((codes % lx, codes // lx), axis=1)
    bx, by = _bitlen(lx - 1), _bitlen(ly - 1)
    m = min(bx, by)
    c = codes.astype(np.uint64)
    low = c & np.uint64((1 << (2 * m)) - 1)
    x, y = _compact(low), _compact(low >> np.uint64(1))
    high = c >> np.uint64(2 * m)
    if bx >= by:
        x = x | (high << np.uint64(m))
    else:
        y = y | (high << np.uint64(m))
    return np.stack((x, y), axis=1).astype(np.int64)


# ---------------------------------------------------------------------------------------------- raw bits


_SPAN = 7  # bytes a value of at most 48 bits can touch at a bit offset of at most 7


def _write_bits(values: np.ndarray, widths: np.ndarray) -> bytes:
    """Concatenate the low ``widths[i]`` bits (``<= 48``) of ``values[i]`` (LSB first) into a little-endian bit
    stream: stream bit ``j`` is bit ``j % 8`` of byte ``j // 8``; padding bits are 0."""
    total = int(widths.sum())
    if total == 0:
        return b""
    size = (total + 7) // 8
    starts = np.cumsum(widths) - widths
    shifted = values.astype(np.uint64) << (starts & 7).astype(np.uint64)  # < 2^55
    first = starts >> 3
    out = np.zeros(size + _SPAN, dtype=np.float64)
    for j in range(_SPAN):  # the values' bits do not overlap, so adding the bytes is OR-ing them
        byte = ((shifted >> np.uint64(8 * j)) & np.uint64(0xFF)).astype(np.float64)
        out += np.bincount(first + j, weights=byte, minlength=size + _SPAN)
    return out[:size].astype(np.uint8).tobytes()


def _read_bits(raw: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_write_bits` (``raw``: uint8 array of exactly the right length, checked by the
    caller); O(n) time and memory."""
    n = widths.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.cumsum(widths) - widths
    padded = np.concatenate((raw, np.zeros(_SPAN, dtype=np.uint8)))
    first = starts >> 3
    word = np.zeros(n, dtype=np.uint64)
    for j in range(_SPAN):
        word |= padded[first + j].astype(np.uint64) << np.uint64(8 * j)
    mask = (np.uint64(1) << widths.astype(np.uint64)) - np.uint64(1)
    return ((word >> (starts & 7).astype(np.uint64)) & mask).astype(np.int64)


# ------------------------------------------------------------------------------------------------ varint


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int, bad) -> tuple[int, int]:
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise bad("grid positions: length field truncated")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if i and byte == 0:
                raise bad("grid positions: non-canonical length field")
            return value, pos + i + 1
    raise bad("grid positions: length field too long")


# -------------------------------------------------------------------------------------------- set coding


def _split_gaps(gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bit lengths ``L`` of gaps (int64, ``0 <= g < 2^48``; ``L = 0`` for ``g = 0``), their mantissas
    ``g - 2^(L-1)`` (0 for ``g = 0``) and the mantissa widths ``max(L - 1, 0)``."""
    lengths = np.zeros(gaps.size, dtype=np.int64)
    nz = gaps > 0
    lengths[nz] = np.frexp(gaps[nz].astype(np.float64))[1]  # exact: gaps < 2^53 are exact in float64
    mant_bits = np.maximum(lengths - 1, 0)
    mant = np.where(nz, gaps - (np.int64(1) << mant_bits), 0)
    return lengths, mant, mant_bits


class _Candidate:
    """One way of coding the gaps: the payload without its raw bits (``head``), their size, and how to write
    them (deferred: only the smallest candidate writes its raw bits)."""

    def __init__(self, order: int, t: int, lengths: np.ndarray, mant: np.ndarray, mant_bits: np.ndarray) -> None:
        top_bits = np.minimum(mant_bits, t)
        self.raw_bits = mant_bits - top_bits
        symbols = (lengths << t) | (mant >> self.raw_bits)
        cat = encode_categorical(symbols, _LEN_SYMBOLS << t)
        self.head = bytes([order | t << 2]) + _varint(len(cat)) + cat
        self.size = len(self.head) + (int(self.raw_bits.sum()) + 7) // 8
        self.mant = mant

    def payload(self) -> bytes:
        raw = self.mant & ((np.int64(1) << self.raw_bits) - 1)
        return self.head + _write_bits(raw, self.raw_bits)


def encode_grid_points(q: np.ndarray, levels: tuple[int, int], *, order: int | None = None,
                       model_bits: int | None = None) -> tuple[bytes, np.ndarray]:
    """Code the *set* of grid points ``q`` (``(N, 2)`` integers, ``0 <= q[:, 0] < Lx``, ``0 <= q[:, 1] < Ly``,
    duplicates allowed) with ``levels = (Lx, Ly)``.

    Returns ``(payload, perm)``: :func:`decode_grid_points` returns ``q[perm]`` (the points in cell-code
    order), so the caller stores every other per-Gaussian attribute in the order ``perm`` too. By default the
    encoder tries both cell orders (:data:`ORDER_MORTON`, :data:`ORDER_RASTER`) and ``t = 0 .. 3`` mantissa
    bits in the model, and keeps the smallest payload (Morton and smaller ``t`` on ties); ``order`` and
    ``model_bits`` force one (for experiments). ``N = 0`` gives an empty payload.
    """
    lx, ly = _check_levels(levels)
    if order is not None and order not in _ORDERS:
        raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")
    orders = _ORDERS if order is None else (order,)
    ts = range(_MAX_MODEL_BITS + 1) if model_bits is None else \
        [int_in_range(model_bits, "model_bits", 0, _MAX_MODEL_BITS)]
    arr = np.asarray(q)
    if arr.ndim != 2 or arr.shape[1] != 2 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"q must be an (N, 2) integer array, got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    n = arr.shape[0]
    if n == 0:
        return b"", np.zeros(0, dtype=np.int64)
    if arr.min() < 0 or arr[:, 0].max() >= lx or arr[:, 1].max() >= ly:
        raise ValueError(f"grid points must lie in [0, {lx}) x [0, {ly})")
    best: _Candidate | None = None
    best_perm = np.zeros(0, dtype=np.int64)
    for o in orders:
        codes = _cell_codes(arr, o, lx, ly)
        perm = np.argsort(codes, kind="stable").astype(np.int64)
        split = _split_gaps(np.diff(codes[perm], prepend=0))
        for t in ts:
            cand = _Candidate(o, t, *split)
            if best is None or cand.size < best.size:
                best, best_perm = cand, perm
    assert best is not None
    return best.payload(), best_perm


def decode_grid_points(data: bytes, n: int, levels: tuple[int, int], source: str = "<bytes>") -> np.ndarray:
    """Decode the ``(N, 2)`` int64 grid points of an :func:`encode_grid_points` payload (untrusted ``data``),
    in cell-code order. ``n`` and ``levels`` come from the caller (already checked against its limits).

    Raises :class:`SplatpixError` (``"<source>: corrupt .spix file: ..."``) for any inconsistency.
    """
    n = int_in_range(n, "n", 0, 1 << 40)
    lx, ly = _check_levels(levels)
    data = bytes(data)

    def bad(msg: str) -> SplatpixError:
        return SplatpixError(f"{source}: {_ERR}: {msg}")

    if n == 0:
        if data:
            raise bad(f"grid positions: {len(data)} bytes for no Gaussians")
        return np.zeros((0, 2), dtype=np.int64)
    if not data:
        raise bad("grid positions payload is empty")
    scheme = data[0]
    order, t = scheme & 3, (scheme >> 2) & 3
    if scheme >> 4 or order not in _ORDERS:
        raise bad(f"grid positions: unknown scheme byte {scheme}")
    cat_len, pos = _read_varint(data, 1, bad)
    if cat_len > len(data) - pos:
        raise bad(f"grid positions: symbol stream of {cat_len} bytes exceeds the payload")
    try:
        sym = decode_categorical(data[pos:pos + cat_len], n, _LEN_SYMBOLS << t)
    except SplatpixError as e:
        raise bad(f"grid positions: {e}") from None
    pos += cat_len

    raw = np.frombuffer(data, dtype=np.uint8, offset=pos)
    if not use_kernels():
        try:
            return _points_reference(sym, t, raw, order, lx, ly)
        except SplatpixError as e:
            raise bad(str(e)) from None
    space = _code_space(order, lx, ly)
    pts = np.empty((n, 2), dtype=np.int64)
    status, expected = _points_kernel(sym, t, raw, order, lx, ly, _bitlen(lx - 1), _bitlen(ly - 1), space, pts)
    if status != _PTS_OK:
        raise bad(_points_error(status, len(data) - pos, expected))
    return pts


def _points_reference(sym: np.ndarray, t: int, raw_bytes: np.ndarray, order: int, lx: int, ly: int) -> np.ndarray:
    """Numpy oracle of :func:`_points_kernel` (the tests compare the two on valid and corrupt input): the points
    of the gap symbols ``sym`` (``(L << t) | top``) and the raw mantissa bits ``raw_bytes``, or
    :class:`SplatpixError` with the kernel's message (a stream with several defects may name a different one)."""
    space = _code_space(order, lx, ly)
    max_len = _bitlen(space - 1)  # the longest possible gap
    lengths, top = sym >> t, sym & ((1 << t) - 1)
    mant_bits = np.maximum(lengths - 1, 0)
    top_bits = np.minimum(mant_bits, t)
    if int(lengths.max()) > max_len or np.any(top >> top_bits):
        raise SplatpixError(_points_error(_PTS_SYMBOL, 0, 0))
    raw_bits = mant_bits - top_bits
    total = int(raw_bits.sum())
    expected = (total + 7) // 8
    if raw_bytes.size != expected:
        raise SplatpixError(_points_error(_PTS_LENGTH, raw_bytes.size, expected))
    if total % 8 and int(raw_bytes[-1]) >> (total % 8):
        raise SplatpixError(_points_error(_PTS_PADDING, 0, 0))
    raw = _read_bits(raw_bytes, raw_bits)
    nz = lengths > 0
    gaps = np.where(nz, (np.int64(1) << mant_bits) + (top << raw_bits) + raw, 0)
    codes = np.cumsum(gaps)  # each gap < 2^48: a wrap-around shows up as a decrease
    if np.any(codes[1:] < codes[:-1]) or int(codes[0]) < 0 or int(codes[-1]) >= space:
        raise SplatpixError(_points_error(_PTS_CODE, 0, 0))
    pts = _cell_points(codes, order, lx, ly)
    if int(pts[:, 0].max()) >= lx or int(pts[:, 1].max()) >= ly:
        raise SplatpixError(_points_error(_PTS_POINT, 0, 0))
    return pts


_PTS_OK, _PTS_SYMBOL, _PTS_LENGTH, _PTS_PADDING, _PTS_CODE, _PTS_POINT = range(6)


def _points_error(status: int, got: int, expected: int) -> str:
    if status == _PTS_SYMBOL:
        return "grid positions: invalid gap symbol"
    if status == _PTS_LENGTH:
        return f"grid positions: {got} bytes of raw bits, expected {expected}"
    if status == _PTS_PADDING:
        return "grid positions: nonzero padding bits"
    if status == _PTS_CODE:
        return "grid positions: cell codes outside the grid"
    return "grid positions: point outside the grid"


@njit(inline="always")
def _compact1(v: int) -> int:
    """:func:`_compact` of one int64 (``0 <= v < 2^62``)."""
    v &= 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    return (v | (v >> 16)) & 0x00000000FFFFFFFF


@njit()
def _points_kernel(sym: np.ndarray, t: int, raw: np.ndarray, order: int, lx: int, ly: int, bx: int, by: int,
                   space: int, out: np.ndarray) -> tuple[int, int]:
    """The grid points of a decoded gap-symbol stream, in one pass after a validating one: each gap's raw mantissa
    bits (LSB first), the running cell code and its cell, into ``out`` ``(n, 2)``. Returns ``(status, expected
    raw bytes)``; :func:`_points_reference` is its numpy oracle and names the same defects (a symbol that cannot
    occur, the raw bits' exact length and zero padding, a code outside the code space, a point outside the grid).
    Codes stay below ``space <= 2^48`` after every step, so nothing overflows."""
    n = sym.shape[0]
    max_len = 0
    while (space - 1) >> max_len:
        max_len += 1
    tmask = (1 << t) - 1
    total = 0
    for i in range(n):
        length = sym[i] >> t
        mb = max(length - 1, 0)
        tb = min(mb, t)
        if length > max_len or ((sym[i] & tmask) >> tb) != 0:
            return _PTS_SYMBOL, 0
        total += mb - tb
    expected = (total + 7) // 8
    if raw.shape[0] != expected:
        return _PTS_LENGTH, expected
    if total % 8 and (np.int64(raw[expected - 1]) >> (total % 8)) != 0:
        return _PTS_PADDING, expected
    m = min(bx, by)
    low_mask = (1 << (2 * m)) - 1
    bit = 0
    code = 0
    for i in range(n):
        length = sym[i] >> t
        if length > 0:
            mb = length - 1
            tb = min(mb, t)
            rb = mb - tb
            v = 0
            got = 0
            while got < rb:
                off = bit & 7
                take = min(8 - off, rb - got)
                v |= ((np.int64(raw[bit >> 3]) >> off) & ((1 << take) - 1)) << got
                got += take
                bit += take
            code += (1 << mb) + ((sym[i] & tmask) << rb) + v
        if code >= space:
            return _PTS_CODE, expected
        if order == ORDER_RASTER:
            x, y = code % lx, code // lx
        else:
            low = code & low_mask
            x, y = _compact1(low), _compact1(low >> 1)
            if bx >= by:
                x |= (code >> (2 * m)) << m
            else:
                y |= (code >> (2 * m)) << m
        if x >= lx or y >= ly:
            return _PTS_POINT, expected
        out[i, 0] = x
        out[i, 1] = y
    return _PTS_OK, expected
