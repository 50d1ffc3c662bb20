"""Scalar-quantised colours (numpy, the format side): a decorrelating colour transform, a uniform quantiser per
channel with its own bit depth, and the ``COLOUR_SCALAR`` payload of method ``sga``.

GaussianImage's codec (and ``sga`` before this) codes a colour as two residual-VQ indices into codebooks of 8 or 16
colours, 6-8 bits per Gaussian. That is cheap, but it is the largest single loss of the codec at high rates (QAT ends
about 2 dB below the fit at N = 9000 on Kodak; docs/notes/2026-12-04-sga-scalar-colour.md). Here each colour is
transformed to YCoCg (``C = 3``; other channel counts are coded as they are), each channel is quantised uniformly,
``q = clamp(round((x - offset) / scale), 0, 2^bits - 1)``, and the symbols are entropy coded per channel.

The transform is exact in float32 on both sides: the decoder computes ``R = (Y + Co) - Cg``, ``G = Y + Cg``,
``B = (Y - Co) - Cg`` with float32 additions in that order, as the encoder's torch training form does
(:func:`ycocg_inverse_torch` in :mod:`.colours_qat`), so the decoded model renders bit for bit as the model QAT
evaluated.

Payload (``COLOUR_SCALAR``; docs/format.md, "Method sga"): ``policy`` (u8: 0 fixed-length chunks, 1 each chunk the
smaller of fixed-length and entropy coded), ``transform`` (u8: 0 identity, 1 YCoCg), ``channels`` (u8), then per
channel ``bits`` (u8, 1-16), ``scale`` (f32, > 0), ``offset`` (f32), then ``channels`` length-prefixed symbol chunks
(:mod:`.symbols`) with the symbols in file order.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import SplatpixError
from . import symbols

__all__ = ["TRANSFORM_IDENTITY", "TRANSFORM_YCOCG", "ScalarColours", "pack_scalar_colours", "unpack_scalar_colours",
           "ycocg_forward_np", "ycocg_inverse_np"]

TRANSFORM_IDENTITY = 0
TRANSFORM_YCOCG = 1
_TRANSFORMS = (TRANSFORM_IDENTITY, TRANSFORM_YCOCG)
_CHANNEL = struct.Struct("<Bff")
_MAX_BITS = 16


def ycocg_forward_np(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` RGB -> YCoCg: ``Y = R/4 + G/2 + B/4``, ``Co = (R - B)/2``, ``Cg = G/2 - (R + B)/4`` (float32)."""
    r, g, b = (rgb[:, i].astype(np.float32) for i in range(3))
    return np.stack([0.25 * r + 0.5 * g + 0.25 * b, 0.5 * (r - b), 0.5 * g - 0.25 * (r + b)], axis=1).astype(
        np.float32)


def ycocg_inverse_np(ycc: np.ndarray) -> np.ndarray:
    """YCoCg -> RGB in float32, in the operation order the encoder's torch form uses (bit for bit)."""
    y, co, cg = (np.ascontiguousarray(ycc[:, i], dtype=np.float32) for i in range(3))
    with np.errstate(over="ignore", invalid="ignore"):  # a hostile file's overflow: refused after dequantising
        return np.stack([(y + co) - cg, y + cg, (y - co) - cg], axis=1)


@dataclass
class ScalarColours:
    """The scalar colour symbols of ``N`` Gaussians: ``symbols`` ``(N, C)`` in ``[0, 2^bits[j])``, per channel
    ``bits``, ``scale`` (> 0) and ``offset`` (float32), and the ``transform`` (``TRANSFORM_*``). Construction
    validates everything (a decoder builds one from untrusted data)."""

    transform: int
    bits: list[int]
    scale: np.ndarray
    offset: np.ndarray
    symbols: np.ndarray

    def __post_init__(self) -> None:
        def bad(msg: str) -> SplatpixError:
            return SplatpixError(f"invalid scalar colours: {msg}")

        c = len(self.bits)
        if self.transform not in _TRANSFORMS or (self.transform == TRANSFORM_YCOCG and c != 3):
            raise bad(f"transform {self.transform!r} does not apply to {c} channels")
        if not all(isinstance(b, int | np.integer) and 1 <= int(b) <= _MAX_BITS for b in self.bits):
            raise bad(f"bits must be integers in [1, {_MAX_BITS}], got {self.bits!r}")
        self.bits = [int(b) for b in self.bits]
        self.scale = np.ascontiguousarray(self.scale, dtype=np.float32).reshape(c)
        self.offset = np.ascontiguousarray(self.offset, dtype=np.float32).reshape(c)
        if not (np.isfinite(self.scale).all() and np.isfinite(self.offset).all() and (self.scale > 0).all()):
            raise bad("quantiser parameters must be finite with positive steps")
        self.symbols = np.ascontiguousarray(self.symbols, dtype=np.int64)
        if self.symbols.ndim != 2 or self.symbols.shape[1] != c:
            raise bad(f"symbols must be (N, {c}), got {self.symbols.shape}")
        limit = np.asarray([1 << b for b in self.bits], dtype=np.int64)
        if self.symbols.size and (self.symbols.min() < 0 or (self.symbols >= limit[None, :]).any()):
            raise bad("colour symbol outside its channel's range")

    @property
    def channels(self) -> int:
        return len(self.bits)

    def take(self, order: np.ndarray) -> ScalarColours:
        """The same colours with the Gaussians in ``order``."""
        return ScalarColours(self.transform, self.bits, self.scale, self.offset, self.symbols[order])

    def dequantize(self) -> np.ndarray:
        """``(N, C)`` float32 colours (the transform undone), bit for bit the encoder's training form."""
        with np.errstate(over="ignore", invalid="ignore"):
            x = self.symbols.astype(np.float32) * self.scale[None, :] + self.offset[None, :]
        return ycocg_inverse_np(x) if self.transform == TRANSFORM_YCOCG else np.ascontiguousarray(x, np.float32)


def pack_scalar_colours(sc: ScalarColours, mode: int) -> bytes:
    """The ``COLOUR_SCALAR`` payload (the symbols in the order they are held); ``mode``: :data:`.symbols.MODE_FIXED`
    or :data:`.symbols.MODE_ENTROPY` (each chunk the smaller form)."""
    head = bytes([mode, sc.transform, sc.channels]) + b"".join(
        _CHANNEL.pack(b, float(s), float(o)) for b, s, o in zip(sc.bits, sc.scale, sc.offset, strict=True))
    return head + symbols.chunks([symbols.code(np.ascontiguousarray(sc.symbols[:, j]), 1 << b, mode)
                                  for j, b in enumerate(sc.bits)])


def unpack_scalar_colours(payload: bytes | memoryview, n: int, channels: int, source: str) -> ScalarColours:
    """Parse an (untrusted) ``COLOUR_SCALAR`` payload of ``n`` Gaussians with ``channels`` channels."""

    def bad(msg: str) -> SplatpixError:
        return SplatpixError(f"{source}: corrupt .spix file: {msg}")

    p = memoryview(payload)
    if len(p) < 3 or p[0] not in (symbols.MODE_FIXED, symbols.MODE_ENTROPY) or p[1] not in _TRANSFORMS:
        raise bad("scalar colour section is truncated or has an unknown mode or transform")
    mode, transform, c = int(p[0]), int(p[1]), int(p[2])
    if c != channels or (transform == TRANSFORM_YCOCG and c != 3):
        raise bad("scalar colour section does not match the channel count")
    end = 3 + _CHANNEL.size * c
    if len(p) < end:
        raise bad("scalar colour section truncated")
    bits, scale, offset = [], [], []
    for j in range(c):
        b, s, o = _CHANNEL.unpack_from(p, 3 + _CHANNEL.size * j)
        if not 1 <= b <= _MAX_BITS or not (math.isfinite(s) and math.isfinite(o) and s > 0):
            raise bad("scalar colour quantiser is invalid")
        bits.append(int(b))
        scale.append(s)
        offset.append(o)
    parts = symbols.read_chunks(p[end:], c, "scalar colour section", source)
    sym = np.stack([symbols.uncode(ch, n, 1 << b, mode, source) for ch, b in zip(parts, bits, strict=True)], axis=1) \
        if n else np.zeros((0, c), dtype=np.int64)
    try:
        return ScalarColours(transform, bits, np.asarray(scale), np.asarray(offset), sym)
    except SplatpixError as e:
        raise bad(str(e)) from None
