"""Method ``sga``: the structure-guided codec (fit with structure-guided initialisation, then QAT with
grid positions coded as a set and adaptive-bitwidth covariance tiers).

What differs from the GaussianImage codec (:mod:`.gaussianimage`), each measurable on its own (docs/results.md):

* **Fitting**: the structure-guided initialisation, closed-form colours, per-parameter learning rates,
  error-guided placement and (off by default) the geometry-consistent loss of :func:`splatpix.train.fit`
  (:data:`SGA_FIT_DEFAULTS`).
* **Positions** (:mod:`..positions`): quantised to a grid of ``subdiv`` steps per pixel and coded as an
  unordered set; the order of the Gaussians, which the order-free sum does not need, is not paid for.
* **Covariance** (:mod:`..tiers`): Cholesky parameters quantised per tier, a tier's bit depth chosen
  RD-aware; tiers are derived from the decoded positions (no per-Gaussian signalling).
* **Colours** (:mod:`..colours`): by default scalar quantised in YCoCg with an RD-aware bit depth per channel and
  entropy coded (``COLOUR_SCALAR``); ``colour="vq"`` keeps GaussianImage's residual VQ (``COLOUR_INDICES`` and
  ``CODEBOOKS``), which every file written before the scalar colours uses.

Payloads (the byte layout is in docs/format.md, "Method sga"):

* ``GRID_POSITIONS``: ``subdiv`` (u8), then the :func:`..positions.encode_grid_points` payload.
* ``COV_TIERS``: ``k`` (u8), ``n_tiers`` (u8), ``n_tiers - 1`` thresholds (u64, ascending), then per tier:
  ``bits`` (u8), 3 float32 scales, 3 float32 offsets.
* ``COVARIANCE``: policy byte, then for each tier ``t`` and Cholesky channel ``j`` a chunk (:mod:`..symbols`)
  with the symbols of tier ``t``'s Gaussians in file order.
* ``COLOUR_SCALAR`` (:func:`..colours.pack_scalar_colours`), or ``COLOUR_INDICES`` and ``CODEBOOKS`` as in
  :mod:`.gaussianimage`; in file order. A file holds one of the two.

This module is the format (numpy: what a decoder needs, no torch); the tier planning and the QAT state are in
:mod:`.sga_qat`, imported when an encode starts.
"""

from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...checks import is_int, is_number
from ...errors import SplatpixError
from ...model.arrays import GaussianArrays
from ...presets import STRUCTURE_RECIPE
from .. import bitstream as bs
from .. import symbols
from ..colours import ScalarColours, pack_scalar_colours, unpack_scalar_colours
from ..positions import decode_grid_points, encode_grid_points, grid_levels
from ..quantized import dequant_uniform_rows, rvq_lookup
from ..registry import CodecMethod, register
from ..tiers import assign_tiers, tier_order

__all__ = ["METHOD", "METHOD_ID", "SGA_FIT_DEFAULTS", "SGA_VQ_CODEBOOK", "SGAConfig", "SGAQuantized", "pack_sga",
           "unpack_sections"]

METHOD_ID = 1
"""The header byte of method ``sga`` (docs/format.md)."""

SGA_FIT_DEFAULTS: dict[str, Any] = dict(STRUCTURE_RECIPE)
"""FitConfig fields the ``sga`` method sets unless the caller's config says otherwise: structure-guided
initialisation, the closed-form colour solve, a covariance learning rate 10x the others', above 1000 Gaussians a
means' rate proportional to their spacing (x0.45 at N = 5000), and error-guided placement of 5 % of the Gaussians
every 250 steps of the first half. The ablation of each is in docs/results.md."""

SGA_VQ_CODEBOOK = 16
"""Codewords per colour VQ stage of method ``sga`` (GaussianImage's codec: 8): 2 x 16 codewords cost ~2 bits more
per Gaussian than 2 x 8 and keep more of the fitted quality through QAT on smooth, colourful images
(docs/results.md, "Colour codebook size")."""

_MAX_SUBDIV = 64
_MAX_TIERS = 8
_MAX_K = 64
_TIER = struct.Struct("<B3f3f")
COLOUR_CODINGS = ("auto", "scalar", "vq")
POLICY_CONDITIONAL = 2
"""``COVARIANCE`` policy of method sga: ``l21`` and ``l22`` coded in contexts of the ``l11`` symbol's top bits."""
MAX_CONTEXT_BITS = 4


@dataclass
class SGAConfig:
    """Options of the ``sga`` codec beyond fitting and QAT.

    ``subdiv``: grid steps per pixel for positions. ``n_tiers``, ``tier_k``: covariance tiers from the spacing to
    the ``tier_k``-th neighbour. ``tier_bits``: a fixed bit depth
    per tier (e.g. ``(6, 6, 6)``) or ``None`` to choose them RD-aware from ``tier_candidates``.
    ``cov_context_bits``: the widest ``l11`` context the encoder
    tries for ``l21``/``l22`` (0 = no context coding; each bit costs decode time: 1 + 2·2^bits chunks per tier).
    ``colour``: ``"scalar"`` (YCoCg, a uniform quantiser per channel, entropy coded), ``"vq"`` (GaussianImage's
    residual VQ) or ``"auto"`` (both are fine-tuned and coded, the file keeps the one with the smaller
    ``SSE + lambda * bits``, ``lambda`` the bit-depth search's); ``colour_bits``: fixed bits per colour channel
    (e.g. ``(7, 6, 6)``) or ``None`` to choose them RD-aware from ``colour_candidates``, jointly with the tiers'
    bits, each colour bit counted ``colour_rate_weight`` times in that search (an encoder setting, not stored in the
    file; why: docs/notes/2026-12-04-sga-scalar-colour.md).
    """

    subdiv: int = 4
    n_tiers: int = 3
    tier_k: int = 4
    tier_bits: tuple[int, ...] | None = None
    tier_candidates: tuple[int, ...] = (3, 4, 5, 6, 7, 8)
    cov_context_bits: int = 2
    colour: str = "auto"
    colour_bits: tuple[int, ...] | None = None
    colour_candidates: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
    colour_rate_weight: float = 3.0

    def __post_init__(self) -> None:
        def bad(msg: str) -> SplatpixError:
            return SplatpixError(f"invalid sga config: {msg}")

        if not is_int(self.subdiv) or not 1 <= self.subdiv <= _MAX_SUBDIV:
            raise bad(f"subdiv must be an integer in [1, {_MAX_SUBDIV}], got {self.subdiv!r}")
        if not is_int(self.n_tiers) or not 1 <= self.n_tiers <= _MAX_TIERS:
            raise bad(f"n_tiers must be an integer in [1, {_MAX_TIERS}], got {self.n_tiers!r}")
        if not is_int(self.tier_k) or not 1 <= self.tier_k <= _MAX_K:
            raise bad(f"tier_k must be an integer in [1, {_MAX_K}], got {self.tier_k!r}")
        if self.tier_bits is not None:
            tb = tuple(self.tier_bits)
            if len(tb) != self.n_tiers or not all(is_int(b) and 1 <= b <= 16 for b in tb):
                raise bad(f"tier_bits must be {self.n_tiers} integers in [1, 16], got {self.tier_bits!r}")
            self.tier_bits = tuple(int(b) for b in tb)
        if not is_int(self.cov_context_bits) or not 0 <= self.cov_context_bits <= MAX_CONTEXT_BITS:
            raise bad(f"cov_context_bits must be an integer in [0, {MAX_CONTEXT_BITS}], got {self.cov_context_bits!r}")
        cands = tuple(self.tier_candidates)
        if not cands or not all(is_int(b) and 1 <= b <= 16 for b in cands):
            raise bad(f"tier_candidates must be integers in [1, 16], got {self.tier_candidates!r}")
        self.tier_candidates = tuple(int(b) for b in cands)
        if self.colour not in COLOUR_CODINGS:
            raise bad(f"colour must be one of {', '.join(COLOUR_CODINGS)}, got {self.colour!r}")
        if self.colour_bits is not None:
            cb = tuple(self.colour_bits)
            if not cb or not all(is_int(b) and 1 <= b <= 16 for b in cb):
                raise bad(f"colour_bits must be integers in [1, 16] (one per channel), got {self.colour_bits!r}")
            if self.colour == "vq":
                raise bad("colour_bits applies to colour='scalar' or 'auto' only")
            self.colour_bits = tuple(int(b) for b in cb)
        cands = tuple(self.colour_candidates)
        if not cands or not all(is_int(b) and 1 <= b <= 16 for b in cands):
            raise bad(f"colour_candidates must be integers in [1, 16], got {self.colour_candidates!r}")
        self.colour_candidates = tuple(int(b) for b in cands)
        if not is_number(self.colour_rate_weight) or not 0 < self.colour_rate_weight <= 100:
            raise bad(f"colour_rate_weight must be a number in (0, 100], got {self.colour_rate_weight!r}")
        self.colour_rate_weight = float(self.colour_rate_weight)


# ------------------------------------------------------------------------------------------ quantised model


@dataclass
class SGAQuantized:
    """The symbols and side information of an ``sga`` file (attributes in any order; :func:`pack_sga` sorts).

    ``grid``: ``(N, 2)`` int64 grid coordinates (x, y) with ``subdiv`` steps per pixel; ``tier_k``,
    ``thresholds``: the tier definition (:func:`.tiers.assign_tiers`); ``tier_bits``, ``cov_scale``,
    ``cov_offset``: per tier, its bit depth and ``(3,)`` quantiser step/offset; ``cov_symbols``: ``(N, 3)``;
    ``colour_indices``, ``codebooks``: the residual VQ as in :class:`~.quantize.QuantizedGaussians`, or ``None``
    with ``scalar_colours`` (:class:`..colours.ScalarColours`) instead; ``tiers``:
    each Gaussian's tier, derived from ``grid`` when not given (the decoder passes the ones it derived).
    Construction validates everything (a decoder builds one from untrusted data).
    """

    size: tuple[int, int]
    channels: int
    subdiv: int
    grid: np.ndarray
    tier_k: int
    thresholds: list[int]
    tier_bits: list[int]
    cov_scale: np.ndarray
    cov_offset: np.ndarray
    cov_symbols: np.ndarray
    colour_indices: np.ndarray | None
    codebooks: np.ndarray | None
    tiers: np.ndarray | None = field(default=None, repr=False)
    scalar_colours: ScalarColours | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        def bad(msg: str) -> SplatpixError:
            return SplatpixError(f"invalid quantised model: {msg}")

        h, w = (int(v) for v in self.size)
        self.size = (h, w)
        self.grid = np.ascontiguousarray(self.grid, dtype=np.int64)
        if self.grid.ndim != 2 or self.grid.shape[1] != 2:
            raise bad(f"grid must be (N, 2), got {self.grid.shape}")
        n = self.grid.shape[0]
        lx, ly = w * self.subdiv + 1, h * self.subdiv + 1
        if n and (self.grid.min() < 0 or self.grid[:, 0].max() >= lx or self.grid[:, 1].max() >= ly):
            raise bad("grid position outside the image")
        t = len(self.tier_bits)
        if not 1 <= t <= _MAX_TIERS or len(self.thresholds) != t - 1:
            raise bad("tier definition is inconsistent")
        if any(b < a for a, b in zip(self.thresholds, self.thresholds[1:], strict=False)):
            raise bad("tier thresholds are not ascending")
        self.cov_scale = np.ascontiguousarray(self.cov_scale, dtype=np.float32).reshape(t, 3)
        self.cov_offset = np.ascontiguousarray(self.cov_offset, dtype=np.float32).reshape(t, 3)
        if not (np.isfinite(self.cov_scale).all() and np.isfinite(self.cov_offset).all()
                and (self.cov_scale > 0).all()):
            raise bad("covariance quantiser parameters must be finite with positive steps")
        self.cov_symbols = np.ascontiguousarray(self.cov_symbols, dtype=np.int64).reshape(n, 3)
        if self.tiers is None:
            self.tiers = assign_tiers(self.grid, self.thresholds, self.tier_k)
        else:  # the caller derived them from this grid already (the decoder): check the shape and range only
            self.tiers = np.ascontiguousarray(self.tiers, dtype=np.int64)
            if self.tiers.shape != (n,) or (n and (self.tiers.min() < 0 or self.tiers.max() >= t)):
                raise bad("tiers do not match the Gaussians or the tier definition")
        limit = np.asarray([1 << b for b in self.tier_bits], dtype=np.int64)[self.tiers]
        if n and (self.cov_symbols.min() < 0 or (self.cov_symbols >= limit[:, None]).any()):
            raise bad("covariance symbol outside its tier's range")
        if (self.scalar_colours is None) == (self.codebooks is None or self.colour_indices is None):
            raise bad("give either the residual VQ (indices and codebooks) or scalar colours")
        if self.scalar_colours is not None:
            if self.scalar_colours.symbols.shape != (n, self.channels):
                raise bad("scalar colours do not match the Gaussians or the channel count")
            return
        self.codebooks = np.ascontiguousarray(self.codebooks, dtype=np.float32)
        if self.codebooks.ndim != 3 or self.codebooks.shape[2] != self.channels or not np.isfinite(
                self.codebooks).all():
            raise bad("codebooks must be finite with shape (stages, K, channels)")
        self.colour_indices = np.ascontiguousarray(self.colour_indices, dtype=np.int64).reshape(
            n, self.codebooks.shape[0])
        if n and (self.colour_indices.min() < 0 or self.colour_indices.max() >= self.codebooks.shape[1]):
            raise bad("colour index outside the codebook")

    @property
    def n(self) -> int:
        return int(self.grid.shape[0])

    def dequantize_arrays(self) -> GaussianArrays:
        """The float32 Cholesky model these symbols decode to, as numpy arrays."""
        # numpy, bit-identical to the torch definitions training uses (dequantize_grid, _dequant_uniform,
        # _rvq_lookup; tested): see quantize._dequant_uniform_np for why a decoder avoids torch here
        lx, ly = grid_levels(self.size, self.subdiv)
        steps = np.array([lx - 1, ly - 1], dtype=np.float64)
        means = (self.grid.astype(np.float64) / steps).astype(np.float32)  # the grid was range-checked on construction
        cov = dequant_uniform_rows(self.cov_symbols, self.tiers, self.cov_scale, self.cov_offset)
        colours = self.scalar_colours.dequantize() if self.scalar_colours is not None else rvq_lookup(
            self.codebooks, self.colour_indices)
        return GaussianArrays(means, cov, colours, "cholesky", self.size)

    def dequantize(self) -> Any:
        """:meth:`dequantize_arrays` as a torch :class:`~splatpix.model.gaussians.Gaussians` (CPU tensors)."""
        from ...model.gaussians import Gaussians

        return Gaussians.from_arrays(self.dequantize_arrays())


# ------------------------------------------------------------------------------------------------ packing




def _context_chunks(c: np.ndarray, bits: int, cbits: int, mode: int) -> list[bytes]:
    """A tier's chunks under context coding: ``l11``, then for ``l21`` and ``l22`` one chunk per non-empty context
    ``l11 >> (bits - cbits)`` in increasing order (the symbols in file order)."""
    alphabet = 1 << bits
    out = [symbols.code(np.ascontiguousarray(c[:, 0]), alphabet, mode)]
    ctx = c[:, 0] >> (bits - cbits)
    used = np.unique(ctx)
    for j in (1, 2):
        out.extend(symbols.code(np.ascontiguousarray(c[ctx == v, j]), alphabet, mode) for v in used)
    return out


def _pack_covariance(sym: np.ndarray, tiers: np.ndarray, tier_bits: list[int], mode: int,
                     max_context_bits: int) -> bytes:
    """The ``COVARIANCE`` payload: policy ``mode`` (0 fixed, 1 adaptive) with ``3·T`` chunks, or -- when smaller,
    and only in adaptive mode -- policy 2: per tier a context width ``cbits`` (u8, the encoder tries 0 to
    ``max_context_bits`` and keeps the smallest), then the tier's :func:`_context_chunks`. ``l22`` depends
    strongly on ``l11`` (both scale with the Gaussian's size); the saving and the decode cost per context bit are
    in docs/results.md."""
    plain = bytes([mode]) + symbols.chunks([symbols.code(np.ascontiguousarray(sym[tiers == t, j]), 1 << b, mode)
                                     for t, b in enumerate(tier_bits) for j in range(3)])
    if mode != symbols.MODE_ENTROPY:
        return plain
    widths, parts = [], []
    for t, b in enumerate(tier_bits):
        c = sym[tiers == t]
        options = [(sum(4 + len(x) for x in ch), cb, ch) for cb in range(min(b, max_context_bits) + 1)
                   for ch in [_context_chunks(c, b, cb, mode)]]
        _, cb, best = min(options, key=lambda o: (o[0], o[1]))  # the smallest; ties: the narrower context
        widths.append(cb)
        parts.extend(best)
    cond = bytes([POLICY_CONDITIONAL, *widths]) + symbols.chunks(parts)
    return cond if len(cond) < len(plain) else plain


def _unpack_covariance(cv: memoryview, tiers: np.ndarray, bits: list[int], source: str) -> np.ndarray:
    """Parse an (untrusted) ``COVARIANCE`` payload of method sga into ``(N, 3)`` symbols."""
    def bad(msg: str) -> SplatpixError:
        return SplatpixError(f"{source}: corrupt .spix file: {msg}")

    n, t = tiers.shape[0], len(bits)
    if len(cv) < 1 or cv[0] not in (symbols.MODE_FIXED, symbols.MODE_ENTROPY, POLICY_CONDITIONAL):
        raise bad("covariance section has an unknown mode")
    # the symbols of tier i are those of its Gaussians in file order: decode tier by tier into rows start[i]:
    # start[i + 1] of the tier-sorted array, then scatter once
    order, start = tier_order(tiers, t)
    by_tier = np.empty((n, 3), dtype=np.int64)
    if cv[0] != POLICY_CONDITIONAL:
        plain = symbols.read_chunks(cv[1:], 3 * t, "covariance section", source)
        for i in range(t):
            for j in range(3):
                by_tier[start[i]:start[i + 1], j] = symbols.uncode(plain[3 * i + j], int(start[i + 1] - start[i]),
                                                            1 << bits[i], cv[0], source)
        sym = np.empty_like(by_tier)
        sym[order] = by_tier
        return sym
    if len(cv) < 1 + t:
        raise bad("covariance section truncated")
    widths = list(cv[1:1 + t])
    if any(w > min(b, MAX_CONTEXT_BITS) for w, b in zip(widths, bits, strict=True)):
        raise bad("covariance context width out of range")
    rest, pos = cv[1 + t:], 0

    def next_chunk() -> bytes:
        nonlocal pos
        if pos + 4 > len(rest):
            raise bad("covariance section truncated")
        (length,) = struct.unpack_from("<I", rest, pos)
        if length > len(rest) - pos - 4:
            raise bad(f"covariance section chunk length {length} exceeds the section")
        out = bytes(rest[pos + 4:pos + 4 + length])
        pos += 4 + length
        return out

    for i in range(t):
        rows = by_tier[start[i]:start[i + 1]]
        alphabet = 1 << bits[i]
        l11 = symbols.uncode(next_chunk(), rows.shape[0], alphabet, symbols.MODE_ENTROPY, source)
        rows[:, 0] = l11
        # the rows of each context in ascending row order (a stable counting sort), the contexts that occur ascending
        by_ctx, cstart = tier_order(l11 >> (bits[i] - widths[i]), 1 << widths[i])
        used = np.flatnonzero(np.diff(cstart))
        for j in (1, 2):
            for v in used:
                sel = by_ctx[cstart[v]:cstart[v + 1]]
                rows[sel, j] = symbols.uncode(next_chunk(), sel.size, alphabet, symbols.MODE_ENTROPY, source)
    if pos != len(rest):
        raise bad(f"{len(rest) - pos} trailing bytes in covariance section")
    sym = np.empty_like(by_tier)
    sym[order] = by_tier
    return sym


def pack_sga(q: SGAQuantized, *, fixed_length: bool = False, metadata: dict[str, Any] | None = None,
             cov_context_bits: int = 2) -> bytes:
    """The ``.spix`` bytes of an ``sga`` model (Gaussians sorted as the position coder orders them);
    ``cov_context_bits``: see :class:`SGAConfig`."""
    mode = symbols.MODE_FIXED if fixed_length else symbols.MODE_ENTROPY
    h, w = q.size
    levels = (w * q.subdiv + 1, h * q.subdiv + 1)
    pos_payload, order = encode_grid_points(q.grid, levels)
    tiers = q.tiers[order]
    sym = q.cov_symbols[order]
    header = bs.SpixHeader(width=w, height=h, channels=q.channels, method=METHOD_ID, n_gaussians=q.n)
    pos = bytes([q.subdiv]) + pos_payload
    tier_def = bytes([q.tier_k, len(q.tier_bits)]) + np.asarray(q.thresholds, dtype="<u8").tobytes() + b"".join(
        _TIER.pack(b, *map(float, q.cov_scale[t]), *map(float, q.cov_offset[t])) for t, b in enumerate(q.tier_bits))
    cov = _pack_covariance(sym, tiers, q.tier_bits, mode, cov_context_bits)
    sections = [(bs.GRID_POSITIONS, pos), (bs.COV_TIERS, tier_def), (bs.COVARIANCE, cov)]
    if q.scalar_colours is not None:
        sections.append((bs.COLOUR_SCALAR, pack_scalar_colours(q.scalar_colours.take(order), mode)))
        return symbols.write_sections(header, sections, metadata)
    return symbols.write_file(header, sections, q.colour_indices[order], q.codebooks, mode, metadata)


def unpack_sections(header: bs.SpixHeader, sections: dict[int, bytes], source: str) -> SGAQuantized:
    """Parse the (untrusted) sections of an ``sga`` file."""

    def bad(msg: str) -> SplatpixError:
        return SplatpixError(f"{source}: corrupt .spix file: {msg}")

    scalar = bs.COLOUR_SCALAR in sections
    if scalar and (bs.COLOUR_INDICES in sections or bs.CODEBOOKS in sections):
        raise bad("both scalar colours and colour indices")
    symbols.require_sections(sections, (bs.GRID_POSITIONS, bs.COV_TIERS, bs.COVARIANCE) + (
        () if scalar else (bs.COLOUR_INDICES, bs.CODEBOOKS)), source)
    n, c, h, w = header.n_gaussians, header.channels, header.height, header.width

    p = sections[bs.GRID_POSITIONS]
    if len(p) < 1 or not 1 <= p[0] <= _MAX_SUBDIV:
        raise bad("grid positions section is empty or has an invalid subdivision")
    subdiv = int(p[0])
    grid = decode_grid_points(bytes(p[1:]), n, (w * subdiv + 1, h * subdiv + 1), source=source)

    td = sections[bs.COV_TIERS]
    if len(td) < 2 or not 1 <= td[0] <= _MAX_K or not 1 <= td[1] <= _MAX_TIERS:
        raise bad("covariance tier section is truncated or out of range")
    k, t = int(td[0]), int(td[1])
    if len(td) != 2 + 8 * (t - 1) + _TIER.size * t:
        raise bad("covariance tier section has the wrong size")
    thresholds = [int(v) for v in np.frombuffer(td, dtype="<u8", count=t - 1, offset=2)]
    if any(v >= 1 << 62 for v in thresholds) or any(b < a for a, b in zip(thresholds, thresholds[1:],
                                                                          strict=False)):
        raise bad("covariance tier thresholds are invalid")
    bits, scales, offsets = [], [], []
    for i in range(t):
        b, *vals = _TIER.unpack_from(td, 2 + 8 * (t - 1) + _TIER.size * i)
        if not 1 <= b <= 16 or not all(math.isfinite(v) for v in vals) or not all(v > 0 for v in vals[:3]):
            raise bad("covariance tier quantiser is invalid")
        bits.append(int(b))
        scales.append(vals[:3])
        offsets.append(vals[3:])
    tiers = assign_tiers(grid, thresholds, k)

    sym = _unpack_covariance(memoryview(sections[bs.COVARIANCE]), tiers, bits, source)
    sc = unpack_scalar_colours(sections[bs.COLOUR_SCALAR], n, c, source) if scalar else None
    idx, books = (None, None) if scalar else symbols.read_colour_payloads(sections, n, c, source)
    try:
        return SGAQuantized(size=(h, w), channels=c, subdiv=subdiv, grid=grid, tier_k=k, thresholds=thresholds,
                            tier_bits=bits, cov_scale=np.asarray(scales), cov_offset=np.asarray(offsets),
                            cov_symbols=sym, colour_indices=idx, codebooks=books, tiers=tiers, scalar_colours=sc)
    except SplatpixError as e:
        raise bad(str(e)) from None


def config_dict(sga: SGAConfig) -> dict[str, Any]:
    d = asdict(sga)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _pack(q: SGAQuantized, *, fixed_length: bool = False, metadata: dict[str, Any] | None = None,
          options: SGAConfig | None = None) -> bytes:
    cbits = (options or SGAConfig()).cov_context_bits
    return pack_sga(q, fixed_length=fixed_length, metadata=metadata, cov_context_bits=cbits)


def _info(q: SGAQuantized) -> dict[str, Any]:
    out = {"grid_subdiv": q.subdiv, "tier_bits": q.tier_bits,
           "tier_counts": np.bincount(q.tiers, minlength=len(q.tier_bits)).tolist()}
    if q.scalar_colours is not None:
        out.update(colour="scalar", colour_bits=q.scalar_colours.bits,
                   colour_transform="ycocg" if q.scalar_colours.transform else "none")
    else:
        out["colour"] = "vq"
    return out


METHOD = register(CodecMethod(
    name="sga", method_id=METHOD_ID, summary="structure-guided: structure-guided initialisation, grid positions "
    "coded as a set, adaptive-bitwidth covariance", fit_defaults=SGA_FIT_DEFAULTS, vq_codebook=SGA_VQ_CODEBOOK,
    options_type=SGAConfig, prepare_entry="splatpix.codec.methods.sga_qat:prepare", pack=_pack, unpack=unpack_sections,
    info=_info,
    decode_bytes_per_gaussian=192))  # measured peak: 99 B (tracemalloc, N = 300 000)
