"""Method ``gaussianimage``: GaussianImage's codec (fp16 positions, 6-bit learned covariance quantiser, residual VQ
colours), with entropy coding where it is smaller.

Section payloads (the container itself is :mod:`.bitstream`, documented in docs/format.md):

* ``POSITIONS``: mode byte ``0`` then the ``(N, 2)`` fp16 bit patterns, little-endian uint16, row-major. Not
  entropy coded (as GaussianImage: 16-bit patterns of continuous values have almost no redundancy to exploit
  with a per-symbol model).
* ``COV_QUANT_PARAMS``: ``cov_bits`` (u8), then 3 float32 scales and 3 float32 offsets (little-endian).
* ``COVARIANCE``: policy byte (``0`` fixed-length only, ``1`` adaptive), then for each Cholesky channel
  ``l11, l21, l22`` a chunk: u32 length, then a mode byte and the channel's ``N`` symbols, either packed with
  ``cov_bits`` bits each (mode 0, :func:`.entropy.pack_fixed`) or as an :func:`.entropy.encode_categorical`
  payload over ``2^cov_bits`` (mode 1). The adaptive encoder writes whichever is smaller.
* ``COLOUR_INDICES``: policy byte, stages (u8), codebook size K (u16), then one chunk per stage as above for the
  stage's ``N`` indices (``ceil(log2 K)`` bits each, or entropy coded over K).
* ``CODEBOOKS``: stages (u8), K (u16), channels (u8), then ``stages * K * C`` float32 values.
* ``METADATA`` (optional): JSON with the encoder version and settings.

Policy 1 is the default (entropy coding with ``constriction`` wherever it is smaller); policy 0 is
GaussianImage's fixed-length budget, kept for comparison (``fixed_length=True``). bpp is always measured on
the whole file.

This module is the format (numpy: what a decoder needs, no torch); the QAT state that produces the symbols is in
:mod:`.gaussianimage_qat`, imported when an encode starts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import SplatpixError
from .. import bitstream as bs
from .. import symbols
from ..quantized import QuantizedGaussians
from ..registry import CodecMethod, register

__all__ = ["METHOD", "METHOD_ID", "VQ_CODEBOOK", "pack", "unpack_sections"]

METHOD_ID = 0
"""The header byte of method ``gaussianimage`` (docs/format.md)."""
VQ_CODEBOOK = 8
"""Codewords per colour VQ stage of GaussianImage's codec (2 stages x 8: 6 bits per Gaussian)."""


def pack(q: QuantizedGaussians, *, fixed_length: bool = False, metadata: dict[str, Any] | None = None,
         options: None = None) -> bytes:
    """The ``.spix`` bytes of a quantised model."""
    mode = symbols.MODE_FIXED if fixed_length else symbols.MODE_ENTROPY
    h, w = q.size
    n = q.n
    header = bs.SpixHeader(width=w, height=h, channels=q.channels, method=METHOD_ID, n_gaussians=n)
    pos = bytes([0]) + np.ascontiguousarray(q.position_symbols, dtype="<u2").tobytes()
    qparams = bytes([q.cov_bits]) + np.concatenate((q.cov_scale, q.cov_offset)).astype("<f4").tobytes()
    cov = bytes([mode]) + symbols.chunks(
        [symbols.code(np.ascontiguousarray(q.cov_symbols[:, j]), 1 << q.cov_bits, mode) for j in range(3)])
    return symbols.write_file(header, [(bs.POSITIONS, pos), (bs.COV_QUANT_PARAMS, qparams), (bs.COVARIANCE, cov)],
                              q.colour_indices, q.codebooks, mode, metadata)


def unpack_sections(header: bs.SpixHeader, sections: dict[int, bytes], source: str) -> QuantizedGaussians:
    """Parse the (untrusted) sections of a ``gaussianimage`` file."""
    symbols.require_sections(
        sections, (bs.POSITIONS, bs.COV_QUANT_PARAMS, bs.COVARIANCE, bs.COLOUR_INDICES, bs.CODEBOOKS), source)
    n, c = header.n_gaussians, header.channels

    def bad(msg: str) -> SplatpixError:
        return SplatpixError(f"{source}: corrupt .spix file: {msg}")

    p = sections[bs.POSITIONS]
    if len(p) != 1 + 4 * n or p[0] != 0:
        raise bad("positions section has the wrong size or mode")
    positions = np.frombuffer(p, dtype="<u2", offset=1).reshape(n, 2).astype(np.uint16)

    qp = sections[bs.COV_QUANT_PARAMS]
    if len(qp) != 1 + 24 or not 1 <= qp[0] <= 16:
        raise bad("covariance quantiser parameters have the wrong size or bit depth")
    cov_bits = int(qp[0])
    vals = np.frombuffer(qp, dtype="<f4", offset=1).astype(np.float32)
    cov_scale, cov_offset = vals[:3].copy(), vals[3:].copy()

    cv = memoryview(sections[bs.COVARIANCE])
    if len(cv) < 1 or cv[0] not in (symbols.MODE_FIXED, symbols.MODE_ENTROPY):
        raise bad("covariance section has an unknown mode")
    cov_mode = cv[0]
    cov_chunks = symbols.read_chunks(cv[1:], 3, "covariance section", source)
    cov = np.stack([symbols.uncode(ch, n, 1 << cov_bits, cov_mode, source) for ch in cov_chunks], axis=1) if n else \
        np.zeros((0, 3), dtype=np.int64)

    idx, books = symbols.read_colour_payloads(sections, n, c, source)

    try:
        return QuantizedGaussians(size=(header.height, header.width), channels=c, position_symbols=positions,
                                  cov_symbols=cov, cov_scale=cov_scale, cov_offset=cov_offset, colour_indices=idx,
                                  codebooks=books, cov_bits=cov_bits)
    except SplatpixError as e:
        raise bad(str(e)) from None


def _info(q: QuantizedGaussians) -> dict[str, Any]:
    return {"cov_bits": q.cov_bits}


METHOD = register(CodecMethod(
    name="gaussianimage", method_id=METHOD_ID, summary="GaussianImage's codec", fit_defaults={},
    vq_codebook=VQ_CODEBOOK, options_type=None, prepare_entry="splatpix.codec.methods.gaussianimage_qat:prepare",
    pack=pack, unpack=unpack_sections, info=_info,
    decode_bytes_per_gaussian=128))  # measured peak: 79 B (tracemalloc, N = 300 000)
