"""The viewer's binary array message ("SPXA"): a model's parameters as float32 arrays, between the server and the page.

The server sends it for ``.safetensors`` models (``GET /api/model``; a ``.spix`` file travels as its own bytes and
is decoded in the page) and the page sends it back with the edited parameters (``POST /api/save``,
``POST /api/gainer/state``). All integers and floats are little-endian.

=======  =========  ==============================================================================================
offset   size       field
=======  =========  ==============================================================================================
0        4          magic ``53 50 58 41`` (``b"SPXA"``)
4        4          ``L``, the length of the JSON header in bytes (u32; a multiple of 4, padded with spaces)
8        ``L``      UTF-8 JSON object: ``version`` (1), ``kind`` (``"gaussians"`` or ``"gainer"``), ``width``,
                    ``height``, ``channels``, ``n`` and ``arrays``: ``[[name, count], ...]`` in the order they follow
8 + L    ...        the arrays, float32, back to back, nothing after them
=======  =========  ==============================================================================================

Arrays: ``means`` (``2 N``: normalised ``(u, v)`` per Gaussian), ``cov`` (``3 N``: Cholesky ``(l11, l21, l22)`` of
the covariance in the model's native pixels, ``Sigma = L L^T``) and, for GaussianImage models, ``colours``
(``C N``, Gaussian-major: ``C`` values per Gaussian). These are the arrays the page's ``.spix`` decoder returns.
A GaINeR field has no colours (its MLP decodes them from features that stay on the server).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import SplatpixError

__all__ = ["MAGIC", "MAX_HEADER", "expected_arrays", "pack", "unpack"]

MAGIC = b"SPXA"
VERSION = 1
MAX_HEADER = 1 << 20
"""Largest JSON header accepted, in bytes."""


def expected_arrays(kind: str, n: int, channels: int) -> list[tuple[str, int]]:
    """The ``(name, count)`` of each array of a message for ``n`` Gaussians, in order."""
    out = [("means", 2 * n), ("cov", 3 * n)]
    if kind == "gaussians":
        out.append(("colours", channels * n))
    return out


def pack(header: Mapping[str, Any], arrays: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """A message with ``header`` (``version`` and ``arrays`` are filled in) and ``arrays`` (any shapes; flattened to
    float32 in C order)."""
    flat = [(name, np.ascontiguousarray(a, dtype="<f4").reshape(-1)) for name, a in arrays]
    meta = {**header, "version": VERSION, "arrays": [[name, int(a.size)] for name, a in flat]}
    text = json.dumps(meta, allow_nan=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    return b"".join([MAGIC, struct.pack("<I", len(text)), text, *(a.tobytes() for _, a in flat)])


def unpack(data: bytes, kind: str, n: int, channels: int) -> dict[str, np.ndarray]:
    """The arrays of a message that must hold ``kind``'s arrays for ``n`` Gaussians of ``channels`` colours, as
    float32 numpy arrays of shapes ``(n, 2)``, ``(n, 3)`` (and ``(n, channels)``). Anything else (wrong magic, sizes,
    names, trailing bytes, non-finite values) raises :class:`SplatpixError` with one line."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise SplatpixError("not a splatpix array message (bad magic)")
    (length,) = struct.unpack_from("<I", data, 4)
    if length > MAX_HEADER or length % 4 or 8 + length > len(data):
        raise SplatpixError(f"array message: bad header length {length}")
    try:
        meta = json.loads(data[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SplatpixError(f"array message: the header is not JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("version") != VERSION:
        raise SplatpixError("array message: the header must be a JSON object with version 1")
    want = expected_arrays(kind, n, channels)
    got = meta.get("arrays")
    if not isinstance(got, list) or [tuple(a) if isinstance(a, list) else a for a in got] != want:
        raise SplatpixError(f"array message: expected arrays {want} for this model, got {got!r}")
    total = sum(count for _, count in want)
    if len(data) != 8 + length + 4 * total:
        raise SplatpixError(f"array message: {len(data) - 8 - length} bytes of arrays, expected {4 * total}")
    flat = np.frombuffer(data, dtype="<f4", count=total, offset=8 + length).astype(np.float32)
    if not bool(np.isfinite(flat).all()):
        raise SplatpixError("array message: non-finite values")
    out: dict[str, np.ndarray] = {}
    pos = 0
    widths = {"means": 2, "cov": 3, "colours": channels}
    for name, count in want:
        out[name] = flat[pos:pos + count].reshape(n, widths[name])
        pos += count
    return out
