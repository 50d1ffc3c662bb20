"""Image files: loading and saving.

Images are ``float32`` tensors of shape ``(C, H, W)`` with values in ``[0, 1]`` and ``C`` in ``{1, 3, 4}``
(grayscale, RGB, RGBA). Reading goes through Pillow, except for 16-bit PNG files, which Pillow can only read
at full depth when they are grayscale: those are decoded with ``imagecodecs`` (libpng), so that 16-bit
grayscale, RGB and RGBA files all keep their full precision. 16-bit PNG files are written with ``imagecodecs``
too; 8-bit PNG and JPEG files are written by Pillow.

Every file is treated as untrusted: the pixel count is checked from the header before any pixel data is
decoded, and every failure becomes a :class:`~splatpix.errors.SplatpixError` whose one-line message names
the file and the reason. Outputs are written atomically (:mod:`.files`).
"""

from __future__ import annotations

import os
import pathlib
import struct
import warnings
from importlib import resources
from typing import TYPE_CHECKING, Any

import imagecodecs
import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    from torch import Tensor

from ..errors import SplatpixError
from .files import atomic_write, atomic_write_bytes, check_readable_file, reason

__all__ = ["DEFAULT_MAX_PIXELS", "PngStreamWriter", "load_image", "sample_image_path", "save_image"]

DEFAULT_MAX_PIXELS = 100_000_000
"""Default limit on ``width * height`` of an image to load (guards against decompression bombs)."""

PathLike = str | os.PathLike[str]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Non-palette colour types: 0 gray, 2 RGB, 4 gray + alpha, 6 RGBA.
_PNG_COLOUR_TYPES = (0, 2, 4, 6)
_SAMPLE_IMAGE = "kodim23_384x256.png"
_OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


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
    check_readable_file(name, "an image")
    png16 = _png16_header(name)
    if png16 is not None:
        arr, maxval = _load_png16(name, png16, max_pixels)
    else:
        arr, maxval = _load_with_pillow(name, max_pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    import torch

    img = torch.from_numpy(np.ascontiguousarray(arr.astype(np.float32) / np.float32(maxval)))
    return img.permute(2, 0, 1).contiguous()


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
        raise SplatpixError(f"{name}: cannot decode image, truncated or corrupt ({reason(e)})") from e


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
        raise SplatpixError(f"{name}: cannot read ({reason(e)})") from e
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[8:16] != struct.pack(">I4s", 13, b"IHDR"):
        return None
    width, height, depth, ctype, _comp, _filt, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if depth != 16:
        return None
    return width, height, ctype, interlace


def _load_png16(name: str, header: tuple[int, int, int, int], max_pixels: int) -> tuple[np.ndarray, float]:
    """Decode a 16-bit PNG to ``(H, W, C)`` uint16, ``C`` in ``{1, 3, 4}``, after checking its header.

    Gray+alpha becomes RGBA; a ``tRNS`` colour key becomes an alpha channel (RGBA).
    """
    width, height, colour, interlace = header
    if colour not in _PNG_COLOUR_TYPES or interlace not in (0, 1):
        raise SplatpixError(f"{name}: corrupt PNG (unsupported bit depth 16 / colour type {colour})")
    _check_size(name, width, height, max_pixels)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SplatpixError(f"{name}: cannot read ({reason(e)})") from e
    try:
        arr = imagecodecs.png_decode(data)
    except MemoryError as e:
        raise SplatpixError(f"{name}: not enough memory to decode the image") from e
    except Exception as e:  # noqa: BLE001 - any decoder failure on untrusted input is a user-facing error
        raise SplatpixError(f"{name}: cannot decode PNG, truncated or corrupt ({reason(e)})") from e
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[:2] != (height, width) or arr.shape[2] not in (1, 2, 3, 4):
        raise SplatpixError(f"{name}: corrupt PNG (decoded shape {arr.shape} does not match the header)")
    if arr.shape[2] == 2:  # gray + alpha (or gray + tRNS) -> RGBA
        g, a = arr[:, :, :1], arr[:, :, 1:]
        arr = np.concatenate((g, g, g, a), axis=2)
    return arr, float((1 << (8 * arr.dtype.itemsize)) - 1)


# --------------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------------


def _float64(img: Any) -> np.ndarray | None:
    """``img`` (a torch tensor or a numpy array) as a float64 numpy array, or ``None`` for anything else."""
    if hasattr(img, "detach") and hasattr(img, "double"):  # a torch tensor (torch is not imported here)
        return img.detach().cpu().double().numpy()
    if isinstance(img, np.ndarray) and (np.issubdtype(img.dtype, np.floating) or np.issubdtype(img.dtype, np.integer)):
        return img.astype(np.float64, copy=False)
    return None


def _quantised(name: str, x: np.ndarray, bits: int) -> np.ndarray:
    """``(H, W, C)`` integer levels of a ``(C, H, W)`` float64 image: refused when non-finite, clamped, rounded."""
    if not np.isfinite(x).all():  # a broken model or render: never written as a plausible picture
        raise SplatpixError(f"{name}: the image has non-finite pixels (NaN or infinite); nothing was written")
    q = np.round(np.clip(x, 0.0, 1.0) * ((1 << bits) - 1)).transpose(1, 2, 0)
    return np.ascontiguousarray(q.astype(np.uint16 if bits == 16 else np.uint8))


def save_image(img: Tensor | np.ndarray, path: PathLike, bits: int = 8, *, quality: int = 95) -> None:
    """Write a ``(C, H, W)`` image in ``[0, 1]`` (clamped; ``C`` in ``{1, 3, 4}``; a torch tensor or a numpy array)
    atomically.

    The format follows the extension: ``.png`` (8 or 16 bits per channel), ``.jpg``/``.jpeg`` (8 bits,
    no alpha; ``quality`` 1-100, 4:4:4 chroma) or ``.webp`` (8 bits, lossless: the pixels as they are; grey is
    stored as RGB). Values are rounded to the nearest integer level.
    """
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    fmt = _OUTPUT_FORMATS.get(ext)
    if fmt is None:
        shown = repr(ext) if ext else "(no extension)"
        raise SplatpixError(f"{name}: unsupported output format {shown}; use .png, .jpg, .jpeg or .webp")
    if bits not in (8, 16):
        raise SplatpixError(f"{name}: unsupported bit depth {bits} (use 8 or 16)")
    x = _float64(img)
    if x is None or x.ndim != 3 or x.shape[0] not in (1, 3, 4):
        shape = tuple(x.shape) if x is not None else type(img).__name__
        raise SplatpixError(f"{name}: cannot save an image of shape {shape}; need (C, H, W), C in 1, 3, 4")
    c, h, w = (int(s) for s in x.shape)
    if h == 0 or w == 0:
        raise SplatpixError(f"{name}: cannot save an empty image ({w}x{h})")
    if fmt == "JPEG":
        if bits != 8:
            raise SplatpixError(f"{name}: JPEG supports only 8 bits per channel; use .png for 16 bits")
        if c == 4:
            raise SplatpixError(f"{name}: JPEG cannot store an alpha channel; use .png for RGBA images")
        if not 1 <= int(quality) <= 100:
            raise SplatpixError(f"{name}: JPEG quality must be in 1..100, got {quality}")
    if fmt == "WEBP" and bits != 8:
        raise SplatpixError(f"{name}: WebP supports only 8 bits per channel; use .png for 16 bits")
    q = _quantised(name, x, bits)
    if bits == 16:
        atomic_write_bytes(name, imagecodecs.png_encode(q[:, :, 0] if c == 1 else q))
        return
    pil = Image.fromarray(q[:, :, 0] if c == 1 else q)  # uint8: L, RGB or RGBA
    options: dict[str, Any] = {"quality": int(quality), "subsampling": 0} if fmt == "JPEG" else {}
    if fmt == "WEBP":
        pil = pil.convert("RGB") if c == 1 else pil
        options = {"lossless": True, "quality": 100, "method": 4}
    with atomic_write(name, "wb") as f:
        pil.save(f, format=fmt, **options)


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




# --------------------------------------------------------------------------------------------------------
# Streaming PNG output
# --------------------------------------------------------------------------------------------------------


class PngStreamWriter:
    """A PNG written band by band (rows top to bottom), so that an image of any size needs only one band in memory.

    ``write(band)`` takes ``(C, rows, W)`` float values in ``[0, 1]`` (non-finite values are refused, as by
    :func:`save_image`), quantised as :func:`save_image` does (``round(x * maxval)``). The file is written atomically:
    :meth:`close` after the last row renames it into place; :meth:`abort` (or leaving a ``with`` block on an
    exception) removes it. 8- or 16-bit, grey, RGB or RGBA."""

    _COLOUR_TYPE = {1: 0, 3: 2, 4: 6}

    def __init__(self, path: PathLike, width: int, height: int, channels: int, bits: int = 8) -> None:
        import zlib

        self.name = os.fspath(path)
        if channels not in self._COLOUR_TYPE or bits not in (8, 16) or width < 1 or height < 1:
            raise SplatpixError(f"{self.name}: cannot write a {width}x{height} PNG of {channels} channels, {bits} bits")
        if os.path.splitext(self.name)[1].lower() != ".png":
            raise SplatpixError(f"{self.name}: streamed output must be a .png file")
        self.width, self.height, self.channels, self.bits = int(width), int(height), int(channels), int(bits)
        self.rows = 0
        self._ctx = atomic_write(self.name, "wb")
        self._f = self._ctx.__enter__()
        self._z = zlib.compressobj(6)
        self._pending = bytearray()
        ihdr = struct.pack(">IIBBBBB", self.width, self.height, self.bits, self._COLOUR_TYPE[self.channels], 0, 0, 0)
        self._f.write(_PNG_SIGNATURE)
        self._chunk(b"IHDR", ihdr)

    def _chunk(self, kind: bytes, data: bytes) -> None:
        import zlib

        self._f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))

    def write(self, band: Tensor | np.ndarray) -> None:
        x = _float64(band)
        if x is None or x.ndim != 3:
            raise SplatpixError(f"{self.name}: a band must be a (C, rows, W) tensor or array")
        c, rows, w = x.shape
        if c != self.channels or w != self.width or self.rows + rows > self.height:
            raise SplatpixError(f"{self.name}: band of shape {tuple(x.shape)} does not fit the image")
        q = _quantised(self.name, x, self.bits)
        q = q.astype(">u2" if self.bits == 16 else np.uint8).reshape(rows, -1)
        lines = np.concatenate((np.zeros((rows, 1), dtype=np.uint8), q.view(np.uint8).reshape(rows, -1)), axis=1)
        self._pending += self._z.compress(np.ascontiguousarray(lines).tobytes())
        if len(self._pending) >= 1 << 20:
            self._chunk(b"IDAT", bytes(self._pending))
            self._pending.clear()
        self.rows += rows

    def close(self) -> None:
        """Finish the file (all rows must have been written) and move it into place."""
        if self.rows != self.height:
            self.abort()
            raise SplatpixError(f"{self.name}: {self.rows} of {self.height} rows written; nothing was written")
        self._pending += self._z.flush()
        self._chunk(b"IDAT", bytes(self._pending))
        self._chunk(b"IEND", b"")
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        """Remove the temporary file; the target is left as it was."""
        err = SplatpixError("aborted")
        try:
            self._ctx.__exit__(SplatpixError, err, None)
        except SplatpixError:
            pass

    def __enter__(self) -> PngStreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
