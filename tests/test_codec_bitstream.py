"""Tests of splatpix.codec.bitstream: the .spix container, including malformed and hostile files."""

from __future__ import annotations

import os
import pathlib
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from splatpix.codec import bitstream as bs
from splatpix.codec.bitstream import (
    CODEBOOKS,
    COLOUR_INDICES,
    COV_QUANT_PARAMS,
    COVARIANCE,
    HEADER_SIZE,
    METADATA,
    POSITIONS,
    SECTION_HEADER_SIZE,
    SpixHeader,
    decode_metadata,
    encode_metadata,
    read_spix,
    read_spix_file,
    write_spix,
    write_spix_file,
)
from splatpix.errors import SplatpixError

HEADER = SpixHeader(width=384, height=256, channels=3, method=0, n_gaussians=1000)


def _sections() -> list[tuple[int, bytes, bool]]:
    return [
        (POSITIONS, bytes(range(40)), False),
        (COVARIANCE, b"\x03\x01abc", False),
        (COV_QUANT_PARAMS, struct.pack("<6f", 1, 2, 3, 4, 5, 6), False),
        (COLOUR_INDICES, b"\x07" * 9, False),
        (CODEBOOKS, b"", False),
        (METADATA, encode_metadata({"encoder": "splatpix test"}), True),
    ]


def _forge(
    *,
    magic: bytes = b"SPIX",
    version: int = 1,
    width: int = 8,
    height: int = 8,
    channels: int = 3,
    method: int = 0,
    n_gaussians: int = 10,
    n_sections: int | None = None,
    sections: list[tuple[int, int, bytes]] = (),  # type: ignore[assignment]
    lengths: dict[int, int] | None = None,
) -> bytes:
    """A file with arbitrary (possibly invalid) fields and correct CRCs; ``sections`` are (type, flags, payload)
    and ``lengths`` overrides the announced payload length of section i."""
    count = len(sections) if n_sections is None else n_sections
    head = struct.pack("<4sBIIBBIH", magic, version, width, height, channels, method, n_gaussians, count)
    out = head + struct.pack("<I", zlib.crc32(head))
    for i, (type_id, flags, payload) in enumerate(sections):
        length = (lengths or {}).get(i, len(payload))
        sec = struct.pack("<HBI", type_id, flags, length)
        out += sec + struct.pack("<I", zlib.crc32(payload, zlib.crc32(sec))) + payload
    return out


def _one_line_error(data: bytes, **kwargs: int) -> str:
    with pytest.raises(SplatpixError) as info:
        read_spix(data, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("<bytes>: ")
    return msg


# --------------------------------------------------------------------------------------------------------
# Layout and round trip
# --------------------------------------------------------------------------------------------------------


def test_round_trip() -> None:
    data = write_spix(HEADER, _sections())
    assert len(data) == HEADER_SIZE + sum(SECTION_HEADER_SIZE + len(p) for _, p, _ in _sections())
    header, sections = read_spix(data)
    assert header == HEADER and header.method_name == "gaussianimage"
    assert sections == {t: p for t, p, _ in _sections()}
    assert decode_metadata(sections[METADATA]) == {"encoder": "splatpix test"}


def test_exact_bytes() -> None:
    """The byte layout documented in docs/format.md."""
    data = write_spix(SpixHeader(2, 3, 1, 0, 4), [(POSITIONS, b"\xaa\xbb", False), (METADATA, b"{}", True)])
    head = b"SPIX\x01" + b"\x02\x00\x00\x00" + b"\x03\x00\x00\x00" + b"\x01" + b"\x00" + b"\x04\x00\x00\x00"
    head += b"\x02\x00"
    assert data[:21] == head and data[21:25] == struct.pack("<I", zlib.crc32(head))
    sec1 = b"\x01\x00" + b"\x00" + b"\x02\x00\x00\x00"
    assert data[25:32] == sec1 and data[32:36] == struct.pack("<I", zlib.crc32(sec1 + b"\xaa\xbb"))
    assert data[36:38] == b"\xaa\xbb"
    sec2 = b"\x06\x00" + b"\x01" + b"\x02\x00\x00\x00"
    assert data[38:45] == sec2 and data[45:49] == struct.pack("<I", zlib.crc32(sec2 + b"{}"))
    assert data[49:] == b"{}"
    assert data == _forge(width=2, height=3, channels=1, n_gaussians=4, sections=[(1, 0, b"\xaa\xbb"), (6, 1, b"{}")])


def test_no_sections_and_zero_gaussians() -> None:
    header = SpixHeader(1, 1, 4, 1, 0)
    assert read_spix(write_spix(header, [])) == (header, {})


def test_file_round_trip(tmp_path: pathlib.Path) -> None:
    path = os.path.join(tmp_path, "a.spix")
    size = write_spix_file(path, HEADER, _sections())
    assert os.path.getsize(path) == size
    assert read_spix_file(path) == read_spix(write_spix(HEADER, _sections()))
    assert os.listdir(tmp_path) == ["a.spix"]  # no temporary file left
    with pytest.raises(SplatpixError, match="too large"):
        read_spix_file(path, max_bytes=size - 1)
    with pytest.raises(SplatpixError, match="no such file"):
        read_spix_file(os.path.join(tmp_path, "missing.spix"))
    empty = os.path.join(tmp_path, "empty.spix")
    open(empty, "wb").close()
    with pytest.raises(SplatpixError, match="empty"):
        read_spix_file(empty)
    bad = os.path.join(tmp_path, "bad.spix")
    with open(bad, "wb") as f:
        f.write(write_spix(HEADER, _sections())[:-1])
    with pytest.raises(SplatpixError, match=r"^.*bad\.spix: corrupt \.spix file: "):
        read_spix_file(bad)


@pytest.mark.parametrize(
    "header, sections",
    [
        (SpixHeader(0, 1, 3, 0, 1), []),
        (SpixHeader(1, 1 << 32, 3, 0, 1), []),
        (SpixHeader(1, 1, 2, 0, 1), []),
        (SpixHeader(1, 1, 3, 256, 1), []),
        (SpixHeader(1, 1, 3, 0, -1), []),
        (SpixHeader(1, 1, 3, 0, 1), [(0, b"", False)]),
        (SpixHeader(1, 1, 3, 0, 1), [(1 << 16, b"", False)]),
        (SpixHeader(1, 1, 3, 0, 1), [(1, b"", False), (1, b"", False)]),
    ],
)
def test_write_rejects_bad_arguments(header: SpixHeader, sections: list[tuple[int, bytes, bool]]) -> None:
    with pytest.raises(ValueError):
        write_spix(header, sections)


def test_metadata_errors() -> None:
    for payload in (b"\xff", b"[1]", b"{", b"x" * (bs.MAX_METADATA_BYTES + 1)):
        with pytest.raises(SplatpixError):
            decode_metadata(payload)


# --------------------------------------------------------------------------------------------------------
# Forward compatibility and versions
# --------------------------------------------------------------------------------------------------------


def test_unknown_optional_section_is_skipped() -> None:
    data = write_spix(HEADER, [(POSITIONS, b"p", False), (999, b"future", True), (METADATA, b"{}", True)])
    assert read_spix(data)[1] == {POSITIONS: b"p", METADATA: b"{}"}
    # A known section with unknown flag bits: skipped when optional, refused when required.
    assert read_spix(_forge(sections=[(POSITIONS, 0x03, b"p")]))[1] == {}
    assert "newer splatpix" in _one_line_error(_forge(sections=[(POSITIONS, 0x02, b"p")]))


def test_unknown_required_section_needs_newer_version() -> None:
    data = write_spix(HEADER, [(POSITIONS, b"p", False), (999, b"future", False)])
    assert "needs a newer splatpix" in _one_line_error(data)


def test_newer_format_version() -> None:
    msg = _one_line_error(_forge(version=2))
    assert "format version 2 needs a newer splatpix" in msg
    assert "newer splatpix" in _one_line_error(_forge(method=7))
    assert "version 0" in _one_line_error(_forge(version=0))


def test_structural_errors() -> None:
    assert "bad magic" in _one_line_error(b"PNG\x00" + bytes(40))
    assert "bad magic" in _one_line_error(b"\x89PNG\r\n\x1a\n")
    assert "empty" in _one_line_error(b"")
    assert "duplicate" in _one_line_error(_forge(sections=[(1, 0, b"a"), (1, 0, b"b")]))
    assert "duplicate" in _one_line_error(_forge(sections=[(999, 1, b"a"), (999, 1, b"b")]))
    assert "type 0" in _one_line_error(_forge(sections=[(0, 1, b"a")]))
    assert "unexpected bytes" in _one_line_error(write_spix(HEADER, _sections()) + b"\x00")
    assert "channel" in _one_line_error(_forge(channels=2))
    assert "zero image size" in _one_line_error(_forge(width=0))
    assert "payload of section 1 truncated" in _one_line_error(
        _forge(sections=[(1, 0, b"a"), (2, 0, b"bc")], lengths={1: 3})
    )
    assert "3 sections announced" in _one_line_error(_forge(n_sections=3, sections=[(1, 0, b"a")]))


def test_limits() -> None:
    data = write_spix(HEADER, [])
    assert "too large" in _one_line_error(data, max_pixels=384 * 256 - 1)
    read_spix(data, max_pixels=384 * 256)
    assert "too many Gaussians" in _one_line_error(data, max_gaussians=999)
    read_spix(data, max_gaussians=1000)


@pytest.mark.parametrize(
    "fields",
    [
        {"width": 0xFFFFFFFF, "height": 0xFFFFFFFF},
        {"width": 100_000, "height": 100_000},
        {"n_gaussians": 0xFFFFFFFF},
        {"n_sections": 0xFFFF},
    ],
)
def test_forged_huge_fields_fail_before_allocation(fields: dict[str, int]) -> None:
    data = _forge(**fields, sections=[(1, 0, b"abc")])
    tracemalloc.start()
    try:
        with pytest.raises(SplatpixError):
            read_spix(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000


def test_forged_huge_section_length() -> None:
    for length in (4, 1 << 20, 0xFFFFFFFF):
        data = _forge(sections=[(1, 0, b"abc")], lengths={0: length})
        assert "payload of section 0 truncated" in _one_line_error(data)


# --------------------------------------------------------------------------------------------------------
# Corruption: every byte flip, every truncation, random mutations
# --------------------------------------------------------------------------------------------------------


def _small_file() -> bytes:
    return write_spix(
        SpixHeader(16, 8, 3, 0, 5),
        [(POSITIONS, b"\x01\x02\x03", False), (COVARIANCE, b"", False), (999, b"opt", True), (METADATA, b"{}", True)],
    )


def test_every_byte_flip_is_an_error() -> None:
    data = _small_file()
    for i in range(len(data)):
        for mask in (0x01, 0x10, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= mask
            with pytest.raises(SplatpixError):
                read_spix(bytes(bad))


def test_every_truncation_is_an_error() -> None:
    data = _small_file()
    for cut in range(len(data)):
        msg = _one_line_error(data[:cut])
        assert cut < 4 or "corrupt" in msg


def test_fuzz_read_spix() -> None:
    rng = np.random.default_rng(2024)
    valid = [_small_file(), write_spix(HEADER, _sections())]
    big = (0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)
    t0 = time.perf_counter()
    passed = 0
    for trial in range(4000):
        bad = bytearray(valid[trial % 2])
        op = int(rng.integers(0, 6))
        if op == 0:  # random bit flips
            for _ in range(int(rng.integers(1, 4))):
                bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
        elif op == 1:  # truncation
            bad = bad[: int(rng.integers(0, len(bad)))]
        elif op == 2:  # insertion of random bytes
            pos = int(rng.integers(0, len(bad) + 1))
            bad[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
        elif op == 3:  # a forged u32/u16 anywhere (lengths, sizes, counts), CRCs left as they are
            pos = int(rng.integers(0, len(bad) - 4))
            width = int(rng.choice([2, 4]))
            value = int(rng.choice(big)) & ((1 << (8 * width)) - 1)
            bad[pos : pos + width] = value.to_bytes(width, "little")
        elif op == 4:  # a forged header with valid CRCs: sizes, counts and section lengths
            n_sec = int(rng.integers(0, 4))
            secs = [(int(rng.choice([1, 2, 6, 999, 0])), int(rng.integers(0, 4)), b"xy") for _ in range(n_sec)]
            bad = bytearray(
                _forge(
                    version=int(rng.choice([0, 1, 1, 2])),
                    width=int(rng.choice(big)),
                    height=int(rng.choice(big)),
                    channels=int(rng.choice([0, 1, 3, 4, 5])),
                    method=int(rng.choice([0, 1, 2])),
                    n_gaussians=int(rng.choice(big)),
                    n_sections=int(rng.choice([n_sec, n_sec, 0xFFFF, n_sec + 1])),
                    sections=secs,
                    lengths={i: int(rng.choice(big)) for i in range(n_sec) if rng.random() < 0.5},
                )
            )
        else:  # random garbage, sometimes behind a valid magic
            bad = bytearray(rng.integers(0, 256, int(rng.integers(0, 80)), dtype=np.uint8).tobytes())
            if rng.random() < 0.5:
                bad[:5] = b"SPIX\x01"
        try:
            read_spix(bytes(bad))
            passed += 1
        except SplatpixError as e:
            assert "\n" not in str(e)
    assert passed < 400  # only forged files with consistent CRCs and fields can pass
    assert time.perf_counter() - t0 < 10.0
