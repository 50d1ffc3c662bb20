"""Classical image codecs run locally, as rate–distortion baselines for the Gaussian codec.

Codecs (see :data:`CODECS` for those available in this installation, :data:`ALL_CODECS` for all of them):

==========  ==============================  =================================================================
name        library                         parameter ``q`` and settings
==========  ==============================  =================================================================
jpeg        Pillow (libjpeg)                quality, integer 1–95; 4:4:4 chroma (``subsampling=0``),
                                            optimized Huffman tables (``optimize=True``), baseline JFIF.
webp        Pillow (libwebp), lossy         quality, integer 0–100; ``method=6`` (slowest, best).
                                            **Lossy WebP is always 4:2:0** (VP8 has no 4:4:4 mode), which
                                            costs it some PSNR-RGB on colour edges compared with the others.
jpeg2000    Pillow (OpenJPEG)               nominal rate in bits per pixel, float in (0, 24]; encoded with
                                            the irreversible 9/7 wavelet, the colour transform (``mct=1``;
                                            without it PSNR drops by ~2–4 dB) and ``quality_mode="rates"``,
                                            ``quality_layers=[24 / q]``: OpenJPEG's rate control then targets
                                            ``q`` bpp directly. Written as a raw J2K codestream (no JP2 box).
avif        Pillow (libavif, AV1)           quality, integer 0–100; 4:4:4 chroma, ``speed=6``, full range.
jpegxl      imagecodecs (libjxl)            level, integer 0–100 (libjxl's quality scale: 90 is distance 1.0,
                                            100 the smallest distance); default effort (7).
==========  ==============================  =================================================================

For every codec a larger ``q`` gives (up to the encoders' small non-monotonicities) more bits and a higher
quality. Each :class:`Codec` has ``encode(img, q) -> bytes`` and ``decode(data) -> ndarray``, with images as
``uint8`` arrays of shape ``(H, W, 3)``.

:func:`encode_at_quality` encodes, decodes and measures an image at one parameter value;
:func:`encode_at_bpp` searches for the parameter that hits a target rate (see its docstring for the rule).
The rate is always measured on the actual bitstream (``bpp = len(bytes) * 8 / (H * W)``), headers included;
PSNR is on 8-bit RGB (peak 255) and MS-SSIM as in :mod:`splatpix.metrics` (``None`` when a side is
<= 160 px).

Only RGB images are supported for now: grayscale and RGBA inputs raise :class:`ValueError`. Failures inside
the codec libraries raise :class:`~splatpix.errors.SplatpixError` with a one-line message.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, features

from ..errors import SplatpixError

if TYPE_CHECKING:  # torch is imported where an image is scored: the command line lists CODECS without it
    from torch import Tensor

__all__ = [
    "ALL_CODECS",
    "CODECS",
    "Codec",
    "CodecResult",
    "DEFAULT_BPP_TOL",
    "encode_at_bpp",
    "encode_at_quality",
    "get_codec",
    "jpeg2000_encode",
    "to_uint8_rgb",
]

DEFAULT_BPP_TOL = 0.05
"""Default relative tolerance of :func:`encode_at_bpp` above the target rate."""

_J2K_MAX_RATE = 24.0  # bits per pixel of an 8-bit RGB original: ratio 24 / q
_J2K_REFINE_STEPS = 3
_J2K_REFINE_RTOL = 0.01


# --------------------------------------------------------------------------------------------------------
# Input conversion
# --------------------------------------------------------------------------------------------------------


def to_uint8_rgb(img: Tensor | np.ndarray) -> np.ndarray:
    """Return ``img`` as a C-contiguous ``uint8`` array ``(H, W, 3)``.

    Accepts a float tensor ``(3, H, W)`` in ``[0, 1]`` (as from :func:`splatpix.io.load_image`; values are
    clamped and rounded to the nearest 8-bit level, NaN becomes 0) or a ``uint8`` array ``(H, W, 3)``.
    Grayscale and RGBA images raise :class:`ValueError`, other types and dtypes :class:`TypeError`.
    """
    if hasattr(img, "detach") and hasattr(img, "is_floating_point"):  # a torch tensor
        import torch

        from ..metrics import to_8bit

        if not img.is_floating_point():
            raise TypeError(f"expected a float image tensor in [0, 1], got dtype {img.dtype}")
        if img.ndim != 3:
            raise ValueError(f"expected an image tensor of shape (3, H, W), got {tuple(img.shape)}")
        _check_channels(int(img.shape[0]), tuple(img.shape))
        arr = to_8bit(img.detach().cpu().nan_to_num(0.0)).to(torch.uint8).permute(1, 2, 0).numpy()
    elif isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise TypeError(f"expected a uint8 image array (H, W, 3), got dtype {img.dtype}")
        if img.ndim == 2:
            _check_channels(1, img.shape)
        if img.ndim != 3:
            raise ValueError(f"expected an image array of shape (H, W, 3), got {img.shape}")
        _check_channels(int(img.shape[2]), img.shape)
        arr = img
    else:
        raise TypeError(f"expected a torch.Tensor (3, H, W) or a numpy uint8 array (H, W, 3), got {type(img).__name__}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"cannot encode an empty image ({arr.shape[1]}x{arr.shape[0]})")
    return np.ascontiguousarray(arr)


def _check_channels(c: int, shape: tuple[int, ...]) -> None:
    if c == 3:
        return
    kind = {1: "grayscale", 2: "grayscale+alpha", 4: "RGBA"}.get(c, f"{c}-channel")
    raise ValueError(f"classical baselines support only RGB images for now; got a {kind} image of shape {tuple(shape)}")


def _to_tensor(arr: np.ndarray) -> Tensor:
    """``uint8 (H, W, 3)`` -> float ``(3, H, W)`` in ``[0, 1]`` (exact 8-bit levels)."""
    import torch

    return torch.from_numpy(np.array(arr, dtype=np.float64)).permute(2, 0, 1).div(255.0)


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


# --------------------------------------------------------------------------------------------------------
# Codecs
# --------------------------------------------------------------------------------------------------------


def _pil_encode(arr: np.ndarray, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=None).save(buf, format=fmt, **options)
    return buf.getvalue()


def _pil_decoder(fmt: str) -> Callable[[bytes], np.ndarray]:
    def decode(data: bytes) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                im.load()
                if im.mode != "RGB":
                    im = im.convert("RGB")
                return np.array(im)

    return decode


def _encode_jpeg(arr: np.ndarray, q: float) -> bytes:
    return _pil_encode(arr, "JPEG", quality=int(q), subsampling=0, optimize=True)


def _encode_webp(arr: np.ndarray, q: float) -> bytes:
    return _pil_encode(arr, "WEBP", lossless=False, quality=int(q), method=6)


def _encode_avif(arr: np.ndarray, q: float) -> bytes:
    return _pil_encode(arr, "AVIF", quality=int(q), subsampling="4:4:4", speed=6, range="full")


def _j2k_resolutions(h: int, w: int) -> int:
    """OpenJPEG's default of 6 resolution levels, fewer for images too small for them."""
    return max(1, min(6, int(math.floor(math.log2(min(h, w)))) + 1))


def jpeg2000_encode(arr: Tensor | np.ndarray, rate_bpp: float, *, mct: bool = True) -> bytes:
    """Raw Pillow/OpenJPEG encoder: J2K codestream at nominal rate ``rate_bpp`` (ratio ``24 / rate_bpp``).

    ``mct=False`` codes R, G and B separately, which loses several dB; it exists to demonstrate that trap.
    Library errors propagate unchanged (the :class:`Codec` wrapper turns them into ``SplatpixError``).
    """
    arr = to_uint8_rgb(arr)
    h, w = arr.shape[:2]
    return _pil_encode(
        arr,
        "JPEG2000",
        no_jp2=True,
        irreversible=True,
        mct=1 if mct else 0,
        quality_mode="rates",
        quality_layers=[_J2K_MAX_RATE / float(rate_bpp)],
        num_resolutions=_j2k_resolutions(h, w),
    )


def _encode_jxl(arr: np.ndarray, q: float) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode(arr, level=int(q)))


def _decode_jxl(data: bytes) -> np.ndarray:
    import imagecodecs

    return np.asarray(imagecodecs.jpegxl_decode(data))


@dataclass(frozen=True)
class Codec:
    """One classical codec: ``encode(img, q) -> bytes`` and ``decode(data) -> uint8 (H, W, 3)``.

    ``q`` is an integer in ``[q_min, q_max]`` when ``integer_q`` is true, else a float in
    ``(q_min, q_max]``; its meaning is named by ``param`` (``"quality"``, ``"level"`` or ``"rate_bpp"``).
    """

    name: str
    param: str
    q_min: float
    q_max: float
    integer_q: bool
    description: str
    _encode: Callable[[np.ndarray, float], bytes] = field(repr=False)
    _decode: Callable[[bytes], np.ndarray] = field(repr=False)
    _available: Callable[[], bool] = field(repr=False)

    def check_q(self, q: float) -> float:
        """Validate ``q`` for this codec (``ValueError``/``TypeError``) and return it as int or float."""
        if isinstance(q, bool) or not isinstance(q, int | float | np.integer | np.floating):
            raise TypeError(f"{self.name}: {self.param} must be a number, got {type(q).__name__}")
        if not math.isfinite(q):
            raise ValueError(f"{self.name}: {self.param} must be finite, got {q}")
        if self.integer_q:
            if float(q) != int(q):
                raise ValueError(f"{self.name}: {self.param} must be an integer, got {q}")
            q = int(q)
            if not self.q_min <= q <= self.q_max:
                raise ValueError(f"{self.name}: {self.param} must be in {self.q_min:g}..{self.q_max:g}, got {q}")
            return q
        q = float(q)
        if not (math.isfinite(q) and self.q_min < q <= self.q_max):
            raise ValueError(f"{self.name}: {self.param} must be in ({self.q_min:g}, {self.q_max:g}], got {q}")
        return q

    def encode(self, img: Tensor | np.ndarray, q: float) -> bytes:
        """Encode an RGB image (see :func:`to_uint8_rgb`) at parameter ``q``."""
        arr = to_uint8_rgb(img)
        q = self.check_q(q)
        try:
            data = self._encode(arr, q)
        except MemoryError as e:
            size = f"{arr.shape[1]}x{arr.shape[0]}"
            raise SplatpixError(f"{self.name}: not enough memory to encode a {size} image") from e
        except Exception as e:  # noqa: BLE001 - any library failure becomes a one-line user-facing error
            raise SplatpixError(
                f"{self.name}: cannot encode a {arr.shape[1]}x{arr.shape[0]} image at {self.param}={q} ({_one_line(e)})"
            ) from e
        if not data:
            raise SplatpixError(f"{self.name}: the encoder returned no data")
        return data

    def decode(self, data: bytes) -> np.ndarray:
        """Decode a bitstream to a ``uint8`` array ``(H, W, 3)``."""
        try:
            arr = self._decode(bytes(data))
        except MemoryError as e:
            raise SplatpixError(f"{self.name}: not enough memory to decode the bitstream") from e
        except Exception as e:  # noqa: BLE001 - any library failure becomes a one-line user-facing error
            raise SplatpixError(f"{self.name}: cannot decode the bitstream ({_one_line(e)})") from e
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise SplatpixError(f"{self.name}: decoder returned {arr.dtype} {arr.shape}, expected uint8 (H, W, 3)")
        return np.ascontiguousarray(arr)

    @property
    def available(self) -> bool:
        """Whether this installation can encode and decode with this codec."""
        return _probe(self)


_PROBED: dict[str, bool] = {}


def _probe(codec: Codec) -> bool:
    """Check once that the library is present and a tiny image round-trips."""
    if codec.name not in _PROBED:
        ok = False
        try:
            if codec._available():
                tiny = np.zeros((16, 16, 3), np.uint8)
                tiny[:, :8] = (200, 30, 90)
                q = codec.q_max if codec.integer_q else 4.0
                ok = codec._decode(codec._encode(tiny, q)).shape == tiny.shape
        except Exception:  # noqa: BLE001 - an unusable codec is simply unavailable
            ok = False
        _PROBED[codec.name] = ok
    return _PROBED[codec.name]


def _pil_has(feature: str) -> Callable[[], bool]:
    return lambda: bool(features.check(feature))


def _jxl_present() -> bool:
    import imagecodecs

    return bool(imagecodecs.JPEGXL.available)


ALL_CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec(
            name="jpeg",
            param="quality",
            q_min=1,
            q_max=95,
            integer_q=True,
            description="Pillow/libjpeg, 4:4:4, optimized Huffman tables",
            _encode=_encode_jpeg,
            _decode=_pil_decoder("JPEG"),
            _available=_pil_has("jpg"),
        ),
        Codec(
            name="webp",
            param="quality",
            q_min=0,
            q_max=100,
            integer_q=True,
            description="Pillow/libwebp lossy, method 6 (always 4:2:0)",
            _encode=_encode_webp,
            _decode=_pil_decoder("WEBP"),
            _available=_pil_has("webp"),
        ),
        Codec(
            name="jpeg2000",
            param="rate_bpp",
            q_min=0.0,
            q_max=_J2K_MAX_RATE,
            integer_q=False,
            description="Pillow/OpenJPEG, 9/7 irreversible, mct=1, rate-targeted, J2K codestream",
            _encode=jpeg2000_encode,
            _decode=_pil_decoder("JPEG2000"),
            _available=_pil_has("jpg_2000"),
        ),
        Codec(
            name="avif",
            param="quality",
            q_min=0,
            q_max=100,
            integer_q=True,
            description="Pillow/libavif (AV1), 4:4:4, speed 6",
            _encode=_encode_avif,
            _decode=_pil_decoder("AVIF"),
            _available=_pil_has("avif"),
        ),
        Codec(
            name="jpegxl",
            param="level",
            q_min=0,
            q_max=100,
            integer_q=True,
            description="imagecodecs/libjxl, quality level, default effort",
            _encode=_encode_jxl,
            _decode=_decode_jxl,
            _available=_jxl_present,
        ),
    )
}
"""Every known codec, available here or not (see :attr:`Codec.available`)."""

CODECS: dict[str, Codec] = {name: c for name, c in ALL_CODECS.items() if c.available}
"""The codecs available in this installation, by name."""


def get_codec(codec: str | Codec) -> Codec:
    """Look up an available codec by name; unknown or unavailable names raise :class:`SplatpixError`."""
    if isinstance(codec, Codec):
        if not codec.available:
            raise SplatpixError(f"codec {codec.name!r} is not available in this installation")
        return codec
    if codec in CODECS:
        return CODECS[codec]
    if codec in ALL_CODECS:
        raise SplatpixError(f"codec {codec!r} is not available in this installation (its library is missing)")
    raise SplatpixError(f"unknown codec {codec!r}; known codecs: {', '.join(ALL_CODECS)}")


# --------------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecResult:
    """One encoding of one image, measured.

    ``bytes`` is the complete bitstream; ``bpp = len(bytes) * 8 / (height * width)``. ``psnr`` is 8-bit
    RGB PSNR (peak 255) of the decoded image against the 8-bit original; ``ms_ssim`` is ``None`` when a side
    is <= 160 px. ``encode_seconds`` and ``decode_seconds`` time one call of the codec's encoder and decoder
    (in memory, no file I/O; for :func:`encode_at_bpp`, the encode of the returned result only, not the
    search). ``target_bpp`` is set by :func:`encode_at_bpp`.
    """

    codec: str
    quality: float
    bytes: bytes = field(repr=False)
    width: int
    height: int
    bpp: float
    psnr: float
    ms_ssim: float | None
    encode_seconds: float
    decode_seconds: float
    target_bpp: float | None = None

    @property
    def num_bytes(self) -> int:
        return len(self.bytes)


def encode_at_quality(codec: str | Codec, img: Tensor | np.ndarray, q: float) -> CodecResult:
    """Encode ``img`` with ``codec`` at parameter ``q``, decode it and measure rate and distortion."""
    c = get_codec(codec)
    arr = to_uint8_rgb(img)
    q = c.check_q(q)
    t0 = time.perf_counter()
    data = c.encode(arr, q)
    t1 = time.perf_counter()
    dec = c.decode(data)
    t2 = time.perf_counter()
    h, w = arr.shape[:2]
    if dec.shape != arr.shape:
        raise SplatpixError(f"{c.name}: decoded image has shape {dec.shape}, expected {arr.shape}")
    from ..metrics import ms_ssim, psnr

    ref, out = _to_tensor(arr), _to_tensor(dec)
    return CodecResult(
        codec=c.name,
        quality=q,
        bytes=data,
        width=w,
        height=h,
        bpp=len(data) * 8 / (h * w),
        psnr=psnr(out, ref),
        ms_ssim=ms_ssim(out, ref),
        encode_seconds=t1 - t0,
        decode_seconds=t2 - t1,
    )


def encode_at_bpp(
    codec: str | Codec, img: Tensor | np.ndarray, target_bpp: float, tol: float = DEFAULT_BPP_TOL
) -> CodecResult:
    """Encode ``img`` as close as possible to ``target_bpp`` bits per pixel.

    Search: for integer-parameter codecs, bisection over ``q`` in ``[q_min, q_max]`` assuming the rate grows
    with ``q`` (about log2(range) + 2 encodes; both neighbours of the crossing point are encoded). For
    ``jpeg2000`` the nominal rate ``q = target_bpp`` is encoded directly (OpenJPEG's rate control) and then
    corrected up to three times by ``q *= target / measured`` while the measured rate is off by more than
    1 %.

    Rule, over every encoding made during the search: among those with ``bpp <= target_bpp * (1 + tol)``
    return the one with the smallest ``|bpp - target_bpp|`` (ties: the lower rate); if there is none (the
    target is below the codec's lowest achievable rate for this image), return the lowest-rate encoding.
    So the result never exceeds the target by more than ``tol`` (relative) when that is achievable; with a
    monotone rate it is one of the two parameter values that bracket the target. The result's
    ``target_bpp`` is set; check its ``bpp`` when a strict match matters.
    """
    c = get_codec(codec)
    arr = to_uint8_rgb(img)
    if isinstance(target_bpp, bool) or not isinstance(target_bpp, int | float) or not target_bpp > 0:
        raise ValueError(f"target_bpp must be a positive number, got {target_bpp!r}")
    if not math.isfinite(target_bpp):
        raise ValueError(f"target_bpp must be finite, got {target_bpp!r}")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol < math.inf:
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    target = float(target_bpp)
    tried: dict[float, CodecResult] = {}

    def run(q: float) -> CodecResult:
        if q not in tried:
            tried[q] = encode_at_quality(c, arr, q)
        return tried[q]

    if c.integer_q:
        lo, hi = int(c.q_min), int(c.q_max)
        if run(lo).bpp <= target < run(hi).bpp:
            # Invariant: bpp(lo) <= target < bpp(hi).
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if run(mid).bpp <= target:
                    lo = mid
                else:
                    hi = mid
    else:
        q = min(target, c.q_max)
        for _ in range(1 + _J2K_REFINE_STEPS):
            r = run(q)
            if abs(r.bpp - target) <= _J2K_REFINE_RTOL * target:
                break
            q = min(c.q_max, q * target / r.bpp)
            if q in tried:
                break

    results = list(tried.values())
    ok = [r for r in results if r.bpp <= target * (1.0 + tol)]
    best = min(ok, key=lambda r: (abs(r.bpp - target), r.bpp)) if ok else min(results, key=lambda r: r.bpp)
    return replace(best, target_bpp=target)
