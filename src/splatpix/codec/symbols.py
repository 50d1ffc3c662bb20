"""The symbol layer every ``.spix`` method shares: length-prefixed chunks, symbol chunks (fixed-length or entropy
coded, whichever is smaller) and the colour payloads (residual-VQ indices and codebooks).

A symbol chunk is a mode byte (:data:`MODE_FIXED` or :data:`MODE_ENTROPY`) followed by the symbols, packed with
``ceil(log2 alphabet)`` bits each (:func:`.entropy.pack_fixed`) or as an :func:`.entropy.encode_categorical`
payload. A section's policy byte says which modes its chunks may use: policy 0 is GaussianImage's fixed-length
budget, policy 1 lets each chunk take the smaller form. The byte layout is in docs/format.md.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from ..errors import SplatpixError
from . import bitstream as bs
from .entropy import decode_categorical, encode_categorical, pack_fixed, unpack_fixed

__all__ = ["MODE_ENTROPY", "MODE_FIXED", "bits_for", "chunks", "code", "colour_payloads", "read_chunks",
           "read_colour_payloads", "require_sections", "uncode", "write_file", "write_sections"]

MODE_FIXED = 0
MODE_ENTROPY = 1
_U32 = struct.Struct("<I")


def chunks(parts: list[bytes]) -> bytes:
    """``parts`` as one payload, each prefixed with its length (u32)."""
    return b"".join(_U32.pack(len(p)) + p for p in parts)


def read_chunks(payload: memoryview, count: int, what: str, source: str) -> list[bytes]:
    """Exactly ``count`` length-prefixed chunks filling ``payload`` (untrusted; ``what`` names it in errors)."""
    out, pos = [], 0
    for _ in range(count):
        if pos + 4 > len(payload):
            raise SplatpixError(f"{source}: corrupt .spix file: {what} truncated")
        (n,) = _U32.unpack_from(payload, pos)
        pos += 4
        if n > len(payload) - pos:
            raise SplatpixError(f"{source}: corrupt .spix file: {what} chunk length {n} exceeds the section")
        out.append(bytes(payload[pos:pos + n]))
        pos += n
    if pos != len(payload):
        raise SplatpixError(f"{source}: corrupt .spix file: {len(payload) - pos} trailing bytes in {what}")
    return out


def bits_for(alphabet: int) -> int:
    """Bits per symbol of a fixed-length chunk over ``alphabet`` symbols."""
    return max(1, math.ceil(math.log2(alphabet)))


def code(symbols: np.ndarray, alphabet: int, mode: int) -> bytes:
    """One chunk: a mode byte and the symbols, fixed-length or entropy coded, whichever is smaller (mode 1),
    or always fixed-length (mode 0). At small N the histogram side information can outweigh the saving."""
    fixed = bytes([MODE_FIXED]) + pack_fixed(symbols, bits_for(alphabet))
    if mode == MODE_FIXED:
        return fixed
    coded = bytes([MODE_ENTROPY]) + encode_categorical(symbols, alphabet)
    return coded if len(coded) < len(fixed) else fixed


def uncode(data: bytes, n: int, alphabet: int, mode: int, source: str) -> np.ndarray:
    """The ``n`` symbols of a chunk written by :func:`code` with policy ``mode`` (untrusted)."""
    if len(data) < 1 or data[0] not in (MODE_FIXED, MODE_ENTROPY) or (mode == MODE_FIXED and data[0] != MODE_FIXED):
        raise SplatpixError(f"{source}: corrupt .spix file: symbol chunk with an invalid mode")
    try:
        if data[0] == MODE_ENTROPY:
            return decode_categorical(data[1:], n, alphabet)
        return unpack_fixed(data[1:], n, bits_for(alphabet))
    except SplatpixError as e:  # the coder's message, with the file's name
        raise SplatpixError(f"{source}: {e}") from None


def colour_payloads(indices: np.ndarray, codebooks: np.ndarray, mode: int) -> tuple[bytes, bytes]:
    """The ``COLOUR_INDICES`` and ``CODEBOOKS`` payloads of ``(N, stages)`` indices and ``(stages, K, C)``
    codebooks."""
    stages, k, c = codebooks.shape
    col = bytes([mode, stages]) + struct.pack("<H", k) + chunks(
        [code(np.ascontiguousarray(indices[:, s]), k, mode) for s in range(stages)])
    books = bytes([stages]) + struct.pack("<HB", k, c) + np.ascontiguousarray(codebooks, dtype="<f4").tobytes()
    return col, books


def write_file(header: bs.SpixHeader, sections: list[tuple[int, bytes]], indices: np.ndarray, codebooks: np.ndarray,
               mode: int, metadata: dict | None) -> bytes:
    """A method's ``.spix`` bytes: its own required ``sections`` (type, payload) in order, then ``COLOUR_INDICES``
    and ``CODEBOOKS`` (:func:`colour_payloads`) and, when ``metadata`` is not empty, the optional ``METADATA``."""
    col, books = colour_payloads(indices, codebooks, mode)
    return write_sections(header, [*sections, (bs.COLOUR_INDICES, col), (bs.CODEBOOKS, books)], metadata)


def write_sections(header: bs.SpixHeader, sections: list[tuple[int, bytes]], metadata: dict | None) -> bytes:
    """``.spix`` bytes of the required ``sections`` (type, payload) in order and, when ``metadata`` is not empty,
    the optional ``METADATA``."""
    framed = [(t, payload, False) for t, payload in sections]
    if metadata:
        framed.append((bs.METADATA, bs.encode_metadata(metadata), True))
    return bs.write_spix(header, framed)


def read_colour_payloads(sections: dict[int, bytes], n: int, c: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse (untrusted) ``COLOUR_INDICES`` and ``CODEBOOKS``: ``(N, stages)`` indices and the codebooks."""

    def bad(msg: str) -> SplatpixError:
        return SplatpixError(f"{source}: corrupt .spix file: {msg}")

    ci = memoryview(sections[bs.COLOUR_INDICES])
    if len(ci) < 4 or ci[0] not in (MODE_FIXED, MODE_ENTROPY):
        raise bad("colour index section is truncated or has an unknown mode")
    col_mode, stages = ci[0], ci[1]
    (k,) = struct.unpack_from("<H", ci, 2)
    if not 1 <= stages <= 16 or not 1 <= k <= 4096:
        raise bad(f"colour quantiser with {stages} stages of {k} codewords is out of range")
    idx_chunks = read_chunks(ci[4:], stages, "colour index section", source)
    idx = np.stack([uncode(ch, n, k, col_mode, source) for ch in idx_chunks], axis=1) if n else \
        np.zeros((0, stages), dtype=np.int64)

    cb = sections[bs.CODEBOOKS]
    if len(cb) < 4:
        raise bad("codebook section truncated")
    cb_stages = cb[0]
    cb_k, cb_c = struct.unpack_from("<HB", cb, 1)
    if (cb_stages, cb_k, cb_c) != (stages, k, c) or len(cb) != 4 + 4 * stages * k * c:
        raise bad("codebook section does not match the colour indices or the channel count")
    books = np.frombuffer(cb, dtype="<f4", offset=4).reshape(stages, k, c).astype(np.float32)
    return idx, books


def require_sections(sections: dict[int, bytes], required: tuple[int, ...], source: str) -> None:
    """A one-line error naming the first of ``required`` that the file lacks."""
    for sec in required:
        if sec not in sections:
            raise SplatpixError(f"{source}: corrupt .spix file: missing section {bs.SECTION_NAMES[sec]}")
