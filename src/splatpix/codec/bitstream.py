"""The ``.spix`` container: a small header followed by CRC-protected, typed sections.

Byte-by-byte layout, section types and limits: ``docs/format.md``. In short (little-endian)::

    "SPIX"  version:u8  width:u32  height:u32  channels:u8  method:u8  n_gaussians:u32  n_sections:u16
    header_crc:u32                                            (CRC-32 of the 21 bytes before it)
    n_sections x [ type:u16  flags:u8  length:u32  crc:u32  payload:length bytes ]
                                                              (crc = CRC-32 of type, flags, length, payload)

The container frames the payloads; their contents are defined by the codec. Sections are forward compatible:
a reader skips an *optional* section (flags bit 0) that it does not understand and refuses a *required* one
with "needs a newer splatpix".

Reading treats the file as untrusted: every length is checked against the bytes that remain before anything is
sliced, header fields are checked against limits, both CRCs are verified, and every problem raises
:class:`~splatpix.errors.SplatpixError` with one line, ``"<file>: corrupt .spix file: <reason>"`` (or a
"newer splatpix" / "too large" message). Every single-byte change of a valid file is detected.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from ..errors import SplatpixError
from ..io.files import atomic_write_bytes, check_readable_file
from . import registry

__all__ = [
    "CODEBOOKS",
    "COLOUR_INDICES",
    "COVARIANCE",
    "COV_QUANT_PARAMS",
    "COLOUR_SCALAR",
    "COV_TIERS",
    "GRID_POSITIONS",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_GAUSSIANS",
    "DEFAULT_MAX_PIXELS",
    "FLAG_OPTIONAL",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "KNOWN_SECTIONS",
    "MAGIC",
    "MAX_METADATA_BYTES",
    "METADATA",
    "POSITIONS",
    "SECTION_HEADER_SIZE",
    "SECTION_NAMES",
    "SpixHeader",
    "decode_metadata",
    "encode_metadata",
    "read_spix",
    "read_spix_file",
    "write_spix",
    "write_spix_file",
]

MAGIC = b"SPIX"
FORMAT_VERSION = 1
"""The container version this module writes and reads. A file with a higher version is refused."""


# Section type ids. 0 is never used. Payload contents are defined by the codec (docs/format.md).
POSITIONS = 1
"""Gaussian centres (e.g. float16 pairs)."""
COVARIANCE = 2
"""Quantised covariance (Cholesky) symbols, usually an entropy-coded payload."""
COV_QUANT_PARAMS = 3
"""Scale/offset (float32) of the covariance quantisers."""
COLOUR_INDICES = 4
"""Residual-VQ codeword indices of the colours."""
CODEBOOKS = 5
"""Residual-VQ codebooks."""
METADATA = 6
"""UTF-8 JSON object (encoder name and version, settings...); written as an optional section."""
GRID_POSITIONS = 7
"""Method ``sga``: grid-quantised centres coded as a set (order discarded)."""
COV_TIERS = 8
"""Method ``sga``: the covariance tiers' definition and their quantisers."""
COLOUR_SCALAR = 9
"""Method ``sga``: scalar-quantised colours (transform, per-channel quantisers, symbols); replaces the residual VQ."""

SECTION_NAMES = {
    POSITIONS: "POSITIONS",
    COVARIANCE: "COVARIANCE",
    COV_QUANT_PARAMS: "COV_QUANT_PARAMS",
    COLOUR_INDICES: "COLOUR_INDICES",
    CODEBOOKS: "CODEBOOKS",
    METADATA: "METADATA",
    GRID_POSITIONS: "GRID_POSITIONS",
    COV_TIERS: "COV_TIERS",
    COLOUR_SCALAR: "COLOUR_SCALAR",
}
KNOWN_SECTIONS = frozenset(SECTION_NAMES)

FLAG_OPTIONAL = 0x01
"""Section flag bit 0: a reader that does not understand the section may skip it."""
_KNOWN_FLAGS = FLAG_OPTIONAL

DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_GAUSSIANS = 50_000_000
DEFAULT_MAX_FILE_BYTES = 1 << 30
"""Default size cap of :func:`read_spix_file` (1 GiB)."""
MAX_METADATA_BYTES = 1 << 20
"""Largest METADATA payload :func:`decode_metadata` parses (1 MiB)."""

_CHANNELS = (1, 3, 4)
_U32_MAX = 0xFFFFFFFF
_HEAD = struct.Struct("<4sBIIBBIH")  # magic .. section count: 21 bytes
_CRC = struct.Struct("<I")
_SECTION = struct.Struct("<HBI")  # type, flags, length: 7 bytes (then the CRC)
HEADER_SIZE = _HEAD.size + _CRC.size  # 25
SECTION_HEADER_SIZE = _SECTION.size + _CRC.size  # 11


@dataclass(frozen=True)
class SpixHeader:
    """The fixed header of a ``.spix`` file."""

    width: int
    height: int
    channels: int
    method: int
    n_gaussians: int

    @property
    def method_name(self) -> str:
        """The name of the header's method in the registry (:mod:`.registry`)."""
        return registry.by_id(self.method).name if self.method in registry.ids() else f"unknown ({self.method})"


def encode_metadata(meta: dict[str, Any]) -> bytes:
    """The payload of a :data:`METADATA` section: ``meta`` as compact UTF-8 JSON."""
    if not isinstance(meta, dict):
        raise ValueError(f"metadata must be a dict, got {type(meta).__name__}")
    return json.dumps(meta, separators=(",", ":"), sort_keys=True, allow_nan=False).encode("utf-8")


def decode_metadata(payload: bytes, *, source: str = "<bytes>") -> dict[str, Any]:
    """Parse a :data:`METADATA` payload (a UTF-8 JSON object); :class:`SplatpixError` if it is not one."""
    if len(payload) > MAX_METADATA_BYTES:
        raise SplatpixError(f"{source}: corrupt .spix file: metadata too large ({len(payload)} bytes)")
    try:
        meta = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SplatpixError(f"{source}: corrupt .spix file: metadata is not valid UTF-8 JSON") from e
    if not isinstance(meta, dict):
        raise SplatpixError(f"{source}: corrupt .spix file: metadata is not a JSON object")
    return meta


def _check_arg(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)  # type: ignore[call-overload]
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------


def write_spix(header: SpixHeader, sections: list[tuple[int, bytes, bool]]) -> bytes:
    """Serialise a ``.spix`` file: ``sections`` are ``(type id, payload, optional)`` in file order.

    Raises :class:`ValueError` for out-of-range header fields, a bad section id, a duplicate section, a
    payload over ``2**32 - 1`` bytes or more than 65535 sections.
    """
    if not isinstance(header, SpixHeader):
        raise ValueError(f"header must be a SpixHeader, got {type(header).__name__}")
    width = _check_arg(header.width, "width", 1, _U32_MAX)
    height = _check_arg(header.height, "height", 1, _U32_MAX)
    channels = _check_arg(header.channels, "channels", 1, 255)
    if channels not in _CHANNELS:
        raise ValueError(f"channels must be one of {_CHANNELS}, got {channels}")
    method = _check_arg(header.method, "method", 0, 255)
    n_gaussians = _check_arg(header.n_gaussians, "n_gaussians", 0, _U32_MAX)
    if len(sections) > 0xFFFF:
        raise ValueError(f"too many sections ({len(sections)}; at most 65535)")
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, width, height, channels, method, n_gaussians, len(sections))
    parts = [head, _CRC.pack(zlib.crc32(head))]
    seen: set[int] = set()
    for item in sections:
        if len(item) != 3:
            raise ValueError("each section must be a (type id, payload, optional) tuple")
        type_id, payload, optional = item
        type_id = _check_arg(type_id, "section type id", 1, 0xFFFF)
        if type_id in seen:
            raise ValueError(f"duplicate section type {type_id}")
        seen.add(type_id)
        payload = bytes(payload)
        if len(payload) > _U32_MAX:
            raise ValueError(f"section {type_id} payload too large ({len(payload)} bytes)")
        sec = _SECTION.pack(type_id, FLAG_OPTIONAL if optional else 0, len(payload))
        parts += [sec, _CRC.pack(zlib.crc32(payload, zlib.crc32(sec))), payload]
    return b"".join(parts)


def write_spix_file(path: str | os.PathLike[str], header: SpixHeader, sections: list[tuple[int, bytes, bool]]) -> int:
    """Write a ``.spix`` file atomically (see :func:`write_spix`); return its size in bytes."""
    data = write_spix(header, sections)
    atomic_write_bytes(path, data)
    return len(data)


# --------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------


def read_spix(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_gaussians: int = DEFAULT_MAX_GAUSSIANS,
    source: str = "<bytes>",
) -> tuple[SpixHeader, dict[int, bytes]]:
    """Parse a ``.spix`` file held in memory; ``source`` names it in error messages.

    Returns the header and the payloads of the sections this version knows (:data:`KNOWN_SECTIONS`) by type
    id; unknown optional sections are skipped. Raises :class:`SplatpixError` (one line) for a file that is
    not a ``.spix`` file, is corrupt or truncated, exceeds ``max_pixels`` (``width * height``) or
    ``max_gaussians``, or needs a newer splatpix.
    """
    max_pixels = _check_arg(max_pixels, "max_pixels", 1, 1 << 64)
    max_gaussians = _check_arg(max_gaussians, "max_gaussians", 0, 1 << 64)
    view = memoryview(data).cast("B")
    size = len(view)

    def corrupt(reason: str) -> SplatpixError:
        return SplatpixError(f"{source}: corrupt .spix file: {reason}")

    if size == 0:
        raise SplatpixError(f"{source}: empty data, not a .spix file")
    if bytes(view[:4]) != MAGIC[: min(size, 4)]:
        raise SplatpixError(f"{source}: not a .spix file (bad magic)")
    if size < 5:
        raise corrupt(f"header truncated ({size} bytes, need {HEADER_SIZE})")
    version = view[4]
    if version > FORMAT_VERSION:
        reads = f"this one reads version {FORMAT_VERSION}"
        raise SplatpixError(f"{source}: .spix format version {version} needs a newer splatpix ({reads})")
    if version == 0:
        raise corrupt("invalid format version 0")
    if size < HEADER_SIZE:
        raise corrupt(f"header truncated ({size} bytes, need {HEADER_SIZE})")
    _magic, _v, width, height, channels, method, n_gaussians, n_sections = _HEAD.unpack_from(view, 0)
    (crc,) = _CRC.unpack_from(view, _HEAD.size)
    if zlib.crc32(view[: _HEAD.size]) != crc:
        raise corrupt("header CRC mismatch")
    if width == 0 or height == 0:
        raise corrupt(f"zero image size ({width}x{height})")
    if width * height > max_pixels:
        raise SplatpixError(
            f"{source}: image too large ({width}x{height} = {width * height} pixels; the limit is {max_pixels})"
        )
    if channels not in _CHANNELS:
        raise corrupt(f"unsupported channel count {channels}")
    registry.by_id(method, source)  # an unknown method needs a newer splatpix
    if n_gaussians > max_gaussians:
        raise SplatpixError(f"{source}: too many Gaussians ({n_gaussians}; the limit is {max_gaussians})")
    pos = HEADER_SIZE
    if n_sections * SECTION_HEADER_SIZE > size - pos:
        raise corrupt(f"{n_sections} sections announced but only {size - pos} bytes follow the header")

    sections: dict[int, bytes] = {}
    seen: set[int] = set()
    for index in range(n_sections):
        where = f"section {index}"
        if size - pos < SECTION_HEADER_SIZE:
            raise corrupt(f"{where}: header truncated")
        type_id, flags, length = _SECTION.unpack_from(view, pos)
        (crc,) = _CRC.unpack_from(view, pos + _SECTION.size)
        start = pos + SECTION_HEADER_SIZE
        if length > size - start:
            raise corrupt(f"payload of {where} truncated ({length} bytes announced, {size - start} left)")
        end = start + length
        if zlib.crc32(view[start:end], zlib.crc32(view[pos : pos + _SECTION.size])) != crc:
            raise corrupt(f"{where}: CRC mismatch")
        pos = end
        if type_id == 0:
            raise corrupt(f"{where}: invalid section type 0")
        if type_id in seen:
            raise corrupt(f"{where}: duplicate section type {type_id}")
        seen.add(type_id)
        understood = type_id in KNOWN_SECTIONS and not flags & ~_KNOWN_FLAGS
        if understood:
            sections[type_id] = bytes(view[start:end])
        elif not flags & FLAG_OPTIONAL:
            what = f"type {type_id}" if type_id not in KNOWN_SECTIONS else f"flags 0x{flags:02x}"
            raise SplatpixError(f"{source}: .spix file has a required section ({what}) that needs a newer splatpix")
    if pos != size:
        raise corrupt(f"{size - pos} unexpected bytes after the last section")
    header = SpixHeader(width=width, height=height, channels=channels, method=method, n_gaussians=n_gaussians)
    return header, sections


def read_spix_file(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_gaussians: int = DEFAULT_MAX_GAUSSIANS,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> tuple[SpixHeader, dict[int, bytes]]:
    """Read and parse a ``.spix`` file (see :func:`read_spix`); files over ``max_bytes`` are refused."""
    name = os.fspath(path)
    max_bytes = _check_arg(max_bytes, "max_bytes", 1, 1 << 64)
    size = check_readable_file(name, "a .spix")
    if size > max_bytes:
        raise SplatpixError(f"{name}: file too large for a .spix file ({size} bytes; the limit is {max_bytes})")
    try:
        with open(name, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise SplatpixError(f"{name}: cannot read ({e.strerror or type(e).__name__})") from e
    if len(data) > max_bytes:
        raise SplatpixError(f"{name}: file too large for a .spix file (over {max_bytes} bytes)")
    return read_spix(data, max_pixels=max_pixels, max_gaussians=max_gaussians, source=name)
