"""Image I/O and safe file writing.

Images are ``float32`` tensors of shape ``(C, H, W)`` with values in ``[0, 1]`` and ``C`` in ``{1, 3, 4}``
(grayscale, RGB, RGBA). Reading goes through Pillow, except for 16-bit PNG files, which Pillow can only read
at full depth when they are grayscale: those are decoded here by a small, strict PNG reader (zlib + numpy),
so that 16-bit grayscale, RGB and RGBA files all keep their full precision. 16-bit PNG files are written by
the matching writer below; 8-bit PNG and JPEG files are written by Pillow.

Every file is treated as untrusted: the pixel count is checked from the header before any pixel data is
decoded, and every failure becomes a :class:`~splatpix.errors.SplatpixError` whose one-line message names
the file and the reason. Output files are written atomically (temporary file in the same directory, fsync,
``os.replace``), so an interrupted or failed write never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from importlib import resources
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from .errors import SplatpixError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "atomic_write",
    "atomic_write_bytes",
    "check_not_input",
    "load_image",
    "sample_image_path",
    "save_image",
]

DEFAULT_MAX_PIXELS = 100_000_000
"""Default limit on ``width * height`` of an image to load (guards against decompression bombs)."""

PathLike = str | os.PathLike[str]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Colour type -> channels stored in the file.
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
# Adam7 passes: (x0, y0, dx, dy).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_SAMPLE_IMAGE = "kodim23_384x256.png"
_OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


def load_image(path: PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Tensor:
    """Load an image as a ``float32`` tensor ``(C, H, W)`` in ``[0, 1]``, ``C`` in ``{1, 3, 4}``.

    8- and 16-bit PNG (grayscale, RGB, RGBA, gray+alpha, palette), JPEG and the other formats Pillow reads
    are accepted. Gray+alpha and palette images with transparency become RGBA; other palette images become
    RGB; JPEG EXIF orientation is applied. Images with more than ``max_pixels`` pixels are refused from
    their header, before decoding. Any failure raises :class:`SplatpixError`.
    """
    name = os.fspath(path)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise SplatpixError(f"{name}: invalid max_pixels {max_pixels!r} (need a positive integer)")
    _check_readable_file(name, "image")
    png16 = _png16_header(name)
    if png16 is not None:
        arr, maxval = _load_png16(name, max_pixels)
    else:
        arr, maxval = _load_with_pillow(name, max_pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    img = torch.from_numpy(np.ascontiguousarray(arr.astype(np.float32) / np.float32(maxval)))
    return img.permute(2, 0, 1).contiguous()


def _check_readable_file(name: str, what: str) -> int:
    """Raise unless ``name`` is an existing, non-empty regular file; return its size in bytes."""
    if not os.path.exists(name):
        raise SplatpixError(f"{name}: no such file")
    if os.path.isdir(name):
        raise SplatpixError(f"{name}: is a directory, not an {what} file")
    if not os.path.isfile(name):
        raise SplatpixError(f"{name}: not a regular file")
    try:
        size = os.path.getsize(name)
    except OSError as e:
        raise SplatpixError(f"{name}: cannot read ({_reason(e)})") from e
    if size == 0:
        raise SplatpixError(f"{name}: empty file, not an {what}")
    return size


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _check_size(name: str, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise SplatpixError(f"{name}: image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise SplatpixError(
            f"{name}: image too large ({width}x{height} = {width * height} pixels; the limit is {max_pixels})"
        )


def _load_with_pillow(name: str, max_pixels: int) -> tuple[np.ndarray, float]:
    try:
        with warnings.catch_warnings():
            # We enforce our own limit (max_pixels) below, from the header.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(name) as im:
                width, height = im.size
                _check_size(name, width, height, max_pixels)
                im.load()
                return _pillow_to_array(name, im)
    except SplatpixError:
        raise
    except Image.DecompressionBombError as e:
        raise SplatpixError(f"{name}: image too large (refused by Pillow's decompression-bomb check)") from e
    except FileNotFoundError as e:
        raise SplatpixError(f"{name}: no such file") from e
    except PermissionError as e:
        raise SplatpixError(f"{name}: cannot read (permission denied)") from e
    except Image.UnidentifiedImageError as e:
        raise SplatpixError(f"{name}: not an image file (or an unsupported or corrupt one)") from e
    except MemoryError as e:
        raise SplatpixError(f"{name}: not enough memory to decode the image") from e
    except Exception as e:  # noqa: BLE001 - any decoder failure on untrusted input is a user-facing error
        raise SplatpixError(f"{name}: cannot decode image, truncated or corrupt ({_reason(e)})") from e


def _pillow_to_array(name: str, im: Image.Image) -> tuple[np.ndarray, float]:
    """Convert a loaded Pillow image to an ``(H, W)`` or ``(H, W, C)`` array and its maximum value."""
    if im.format in ("JPEG", "MPO", "TIFF", "WEBP"):
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # noqa: BLE001 - a malformed EXIF orientation is ignored, not fatal
            pass
    mode = im.mode
    has_alpha = "transparency" in im.info
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)
        return np.clip(arr, 0, 65535), 65535.0
    if mode == "F":
        return np.clip(np.nan_to_num(np.asarray(im, dtype=np.float64)), 0.0, 1.0), 1.0
    if mode == "1":
        im = im.convert("L")
    elif mode in ("L", "RGB", "P"):
        if has_alpha:
            im = im.convert("RGBA")
        elif mode == "P":
            im = im.convert("RGB")
    elif mode in ("LA", "La", "PA", "RGBa", "RGBA"):
        im = im.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    else:
        raise SplatpixError(f"{name}: unsupported image mode {mode!r}")
    arr = np.asarray(im)
    if arr.dtype != np.uint8:
        raise SplatpixError(f"{name}: unsupported pixel type {arr.dtype} in mode {im.mode!r}")
    return arr, 255.0


# ----- 16-bit PNG reader --------------------------------------------------------------------------------


def _png16_header(name: str) -> tuple[int, int, int, int] | None:
    """``(width, height, colour_type, interlace)`` if ``name`` is a 16-bit PNG, else ``None``."""
    try:
        with open(name, "rb") as f:
            head = f.read(33)
    except OSError as e:
        raise SplatpixError(f"{name}: cannot read ({_reason(e)})") from e
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, depth, ctype, _comp, _filt, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if depth != 16:
        return None
    return width, height, ctype, interlace


def _load_png16(name: str, max_pixels: int) -> tuple[np.ndarray, float]:
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SplatpixError(f"{name}: cannot read ({_reason(e)})") from e
    try:
        arr = _decode_png(data, max_pixels, name)
    except SplatpixError:
        raise
    except MemoryError as e:
        raise SplatpixError(f"{name}: not enough memory to decode the image") from e
    except Exception as e:  # noqa: BLE001 - any decoder failure on untrusted input is a user-facing error
        raise SplatpixError(f"{name}: cannot decode PNG, truncated or corrupt ({_reason(e)})") from e
    return arr, float((1 << (8 * arr.dtype.itemsize)) - 1)


def _decode_png(data: bytes, max_pixels: int, name: str = "<png>") -> np.ndarray:
    """Decode an 8- or 16-bit non-palette PNG to ``(H, W, C)`` uint8/uint16, ``C`` in ``{1, 3, 4}``.

    Gray+alpha becomes RGBA; a ``tRNS`` colour key becomes an alpha channel (RGBA).
    """

    def bad(reason: str) -> SplatpixError:
        return SplatpixError(f"{name}: corrupt PNG ({reason})")

    if data[:8] != _PNG_SIGNATURE:
        raise bad("bad signature")
    pos = 8
    header: tuple[int, ...] | None = None
    trns: bytes | None = None
    idat: list[bytes] = []
    seen_iend = False
    while pos < len(data):
        if pos + 8 > len(data):
            raise SplatpixError(f"{name}: truncated PNG (incomplete chunk header)")
        length, ctype_bytes = struct.unpack(">I4s", data[pos : pos + 8])
        if length > 0x7FFFFFFF:
            raise bad("chunk length out of range")
        end = pos + 8 + length
        if end + 4 > len(data):
            raise SplatpixError(f"{name}: truncated PNG (chunk {ctype_bytes!r} runs past the end)")
        body = data[pos + 8 : end]
        critical = not (ctype_bytes[0] & 0x20)
        if critical or ctype_bytes == b"tRNS":
            (crc,) = struct.unpack(">I", data[end : end + 4])
            if zlib.crc32(ctype_bytes + body) & 0xFFFFFFFF != crc:
                raise bad(f"CRC mismatch in chunk {ctype_bytes!r}")
        pos = end + 4
        if header is None:
            if ctype_bytes != b"IHDR" or length != 13:
                raise bad("first chunk is not a valid IHDR")
            header = struct.unpack(">IIBBBBB", body)
            width, height, depth, colour, comp, filt, interlace = header
            if depth not in (8, 16) or colour not in _PNG_CHANNELS:
                raise bad(f"unsupported bit depth {depth} / colour type {colour}")
            if comp != 0 or filt != 0 or interlace not in (0, 1):
                raise bad("unknown compression, filter or interlace method")
            _check_size(name, width, height, max_pixels)
        elif ctype_bytes == b"IDAT":
            idat.append(body)
        elif ctype_bytes == b"tRNS":
            trns = body
        elif ctype_bytes == b"IEND":
            seen_iend = True
            break
        elif ctype_bytes == b"IHDR":
            raise bad("duplicate IHDR")
        elif critical and ctype_bytes != b"PLTE":
            raise bad(f"unknown critical chunk {ctype_bytes!r}")
    if header is None:
        raise SplatpixError(f"{name}: truncated PNG (no IHDR)")
    if not idat:
        raise SplatpixError(f"{name}: truncated PNG (no image data)")
    width, height, depth, colour, _comp, _filt, interlace = header
    channels = _PNG_CHANNELS[colour]
    nbytes = depth // 8
    bpp = channels * nbytes

    if interlace:
        passes = []
        for x0, y0, dx, dy in _ADAM7:
            pw = (width - x0 + dx - 1) // dx if width > x0 else 0
            ph = (height - y0 + dy - 1) // dy if height > y0 else 0
            passes.append((x0, y0, dx, dy, pw, ph))
    else:
        passes = [(0, 0, 1, 1, width, height)]
    expected = sum(ph * (1 + pw * bpp) for *_, pw, ph in passes if pw and ph)

    dec = zlib.decompressobj()
    try:
        raw = dec.decompress(b"".join(idat), expected)
    except zlib.error as e:
        raise bad(f"bad compressed data: {e}") from e
    if len(raw) < expected:
        what = "truncated PNG" if not seen_iend else "corrupt PNG"
        raise SplatpixError(f"{name}: {what} (image data ends early: {len(raw)} of {expected} bytes)")

    out = np.empty((height, width * bpp), dtype=np.uint8) if interlace else np.empty((0, 0), np.uint8)
    offset = 0
    for x0, y0, dx, dy, pw, ph in passes:
        if not (pw and ph):
            continue
        size = ph * (1 + pw * bpp)
        block = np.frombuffer(raw, dtype=np.uint8, count=size, offset=offset).reshape(ph, 1 + pw * bpp)
        offset += size
        rows = _unfilter(block, bpp, name)
        if interlace:
            dst = out.reshape(height, width, bpp)
            dst[y0::dy, x0::dx] = rows.reshape(ph, pw, bpp)
        else:
            out = rows

    if nbytes == 2:
        pixels = out.reshape(height, width, bpp).view(">u2").astype(np.uint16)
        pixels = pixels.reshape(height, width, channels)
    else:
        pixels = out.reshape(height, width, channels)
    maxval = (1 << depth) - 1

    if colour == 4:  # gray + alpha -> RGBA
        g, a = pixels[:, :, :1], pixels[:, :, 1:]
        return np.concatenate((g, g, g, a), axis=2)
    if trns is not None and colour in (0, 2):
        if len(trns) != 2 * channels:
            raise bad("tRNS chunk has the wrong size")
        key = np.array(struct.unpack(f">{channels}H", trns), dtype=np.int64)
        transparent = np.all(pixels.astype(np.int64) == key, axis=2, keepdims=True)
        alpha = np.where(transparent, 0, maxval).astype(pixels.dtype)
        rgb = pixels if channels == 3 else np.repeat(pixels, 3, axis=2)
        return np.concatenate((rgb, alpha), axis=2)
    return pixels


def _unfilter(block: np.ndarray, bpp: int, name: str) -> np.ndarray:
    """Undo the PNG per-row filters of ``block`` (``(h, 1 + rowbytes)`` uint8); return ``(h, rowbytes)``."""
    h = block.shape[0]
    types = block[:, 0]
    if np.any(types > 4):
        raise SplatpixError(f"{name}: corrupt PNG (unknown filter type {int(types.max())})")
    filt = block[:, 1:]
    rowbytes = filt.shape[1]
    out = np.empty((h, rowbytes), dtype=np.uint8)
    prev = np.zeros(rowbytes, dtype=np.uint8)
    hard = types >= 3  # Average and Paeth depend on the reconstructed left neighbour: see _unfilter_wavefront
    i = 0
    while i < h:
        t = int(types[i])
        if hard[i]:
            # Everything up to the last Average/Paeth row goes through the wavefront (which handles every
            # filter type): it costs about (rows + width) steps per strip, however short the run of rows.
            j = int(np.flatnonzero(hard)[-1]) + 1
            out[i:j] = _unfilter_wavefront(filt[i:j], types[i:j], prev, bpp)
            prev = out[j - 1]
            i = j
            continue
        row = filt[i]
        if t == 0:
            out[i] = row
        elif t == 1:  # Sub: running sum along the row, per byte of the pixel, modulo 256
            out[i] = np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        else:  # Up
            out[i] = row + prev
        prev = out[i]
        i += 1
    return out


def _unfilter_wavefront(filt: np.ndarray, types: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Unfilter rows of any filter types, vectorised along anti-diagonals.

    A reconstructed pixel ``(r, c)`` depends on ``(r, c-1)``, ``(r-1, c)`` and ``(r-1, c-1)``, so all the
    pixels of an anti-diagonal ``r + c = k`` can be computed at once from the two previous ones. The rows
    are processed in strips whose height keeps the skewed working arrays small.
    """
    h, rowbytes = filt.shape
    w = rowbytes // bpp
    out = np.empty((h, rowbytes), dtype=np.uint8)
    # Working arrays hold (strip + w + 1) * (strip + 1) * bpp int16 values: keep that under ~16M.
    budget = 16_000_000 / bpp
    strip = int((math.sqrt((w + 2) ** 2 + 4 * budget) - (w + 2)) / 2)
    strip = max(8, min(h, strip))
    for s0 in range(0, h, strip):
        s1 = min(h, s0 + strip)
        out[s0:s1] = _wavefront_strip(filt[s0:s1], types[s0:s1], prev, bpp, w)
        prev = out[s1 - 1]
    return out


def _wavefront_strip(filt: np.ndarray, types: np.ndarray, prev: np.ndarray, bpp: int, w: int) -> np.ndarray:
    h = filt.shape[0]
    # Padded, skewed storage: padded row pr = r + 1 (pr = 0 is the previous row) and padded column pc = c + 1
    # (pc = 0 is the zero left border) are stored at [pr + pc, pr], so that an anti-diagonal is contiguous.
    ndiag = h + w + 1
    rec = np.zeros((ndiag, h + 1, bpp), dtype=np.int16)
    fil = np.zeros((ndiag, h + 1, bpp), dtype=np.int16)
    pr = np.arange(1, h + 1)[:, None]
    pc = np.arange(1, w + 1)[None, :]
    rec[1 : w + 1, 0] = prev.reshape(w, bpp)
    fil[pr + pc, pr] = filt.reshape(h, w, bpp)
    t = np.zeros(h + 1, dtype=np.int64)
    t[1:] = types
    m_sub = (t == 1).astype(np.int16)[:, None]
    m_up = (t == 2).astype(np.int16)[:, None]
    m_avg = (t == 3).astype(np.int16)[:, None]
    is_paeth = (t == 4)[:, None]
    for k in range(2, h + w + 1):
        lo = max(1, k - w)
        hi = min(h, k - 1)
        a = rec[k - 1, lo : hi + 1]  # left
        b = rec[k - 1, lo - 1 : hi]  # up
        c = rec[k - 2, lo - 1 : hi]  # up-left
        pa = np.abs(b - c)
        pb = np.abs(a - c)
        pc_ = np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc_), a, np.where(pb <= pc_, b, c))
        sl = slice(lo, hi + 1)
        pred = a * m_sub[sl] + b * m_up[sl] + ((a + b) >> 1) * m_avg[sl]
        pred = np.where(is_paeth[sl], paeth, pred)
        rec[k, sl] = (fil[k, sl] + pred) & 0xFF
    return rec[pr + pc, pr].astype(np.uint8).reshape(h, w * bpp)


# --------------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------------


def save_image(img: Tensor, path: PathLike, bits: int = 8, *, quality: int = 95) -> None:
    """Write a ``(C, H, W)`` image in ``[0, 1]`` (clamped; ``C`` in ``{1, 3, 4}``) atomically.

    The format follows the extension: ``.png`` (8 or 16 bits per channel) or ``.jpg``/``.jpeg`` (8 bits,
    no alpha; ``quality`` 1-100, 4:4:4 chroma). Values are rounded to the nearest integer level.
    """
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    fmt = _OUTPUT_FORMATS.get(ext)
    if fmt is None:
        shown = repr(ext) if ext else "(no extension)"
        raise SplatpixError(f"{name}: unsupported output format {shown}; use .png, .jpg or .jpeg")
    if bits not in (8, 16):
        raise SplatpixError(f"{name}: unsupported bit depth {bits} (use 8 or 16)")
    if not isinstance(img, Tensor) or img.ndim != 3 or img.shape[0] not in (1, 3, 4):
        shape = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
        raise SplatpixError(f"{name}: cannot save an image of shape {shape}; need (C, H, W), C in 1, 3, 4")
    c, h, w = (int(s) for s in img.shape)
    if h == 0 or w == 0:
        raise SplatpixError(f"{name}: cannot save an empty image ({w}x{h})")
    if fmt == "JPEG":
        if bits != 8:
            raise SplatpixError(f"{name}: JPEG supports only 8 bits per channel; use .png for 16 bits")
        if c == 4:
            raise SplatpixError(f"{name}: JPEG cannot store an alpha channel; use .png for RGBA images")
        if not 1 <= int(quality) <= 100:
            raise SplatpixError(f"{name}: JPEG quality must be in 1..100, got {quality}")
    maxval = (1 << bits) - 1
    x = img.detach().to("cpu", torch.float64).nan_to_num(0.0).clamp(0.0, 1.0)
    q = torch.round(x * maxval).permute(1, 2, 0).numpy()
    q = q.astype(np.uint16 if bits == 16 else np.uint8)
    if bits == 16:
        atomic_write_bytes(name, _encode_png(q))
        return
    pil = Image.fromarray(q[:, :, 0] if c == 1 else q)  # uint8: L, RGB or RGBA
    options: dict[str, Any] = {"quality": int(quality), "subsampling": 0} if fmt == "JPEG" else {}
    with atomic_write(name, "wb") as f:
        pil.save(f, format=fmt, **options)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _encode_png(pixels: np.ndarray) -> bytes:
    """Encode ``(H, W, C)`` uint8/uint16 pixels (``C`` in 1, 3, 4) as PNG, with adaptive row filters."""
    h, w, c = pixels.shape
    depth = 8 * pixels.dtype.itemsize
    colour = {1: 0, 3: 2, 4: 6}[c]
    bpp = c * pixels.dtype.itemsize
    data = np.ascontiguousarray(pixels.astype(pixels.dtype.newbyteorder(">"))).view(np.uint8)
    data = data.reshape(h, w * bpp)
    comp = zlib.compressobj(6)
    parts: list[bytes] = []
    step = max(1, 4_000_000 // max(1, w * bpp))
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        cur = data[r0:r1].astype(np.int16)
        up = data[r0 - 1 : r1 - 1].astype(np.int16) if r0 > 0 else None
        if up is None:
            up = np.concatenate((np.zeros((1, w * bpp), np.int16), cur[:-1]), axis=0)
        left = np.zeros_like(cur)
        left[:, bpp:] = cur[:, :-bpp]
        upleft = np.zeros_like(cur)
        upleft[:, bpp:] = up[:, :-bpp]
        pa = np.abs(up - upleft)
        pb = np.abs(left - upleft)
        pc = np.abs(left + up - 2 * upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        preds = (np.zeros_like(cur), left, up, (left + up) >> 1, paeth)
        cand = np.stack([((cur - p) & 0xFF).astype(np.uint8) for p in preds])  # (5, rows, rowbytes)
        signed = cand.astype(np.int8).astype(np.int32)
        choice = np.argmin(np.abs(signed).sum(axis=2), axis=0)  # minimum sum of absolute differences
        rows = cand[choice, np.arange(r1 - r0)]
        block = np.concatenate((choice.astype(np.uint8)[:, None], rows), axis=1)
        parts.append(comp.compress(block.tobytes()))
    parts.append(comp.flush())
    compressed = b"".join(parts)
    out = [_PNG_SIGNATURE, _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))]
    chunk = 1 << 20
    for i in range(0, max(1, len(compressed)), chunk):
        out.append(_png_chunk(b"IDAT", compressed[i : i + chunk]))
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


# --------------------------------------------------------------------------------------------------------
# Safe file writing
# --------------------------------------------------------------------------------------------------------


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Context manager yielding a file object whose contents replace ``path`` only on success.

    Writes go to a temporary file in the destination directory; on normal exit it is flushed, fsynced and
    moved over ``path`` with :func:`os.replace` (atomic on POSIX and Windows). If the body raises, the
    temporary file is deleted and ``path`` is left untouched. ``mode`` is ``"wb"`` or ``"w"`` (UTF-8 text).
    A symlink at ``path`` is followed: its target is replaced.
    """
    name = os.fspath(path)
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    target = os.path.realpath(name)
    if os.path.isdir(target):
        raise SplatpixError(f"{name}: is a directory")
    directory = os.path.dirname(target) or "."
    if not os.path.isdir(directory):
        raise SplatpixError(f"{name}: cannot write (directory {directory} does not exist)")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise SplatpixError(f"{name}: cannot write ({_reason(e)})") from e
    f: IO[Any] | None = None
    in_body = False
    try:
        try:
            st_mode = os.stat(target).st_mode & 0o7777
        except OSError:
            st_mode = 0o666 & ~_umask()
        with contextlib.suppress(OSError):
            os.chmod(tmp, st_mode)
        f = os.fdopen(fd, "wb") if mode == "wb" else os.fdopen(fd, "w", encoding="utf-8", newline="")
        with f:
            in_body = True
            yield f
            in_body = False
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        if f is None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not in_body:
            raise SplatpixError(f"{name}: cannot write ({_reason(e)})") from e
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def check_not_input(output_path: PathLike, *input_paths: PathLike | None) -> None:
    """Raise :class:`SplatpixError` if ``output_path`` is the same file as one of ``input_paths``.

    Symlinks, ``..`` components and hard links are seen through; ``None`` inputs are ignored.
    """
    out = os.fspath(output_path)
    out_real = os.path.realpath(out)
    for inp in input_paths:
        if inp is None:
            continue
        src = os.fspath(inp)
        same = os.path.realpath(src) == out_real
        if not same and os.path.exists(out) and os.path.exists(src):
            try:
                same = os.path.samefile(out, src)
            except OSError:
                same = False
        if same:
            raise SplatpixError(f"{out}: refusing to overwrite input file {src}; choose another output path")


# --------------------------------------------------------------------------------------------------------
# Packaged data
# --------------------------------------------------------------------------------------------------------


def sample_image_path() -> pathlib.Path:
    """Path of the sample image shipped with the package (Kodak kodim23, 384x256 PNG)."""
    res = resources.files("splatpix").joinpath("data", _SAMPLE_IMAGE)
    path = pathlib.Path(os.fspath(res)) if isinstance(res, os.PathLike) else None
    if path is None or not path.is_file():
        raise SplatpixError(f"sample image {_SAMPLE_IMAGE} is missing from the splatpix installation")
    return path
