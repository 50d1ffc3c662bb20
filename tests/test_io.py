"""Tests for splatpix.io: image loading/saving, atomic writes, input protection."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from splatpix.errors import SplatpixError
from splatpix.io import (
    DEFAULT_MAX_PIXELS,
    atomic_write,
    atomic_write_bytes,
    check_not_input,
    load_image,
    sample_image_path,
    save_image,
)

RNG = np.random.default_rng(1234)
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _rand_u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def _smooth_u16(h: int, w: int, c: int) -> np.ndarray:
    """A smooth-ish 16-bit image with noise (so that encoders use all filter types)."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 997 + y * 331 + k * 7919) % 65536 for k in range(c)], axis=2)
    noise = RNG.integers(0, 300, size=(h, w, c))
    return ((base + noise) % 65536).astype(np.uint16)


# ----- an independent PNG writer for the tests: explicit filters per row, optional Adam7 ----------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _filter_rows(raw: np.ndarray, bpp: int, first_type: int) -> bytes:
    """Filter ``raw`` (h, rowbytes) uint8 cycling through the 5 filter types (computed from raw values)."""
    h, rb = raw.shape
    out = bytearray()
    x = raw.astype(np.int32)
    for i in range(h):
        t = (first_type + i) % 5
        cur = x[i]
        up = x[i - 1] if i > 0 else np.zeros(rb, np.int32)
        left = np.concatenate((np.zeros(bpp, np.int32), cur[:-bpp]))
        ul = np.concatenate((np.zeros(bpp, np.int32), up[:-bpp]))
        if t == 0:
            pred = np.zeros(rb, np.int32)
        elif t == 1:
            pred = left
        elif t == 2:
            pred = up
        elif t == 3:
            pred = (left + up) // 2
        else:
            pred = np.empty(rb, np.int32)
            for j in range(rb):  # scalar Paeth, straight from the PNG specification
                a, b, c = int(left[j]), int(up[j]), int(ul[j])
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred[j] = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
        out.append(t)
        out += ((cur - pred) % 256).astype(np.uint8).tobytes()
    return bytes(out)


def _write_png(
    path: Path,
    pixels: np.ndarray,
    colour: int,
    interlace: bool = False,
    trns: bytes | None = None,
    truncate_to: int | None = None,
) -> None:
    h, w = pixels.shape[:2]
    c = 1 if pixels.ndim == 2 else pixels.shape[2]
    depth = 8 * pixels.dtype.itemsize
    bpp = c * pixels.dtype.itemsize
    be = pixels.astype(pixels.dtype.newbyteorder(">")).reshape(h, w, c)
    if interlace:
        stream = b""
        for k, (x0, y0, dx, dy) in enumerate(ADAM7):
            sub = be[y0::dy, x0::dx]
            if sub.size:
                raw = np.ascontiguousarray(sub).view(np.uint8).reshape(sub.shape[0], -1)
                stream += _filter_rows(raw, bpp, k)
    else:
        raw = np.ascontiguousarray(be).view(np.uint8).reshape(h, w * bpp)
        stream = _filter_rows(raw, bpp, 0)
    comp = zlib.compress(stream)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, int(interlace))
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    if trns is not None:
        data += _chunk(b"tRNS", trns)
    half = len(comp) // 2
    data += _chunk(b"IDAT", comp[:half]) + _chunk(b"IDAT", comp[half:]) + _chunk(b"IEND", b"")
    path.write_bytes(data[:truncate_to] if truncate_to else data)


# ----- loading -------------------------------------------------------------------------------------------


def test_rgb8_png_round_trip(tmp_path: Path) -> None:
    arr = _rand_u8(13, 17, 3)
    p = tmp_path / "a.png"
    Image.fromarray(arr).save(p)
    img = load_image(p)
    assert img.dtype == torch.float32 and img.shape == (3, 13, 17)
    assert torch.equal(torch.round(img * 255).to(torch.uint8).permute(1, 2, 0), torch.from_numpy(arr))
    out = tmp_path / "b.png"
    save_image(img, out)
    assert np.array_equal(np.asarray(Image.open(out)), arr)
    assert torch.equal(load_image(out), img)


def test_rgba_png_keeps_alpha(tmp_path: Path) -> None:
    arr = _rand_u8(9, 11, 4)
    p = tmp_path / "a.png"
    Image.fromarray(arr).save(p)
    img = load_image(p)
    assert img.shape == (4, 9, 11)
    assert np.array_equal(np.round(img.numpy() * 255).astype(np.uint8).transpose(1, 2, 0), arr)
    out = tmp_path / "b.png"
    save_image(img, out)
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im), arr)


def test_gray8_png(tmp_path: Path) -> None:
    arr = _rand_u8(7, 5)
    p = tmp_path / "g.png"
    Image.fromarray(arr).save(p)
    img = load_image(p)
    assert img.shape == (1, 7, 5)
    assert np.array_equal(np.round(img[0].numpy() * 255).astype(np.uint8), arr)
    out = tmp_path / "g2.png"
    save_image(img, out)
    with Image.open(out) as im:
        assert im.mode == "L"
        assert np.array_equal(np.asarray(im), arr)


def test_gray16_png_pillow_written(tmp_path: Path) -> None:
    arr = _smooth_u16(10, 12, 1)[:, :, 0]
    p = tmp_path / "g16.png"
    im16 = Image.fromarray(arr)
    assert im16.mode == "I;16"
    im16.save(p)
    img = load_image(p)
    assert img.shape == (1, 10, 12)
    assert np.array_equal(np.round(img[0].double().numpy() * 65535).astype(np.uint16), arr)
    out = tmp_path / "g16b.png"
    save_image(img, out, bits=16)
    with Image.open(out) as im:  # readable by Pillow, values exact
        assert np.array_equal(np.asarray(im).astype(np.uint16), arr)
    assert torch.equal(load_image(out), img)


@pytest.mark.parametrize("c", [3, 4])
def test_colour16_png_round_trip(tmp_path: Path, c: int) -> None:
    arr = _smooth_u16(21, 19, c)
    img = torch.from_numpy(arr.astype(np.float64) / 65535).permute(2, 0, 1).float()
    out = tmp_path / "c16.png"
    save_image(img, out, bits=16)
    with Image.open(out) as im:
        assert im.size == (19, 21) and im.mode == ("RGB" if c == 3 else "RGBA")
    back = load_image(out)
    assert back.shape == (c, 21, 19)
    got = np.round(back.double().numpy() * 65535).astype(np.uint16).transpose(1, 2, 0)
    assert np.array_equal(got, arr)


@pytest.mark.parametrize("interlace", [False, True])
def test_rgb16_png_all_filters_independent_writer(tmp_path: Path, interlace: bool) -> None:
    arr = _smooth_u16(23, 29, 3)
    p = tmp_path / "f.png"
    _write_png(p, arr, colour=2, interlace=interlace)
    got = np.round(load_image(p).double().numpy() * 65535).astype(np.uint16).transpose(1, 2, 0)
    assert np.array_equal(got, arr)


def test_gray_alpha16_and_trns16(tmp_path: Path) -> None:
    ga = _smooth_u16(6, 7, 2)
    p = tmp_path / "ga.png"
    _write_png(p, ga, colour=4)
    img = load_image(p)
    assert img.shape == (4, 6, 7)
    vals = np.round(img.double().numpy() * 65535).astype(np.uint16)
    for k in range(3):
        assert np.array_equal(vals[k], ga[:, :, 0])
    assert np.array_equal(vals[3], ga[:, :, 1])

    rgb = _smooth_u16(5, 6, 3)
    key = rgb[2, 3]
    p2 = tmp_path / "trns.png"
    _write_png(p2, rgb, colour=2, trns=struct.pack(">3H", *key.tolist()))
    img2 = load_image(p2)
    assert img2.shape == (4, 5, 6)
    assert img2[3, 2, 3] == 0 and img2[3, 0, 0] == 1


def test_gray16_trns_and_interlaced(tmp_path: Path) -> None:
    g = _smooth_u16(9, 11, 1)[:, :, 0]
    p = tmp_path / "gt.png"
    _write_png(p, g, colour=0, trns=struct.pack(">H", int(g[4, 5])))
    img = load_image(p)
    assert img.shape == (4, 9, 11)
    vals = np.round(img.double().numpy() * 65535).astype(np.uint16)
    for k in range(3):
        assert np.array_equal(vals[k], g)
    assert np.array_equal(vals[3] == 0, g == g[4, 5])
    pi = tmp_path / "gi.png"
    _write_png(pi, g, colour=0, interlace=True)
    got = load_image(pi, max_pixels=DEFAULT_MAX_PIXELS)
    assert got.shape == (1, 9, 11)
    assert np.array_equal(np.round(got[0].double().numpy() * 65535).astype(np.uint16), g)


def test_jpeg_load_and_save(tmp_path: Path) -> None:
    y, x = np.mgrid[0:32, 0:48]
    arr = np.stack((x * 5, y * 7, (x + y) * 2), axis=2).clip(0, 255).astype(np.uint8)
    p = tmp_path / "a.jpg"
    Image.fromarray(arr).save(p, quality=95)
    img = load_image(p)
    assert img.shape == (3, 32, 48)
    assert float((img - torch.from_numpy(arr).permute(2, 0, 1) / 255).abs().mean()) < 0.02
    out = tmp_path / "b.jpeg"
    save_image(img, out)
    assert float((load_image(out) - img).abs().mean()) < 0.02
    with pytest.raises(SplatpixError, match="alpha"):
        save_image(torch.zeros(4, 4, 4), tmp_path / "c.jpg")
    with pytest.raises(SplatpixError):
        save_image(img, tmp_path / "d.jpg", bits=16)


def test_palette_and_la(tmp_path: Path) -> None:
    arr = _rand_u8(8, 8, 3)
    pal = Image.fromarray(arr).quantize(16)
    p = tmp_path / "p.png"
    pal.save(p)
    img = load_image(p)
    assert img.shape == (3, 8, 8)
    assert np.array_equal(np.round(img.numpy() * 255).astype(np.uint8).transpose(1, 2, 0),
                          np.asarray(pal.convert("RGB")))
    pt = tmp_path / "pt.png"
    pal.save(pt, transparency=0)
    img_t = load_image(pt)
    assert img_t.shape == (4, 8, 8)
    idx = np.asarray(pal)
    assert np.array_equal(img_t[3].numpy() == 0, idx == 0)

    la = Image.fromarray(_rand_u8(5, 6, 2))
    pla = tmp_path / "la.png"
    la.save(pla)
    img_la = load_image(pla)
    assert img_la.shape == (4, 5, 6)
    assert torch.equal(img_la[0], img_la[1]) and torch.equal(img_la[0], img_la[2])


def test_sample_image() -> None:
    p = sample_image_path()
    assert p.is_file() and p.name == "kodim23_384x256.png"
    img = load_image(p)
    assert img.shape == (3, 256, 384)
    assert (p.parent / "LICENSE.md").is_file()


def test_save_rounds_and_clamps(tmp_path: Path) -> None:
    img = torch.tensor([[[0.4 / 255, 0.6 / 255, -1.0, 2.0]]])
    out = tmp_path / "r.png"
    save_image(img, out)
    assert np.asarray(Image.open(out)).tolist() == [[0, 1, 0, 255]]


# ----- load errors ---------------------------------------------------------------------------------------


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(SplatpixError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(SplatpixError, match="directory"):
        load_image(tmp_path)
    txt = tmp_path / "text.png"
    txt.write_text("hello, this is not an image\n")
    with pytest.raises(SplatpixError, match="text.png"):
        load_image(txt)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(SplatpixError, match="empty"):
        load_image(empty)


def test_truncated_png(tmp_path: Path) -> None:
    arr = _rand_u8(40, 40, 3)
    p = tmp_path / "full.png"
    Image.fromarray(arr).save(p)
    data = p.read_bytes()
    t = tmp_path / "trunc.png"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(SplatpixError, match="trunc.png"):
        load_image(t)
    t16 = tmp_path / "trunc16.png"
    _write_png(t16, _smooth_u16(20, 20, 3), colour=2, truncate_to=300)
    with pytest.raises(SplatpixError, match="trunc16.png.*truncated"):
        load_image(t16)


def test_corrupt_png16(tmp_path: Path) -> None:
    p = tmp_path / "c16.png"
    _write_png(p, _smooth_u16(10, 10, 3), colour=2)
    data = bytearray(p.read_bytes())
    data[60] ^= 0xFF  # inside the first IDAT: CRC mismatch
    p.write_bytes(bytes(data))
    with pytest.raises(SplatpixError, match="c16.png"):
        load_image(p)


def test_max_pixels(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    Image.fromarray(_rand_u8(10, 20, 3)).save(p)
    with pytest.raises(SplatpixError, match="too large"):
        load_image(p, max_pixels=199)
    assert load_image(p, max_pixels=200).shape == (3, 10, 20)
    p16 = tmp_path / "big16.png"
    _write_png(p16, _smooth_u16(10, 20, 3), colour=2)
    with pytest.raises(SplatpixError, match="too large"):
        load_image(p16, max_pixels=100)
    # Refused from the header alone: the (bogus) pixel data is never decoded.
    bomb = tmp_path / "bomb16.png"
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 16, 2, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"junk") + _chunk(b"IEND", b""))
    with pytest.raises(SplatpixError, match="bomb16.png: image too large"):
        load_image(bomb)


def test_zero_size_png(tmp_path: Path) -> None:
    p = tmp_path / "zero.png"
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 5, 16, 2, 0, 0, 0))
    p.write_bytes(data + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b""))
    with pytest.raises(SplatpixError, match="zero.png"):
        load_image(p)
    p8 = tmp_path / "zero8.png"
    data8 = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0))
    p8.write_bytes(data8 + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b""))
    with pytest.raises(SplatpixError, match="zero8.png"):
        load_image(p8)


def test_save_errors(tmp_path: Path) -> None:
    img = torch.rand(3, 4, 4)
    for name in ("x.bmp", "x.tif", "x"):
        with pytest.raises(SplatpixError, match="unsupported output format"):
            save_image(img, tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(SplatpixError):
        save_image(torch.rand(2, 4, 4), tmp_path / "two.png")
    with pytest.raises(SplatpixError):
        save_image(img, tmp_path / "b.png", bits=12)
    with pytest.raises(SplatpixError, match="does not exist"):
        save_image(img, tmp_path / "nodir" / "x.png")
    assert sorted(os.listdir(tmp_path)) == []


# ----- atomic writes and input protection ----------------------------------------------------------------


def test_atomic_write_success_and_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    atomic_write_bytes(dest, b"first")
    assert dest.read_bytes() == b"first"
    with pytest.raises(RuntimeError):
        with atomic_write(dest) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert dest.read_bytes() == b"first"  # not clobbered
    assert os.listdir(tmp_path) == ["out.bin"]  # no temp file left

    new = tmp_path / "new.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(new, "w") as f:
            f.write("partial")
            raise KeyboardInterrupt
    assert not new.exists()
    assert os.listdir(tmp_path) == ["out.bin"]

    with atomic_write(new, "w") as f:
        f.write("héllo\n")
    assert new.read_text(encoding="utf-8") == "héllo\n"
    assert sorted(os.listdir(tmp_path)) == ["new.txt", "out.bin"]


def test_atomic_write_keeps_mode_and_follows_symlink(tmp_path: Path) -> None:
    dest = tmp_path / "m.bin"
    dest.write_bytes(b"x")
    os.chmod(dest, 0o640)
    atomic_write_bytes(dest, b"y")
    assert dest.read_bytes() == b"y" and (os.stat(dest).st_mode & 0o777) == 0o640
    link = tmp_path / "link.bin"
    link.symlink_to(dest)
    atomic_write_bytes(link, b"z")
    assert link.is_symlink() and dest.read_bytes() == b"z"


def test_failed_save_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "bad.jpg"
    out.write_bytes(b"old")
    with pytest.raises(SplatpixError):
        save_image(torch.rand(4, 3, 3), out)
    assert out.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["bad.jpg"]


def test_check_not_input(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    b = tmp_path / "b.png"
    check_not_input(b, a)
    check_not_input(b, a, None)
    with pytest.raises(SplatpixError, match="refusing to overwrite input"):
        check_not_input(a, a)
    with pytest.raises(SplatpixError, match="refusing to overwrite input"):
        check_not_input(tmp_path / "sub" / ".." / "a.png", b, str(a))
    link = tmp_path / "l.png"
    link.symlink_to(a)
    with pytest.raises(SplatpixError):
        check_not_input(link, a)
    hard = tmp_path / "h.png"
    os.link(a, hard)
    with pytest.raises(SplatpixError):
        check_not_input(hard, a)


@pytest.mark.parametrize("channels,bits", [(1, 8), (3, 8), (4, 8), (3, 16), (1, 16)])
def test_streamed_png_equals_save_image(tmp_path, channels, bits):
    import imagecodecs

    from splatpix.io import PngStreamWriter

    x = torch.rand(channels, 37, 53, generator=torch.Generator().manual_seed(channels + bits))
    with PngStreamWriter(tmp_path / "s.png", 53, 37, channels, bits) as w:
        w.write(x[:, :10])
        w.write(x[:, 10:])
    save_image(x, tmp_path / "f.png", bits=bits)
    a = imagecodecs.png_decode((tmp_path / "s.png").read_bytes())
    b = imagecodecs.png_decode((tmp_path / "f.png").read_bytes())
    assert a.dtype == b.dtype and np.array_equal(a, b)


def test_streamed_png_leaves_nothing_when_incomplete_or_broken(tmp_path):
    from splatpix.io import PngStreamWriter

    w = PngStreamWriter(tmp_path / "s.png", 4, 4, 3)
    w.write(torch.zeros(3, 2, 4))
    with pytest.raises(SplatpixError, match="2 of 4 rows"):
        w.close()
    with pytest.raises(SplatpixError, match="non-finite"), PngStreamWriter(tmp_path / "t.png", 4, 4, 3) as w:
        w.write(torch.full((3, 4, 4), float("nan")))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_webp_output_is_lossless(tmp_path: Path, channels: int) -> None:
    """``.webp`` outputs (every command that writes an image) keep the 8-bit pixels exactly."""
    img = torch.rand(channels, 9, 13)
    save_image(img, tmp_path / "x.webp")
    back = load_image(tmp_path / "x.webp")
    want = torch.round(img * 255) / 255
    assert back.shape[0] == (3 if channels == 1 else channels)
    assert torch.equal(back, want.expand(back.shape[0], -1, -1) if channels == 1 else want)
    with pytest.raises(SplatpixError, match="8 bits"):
        save_image(img, tmp_path / "y.webp", bits=16)
