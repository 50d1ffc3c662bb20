"""The quantised model of the GaussianImage codec and the decoders' dequantisation, in numpy (no torch).

:class:`QuantizedGaussians` holds exactly the symbols and side information a ``gaussianimage`` file stores;
:meth:`~QuantizedGaussians.dequantize_arrays` turns them into the float32 model. The arithmetic is the training
definitions' of :mod:`.quantize` (``q * scale + offset``; the residual-VQ sum in stage order), bit for bit: the
numpy forms (``_dequant_uniform_np``, ``_rvq_lookup_np``) are the oracles of the compiled ones the decoders use
(:func:`dequant_uniform_rows`, :func:`rvq_lookup`), and the tests compare all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SplatpixError
from ..jit import njit, use_kernels
from ..model.arrays import GaussianArrays

__all__ = ["QuantizedGaussians", "dequant_uniform_rows", "dequantize_positions_np", "rvq_lookup"]


def dequantize_positions_np(symbols: np.ndarray) -> np.ndarray:
    """Float32 values of the fp16 bit patterns ``symbols`` (``uint16``)."""
    s = np.ascontiguousarray(symbols, dtype=np.uint16)
    return s.view(np.float16).astype(np.float32)


def _dequant_uniform_np(q: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """:func:`.quantize._dequant_uniform` in float32 numpy, bit for bit (IEEE multiply, then add), for decoders: torch's
    indexing and arithmetic run on its OpenMP pool, whose threads keep spinning afterwards and slow the numba
    render that follows on a 2-core machine (docs/results.md, "Codec: decode speed at equal N")."""
    with np.errstate(over="ignore", invalid="ignore"):  # a hostile file's infinities: refused after dequantising
        return q.astype(np.float32) * scale.astype(np.float32) + offset.astype(np.float32)


@njit()
def _dequant_rows_kernel(q: np.ndarray, row: np.ndarray, scale: np.ndarray, offset: np.ndarray,
                         out: np.ndarray) -> None:
    # IEEE float32 multiply, then add (no fastmath: no fused multiply-add), as _dequant_uniform_np
    for i in range(q.shape[0]):
        r = row[i]
        for j in range(q.shape[1]):
            out[i, j] = np.float32(q[i, j]) * scale[r, j] + offset[r, j]


def dequant_uniform_rows(q: np.ndarray, row: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``_dequant_uniform_np(q, scale[row], offset[row])`` in one compiled pass (the decoders' form; tested bit for
    bit against it): ``q`` ``(N, C)`` integer symbols below 2^24, ``row`` ``(N,)`` indices into the ``(T, C)``
    ``scale`` and ``offset`` (a quantiser per row group: sga's tiers; GaussianImage's one quantiser is ``T = 1``).
    Replaces three gathers and three full-size temporaries (0.2 ms of GaussianImage's parse at N = 9000)."""
    q = np.ascontiguousarray(q, dtype=np.int64)
    row = np.ascontiguousarray(row, dtype=np.int64)
    scale = np.ascontiguousarray(scale, dtype=np.float32).reshape(-1, q.shape[1])
    offset = np.ascontiguousarray(offset, dtype=np.float32).reshape(-1, q.shape[1])
    if row.shape != (q.shape[0],) or (row.size and (row.min() < 0 or row.max() >= scale.shape[0])):
        raise ValueError("row index outside the quantisers")
    if not use_kernels():
        return _dequant_uniform_np(q, scale[row], offset[row])
    out = np.empty(q.shape, dtype=np.float32)
    _dequant_rows_kernel(q, row, scale, offset, out)
    return out


def _rvq_lookup_np(codebooks: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """:func:`.quantize._rvq_lookup` in float32 numpy, bit for bit (same stage order), for decoders (see
    :func:`_dequant_uniform_np`)."""
    out = codebooks[0][idx[:, 0]]
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing codebooks: refused after dequantising
        for s in range(1, codebooks.shape[0]):
            out = out + codebooks[s][idx[:, s]]
    return np.ascontiguousarray(out, dtype=np.float32)


@njit()
def _rvq_lookup_kernel(codebooks: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
    for i in range(idx.shape[0]):
        for c in range(codebooks.shape[2]):
            v = codebooks[0, idx[i, 0], c]
            for s in range(1, codebooks.shape[0]):  # float32 adds in stage order, as _rvq_lookup
                v = v + codebooks[s, idx[i, s], c]
            out[i, c] = v


def rvq_lookup(codebooks: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """:func:`_rvq_lookup_np` in one compiled pass (the decoders' form; tested bit for bit against it and the torch
    definition): ``idx`` ``(N, stages)`` into ``codebooks`` ``(stages, K, C)``. The indices are checked here as
    well as by the quantised-model classes (numba does not bound-check): out of range raises ValueError."""
    codebooks = np.ascontiguousarray(codebooks, dtype=np.float32)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if idx.ndim != 2 or idx.shape[1] != codebooks.shape[0] or (idx.size and (
            idx.min() < 0 or idx.max() >= codebooks.shape[1])):
        raise ValueError("colour indices do not match the codebooks")
    if not use_kernels():
        return _rvq_lookup_np(codebooks, idx)
    out = np.empty((idx.shape[0], codebooks.shape[2]), dtype=np.float32)
    _rvq_lookup_kernel(codebooks, idx, out)
    return out


@dataclass
class QuantizedGaussians:
    """A quantised Cholesky model: exactly the symbols and side information the file stores.

    Attributes:
        size: native ``(height, width)``.
        channels: colour channels C.
        position_symbols: ``(N, 2)`` uint16 fp16 bit patterns of the normalised means.
        cov_symbols: ``(N, 3)`` int64 symbols in ``[0, 2^cov_bits)`` of ``(l11, l21, l22)``.
        cov_scale, cov_offset: ``(3,)`` float32 quantiser step and offset per Cholesky channel.
        colour_indices: ``(N, stages)`` int64 codeword indices in ``[0, K)``.
        codebooks: ``(stages, K, C)`` float32 residual-VQ codebooks.
        cov_bits: bits per covariance symbol (6 in GaussianImage).

    Construction validates and normalises the arrays (dtypes, shapes, symbol ranges, finiteness) and raises
    :class:`SplatpixError` when they are inconsistent, so a decoder can build one from untrusted data.
    :meth:`dequantize` depends only on these fields.
    """

    size: tuple[int, int]
    channels: int
    position_symbols: np.ndarray
    cov_symbols: np.ndarray
    cov_scale: np.ndarray
    cov_offset: np.ndarray
    colour_indices: np.ndarray
    codebooks: np.ndarray
    cov_bits: int = 6

    def __post_init__(self) -> None:
        def bad(msg: str) -> SplatpixError:
            return SplatpixError(f"invalid quantised model: {msg}")

        try:
            h, w = (int(v) for v in self.size)
        except (TypeError, ValueError) as e:
            raise bad(f"size must be (height, width), got {self.size!r}") from e
        if h <= 0 or w <= 0:
            raise bad(f"size must be positive, got {(h, w)}")
        self.size = (h, w)
        if not isinstance(self.cov_bits, int | np.integer) or not 1 <= int(self.cov_bits) <= 16:
            raise bad(f"cov_bits must be an integer in [1, 16], got {self.cov_bits!r}")
        self.cov_bits = int(self.cov_bits)
        if not isinstance(self.channels, int | np.integer) or int(self.channels) < 1:
            raise bad(f"channels must be an integer >= 1, got {self.channels!r}")
        self.channels = int(self.channels)

        self.position_symbols = np.ascontiguousarray(self.position_symbols)
        if self.position_symbols.dtype != np.uint16 or self.position_symbols.ndim != 2 \
                or self.position_symbols.shape[1] != 2:
            raise bad(f"position_symbols must be a (N, 2) uint16 array, got {self.position_symbols.dtype} "
                      f"{self.position_symbols.shape}")
        n = self.position_symbols.shape[0]
        if not np.isfinite(self.position_symbols.view(np.float16)).all():
            raise bad("non-finite position")

        self.cov_symbols = _int_array(self.cov_symbols, (n, 3), "cov_symbols", bad)
        if n and (self.cov_symbols.min() < 0 or self.cov_symbols.max() >= 1 << self.cov_bits):
            raise bad(f"cov_symbols outside [0, {1 << self.cov_bits})")
        self.cov_scale = _float_array(self.cov_scale, (3,), "cov_scale", bad)
        self.cov_offset = _float_array(self.cov_offset, (3,), "cov_offset", bad)
        if not (self.cov_scale > 0).all():
            raise bad("cov_scale must be positive")

        self.codebooks = np.ascontiguousarray(self.codebooks)
        if self.codebooks.ndim != 3 or self.codebooks.shape[0] < 1 or self.codebooks.shape[1] < 1 \
                or self.codebooks.shape[2] != self.channels:
            raise bad(f"codebooks must have shape (stages, K, {self.channels}), got {self.codebooks.shape}")
        self.codebooks = _float_array(self.codebooks, self.codebooks.shape, "codebooks", bad)
        stages, k, _ = self.codebooks.shape
        self.colour_indices = _int_array(self.colour_indices, (n, stages), "colour_indices", bad)
        if n and (self.colour_indices.min() < 0 or self.colour_indices.max() >= k):
            raise bad(f"colour_indices outside [0, {k})")

    @property
    def n(self) -> int:
        return int(self.position_symbols.shape[0])

    @property
    def stages(self) -> int:
        return int(self.codebooks.shape[0])

    @property
    def codebook_size(self) -> int:
        return int(self.codebooks.shape[1])

    def dequantize_arrays(self) -> GaussianArrays:
        """The float32 Cholesky model these symbols decode to, as numpy arrays."""
        means = dequantize_positions_np(self.position_symbols)
        cov = dequant_uniform_rows(self.cov_symbols, np.zeros(self.n, dtype=np.int64), self.cov_scale,
                                   self.cov_offset)
        colours = rvq_lookup(self.codebooks, self.colour_indices)
        return GaussianArrays(means, cov, colours, "cholesky", self.size)

    def dequantize(self) -> Any:
        """:meth:`dequantize_arrays` as a torch :class:`~splatpix.model.gaussians.Gaussians` (CPU tensors)."""
        from ..model.gaussians import Gaussians

        return Gaussians.from_arrays(self.dequantize_arrays())


def _int_array(a: object, shape: tuple[int, ...], name: str, bad) -> np.ndarray:
    arr = np.asarray(a)
    if arr.shape != shape or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise bad(f"{name} must be an integer array of shape {shape}, got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _float_array(a: object, shape: tuple[int, ...], name: str, bad) -> np.ndarray:
    arr = np.asarray(a)
    if arr.shape != tuple(shape) or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype,
                                                                                              np.integer)):
        raise bad(f"{name} must be a numeric array of shape {tuple(shape)}, got {arr.dtype} {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise bad(f"non-finite value in {name}")
    return arr
