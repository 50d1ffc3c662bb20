"""The GaussianImage codec end to end: image -> fit -> QAT -> symbols -> ``.spix`` bytes, and back.

Section payloads (the container itself is :mod:`.bitstream`, documented in docs/format.md):

* ``POSITIONS``: mode byte ``0`` then the ``(N, 2)`` fp16 bit patterns, little-endian uint16, row-major. Not
  entropy coded (as GaussianImage: 16-bit patterns of continuous values have almost no redundancy to exploit
  with a per-symbol model).
* ``COV_QUANT_PARAMS``: ``cov_bits`` (u8), then 3 float32 scales and 3 float32 offsets (little-endian).
* ``COVARIANCE``: policy byte (``0`` fixed-length only, ``1`` adaptive), then for each Cholesky channel
  ``l11, l21, l22`` a chunk: u32 length, then a mode byte and the channel's ``N`` symbols, either packed with
  ``cov_bits`` bits each (mode 0, :func:`.entropy.pack_fixed`) or as an :func:`.entropy.encode_categorical`
  payload over ``2^cov_bits`` (mode 1). The adaptive encoder writes whichever is smaller.
* ``COLOUR_INDICES``: policy byte, stages (u8), codebook size K (u16), then one chunk per stage as above for the
  stage's ``N`` indices (``ceil(log2 K)`` bits each, or entropy coded over K).
* ``CODEBOOKS``: stages (u8), K (u16), channels (u8), then ``stages * K * C`` float32 values.
* ``METADATA`` (optional): JSON with the encoder version and settings.

Policy 1 is the default (entropy coding with ``constriction`` wherever it is smaller); policy 0 is
GaussianImage's fixed-length budget, kept for comparison (``fixed_length=True``). bpp is always measured on
the whole file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._version import __version__
from ..errors import SplatpixError
from ..fit import FitConfig, FitResult, fit
from ..gaussians import Gaussians
from ..io import atomic_write_bytes
from ..metrics import ms_ssim, psnr
from ..render import render
from . import bitstream as bs
from .entropy import decode_categorical, encode_categorical, pack_fixed, unpack_fixed
from .qat import QATConfig, quantization_aware_finetune
from .quantize import QuantizedGaussians

MODE_FIXED = 0
MODE_ENTROPY = 1
_U32 = struct.Struct("<I")


# ------------------------------------------------------------------------------------------------ packing


def _chunks(parts: list[bytes]) -> bytes:
    return b"".join(_U32.pack(len(p)) + p for p in parts)


def _read_chunks(payload: memoryview, count: int, what: str, source: str) -> list[bytes]:
    out, pos = [], 0
    for _ in range(count):
        if pos + 4 > len(payload):
            raise SplatpixError(f"{source}: corrupt .spix file: {what} truncated")
        (n,) = _U32.unpack_from(payload, pos)
        pos += 4
        if n > len(payload) - pos:
            raise SplatpixError(f"{source}: corrupt .spix file: {what} chunk length {n} exceeds the section")
        out.append(bytes(payload[pos:pos + n]))
        pos += n
    if pos != len(payload):
        raise SplatpixError(f"{source}: corrupt .spix file: {len(payload) - pos} trailing bytes in {what}")
    return out


def _bits(alphabet: int) -> int:
    return max(1, math.ceil(math.log2(alphabet)))


def _code(symbols: np.ndarray, alphabet: int, mode: int) -> bytes:
    """One chunk: a mode byte and the symbols, fixed-length or entropy coded, whichever is smaller (mode 1),
    or always fixed-length (mode 0). At small N the histogram side information can outweigh the saving."""
    fixed = bytes([MODE_FIXED]) + pack_fixed(symbols, _bits(alphabet))
    if mode == MODE_FIXED:
        return fixed
    coded = bytes([MODE_ENTROPY]) + encode_categorical(symbols, alphabet)
    return coded if len(coded) < len(fixed) else fixed


def _uncode(data: bytes, n: int, alphabet: int, mode: int, source: str) -> np.ndarray:
    if len(data) < 1 or data[0] not in (MODE_FIXED, MODE_ENTROPY) or (mode == MODE_FIXED and data[0] != MODE_FIXED):
        raise SplatpixError(f"{source}: corrupt .spix file: symbol chunk with an invalid mode")
    if data[0] == MODE_ENTROPY:
        return decode_categorical(data[1:], n, alphabet)
    return unpack_fixed(data[1:], n, _bits(alphabet))


def colour_payloads(indices: np.ndarray, codebooks: np.ndarray, mode: int) -> tuple[bytes, bytes]:
    """The ``COLOUR_INDICES`` and ``CODEBOOKS`` payloads (shared by both methods)."""
    stages, k, c = codebooks.shape
    col = bytes([mode, stages]) + struct.pack("<H", k) + _chunks(
        [_code(np.ascontiguousarray(indices[:, s]), k, mode) for s in range(stages)])
    books = bytes([stages]) + struct.pack("<HB", k, c) + np.ascontiguousarray(codebooks, dtype="<f4").tobytes()
    return col, books


def read_colour_payloads(sections: dict[int, bytes], n: int, c: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse (untrusted) ``COLOUR_INDICES`` and ``CODEBOOKS``: ``(N, stages)`` indices and the codebooks."""

    def bad(msg: str) -> SplatpixError:
        return SplatpixError(f"{source}: corrupt .spix file: {msg}")

    ci = memoryview(sections[bs.COLOUR_INDICES])
    if len(ci) < 4 or ci[0] not in (MODE_FIXED, MODE_ENTROPY):
        raise bad("colour index section is truncated or has an unknown mode")
    col_mode, stages = ci[0], ci[1]
    (k,) = struct.unpack_from("<H", ci, 2)
    if not 1 <= stages <= 16 or not 1 <= k <= 4096:
        raise bad(f"colour quantiser with {stages} stages of {k} codewords is out of range")
    idx_chunks = _read_chunks(ci[4:], stages, "colour index section", source)
    idx = np.stack([_uncode(ch, n, k, col_mode, source) for ch in idx_chunks], axis=1) if n else \
        np.zeros((0, stages), dtype=np.int64)

    cb = sections[bs.CODEBOOKS]
    if len(cb) < 4:
        raise bad("codebook section truncated")
    cb_stages = cb[0]
    cb_k, cb_c = struct.unpack_from("<HB", cb, 1)
    if (cb_stages, cb_k, cb_c) != (stages, k, c) or len(cb) != 4 + 4 * stages * k * c:
        raise bad("codebook section does not match the colour indices or the channel count")
    books = np.frombuffer(cb, dtype="<f4", offset=4).reshape(stages, k, c).astype(np.float32)
    return idx, books


def pack(q: QuantizedGaussians, *, fixed_length: bool = False, metadata: dict[str, Any] | None = None) -> bytes:
    """The ``.spix`` bytes of a quantised model."""
    mode = MODE_FIXED if fixed_length else MODE_ENTROPY
    h, w = q.size
    n = q.n
    header = bs.SpixHeader(width=w, height=h, channels=q.channels, method=bs.METHOD_GAUSSIANIMAGE, n_gaussians=n)
    pos = bytes([0]) + np.ascontiguousarray(q.position_symbols, dtype="<u2").tobytes()
    qparams = bytes([q.cov_bits]) + np.concatenate((q.cov_scale, q.cov_offset)).astype("<f4").tobytes()
    cov = bytes([mode]) + _chunks(
        [_code(np.ascontiguousarray(q.cov_symbols[:, j]), 1 << q.cov_bits, mode) for j in range(3)])
    col, books = colour_payloads(q.colour_indices, q.codebooks, mode)
    sections = [(bs.POSITIONS, pos, False), (bs.COV_QUANT_PARAMS, qparams, False), (bs.COVARIANCE, cov, False),
                (bs.COLOUR_INDICES, col, False), (bs.CODEBOOKS, books, False)]
    if metadata:
        sections.append((bs.METADATA, bs.encode_metadata(metadata), True))
    return bs.write_spix(header, sections)


def unpack(data: bytes, *, source: str = "<bytes>", max_pixels: int = bs.DEFAULT_MAX_PIXELS,
           max_gaussians: int = bs.DEFAULT_MAX_GAUSSIANS) -> tuple[QuantizedGaussians, dict[str, Any]]:
    """Parse ``.spix`` bytes (untrusted) into a quantised model and its metadata (``{}`` if none).

    The model is a :class:`~.quantize.QuantizedGaussians` (method ``gaussianimage``) or a
    :class:`~.sga.SGAQuantized` (method ``sga``); both have ``dequantize()``.
    """
    header, sections = bs.read_spix(data, max_pixels=max_pixels, max_gaussians=max_gaussians, source=source)
    meta: dict[str, Any] = {}
    if bs.METADATA in sections:
        meta = bs.decode_metadata(sections[bs.METADATA], source=source)
    if header.method == bs.METHOD_SGA:
        from .sga import unpack_sections

        return unpack_sections(header, sections, source), meta
    if header.method != bs.METHOD_GAUSSIANIMAGE:
        raise SplatpixError(f"{source}: method {bs.METHOD_NAMES.get(header.method, header.method)!r} is not "
                            "decodable by this version")
    for sec in (bs.POSITIONS, bs.COV_QUANT_PARAMS, bs.COVARIANCE, bs.COLOUR_INDICES, bs.CODEBOOKS):
        if sec not in sections:
            raise SplatpixError(f"{source}: corrupt .spix file: missing section {bs.SECTION_NAMES[sec]}")
    n, c = header.n_gaussians, header.channels

    def bad(msg: str) -> SplatpixError:
        return SplatpixError(f"{source}: corrupt .spix file: {msg}")

    p = sections[bs.POSITIONS]
    if len(p) != 1 + 4 * n or p[0] != 0:
        raise bad("positions section has the wrong size or mode")
    positions = np.frombuffer(p, dtype="<u2", offset=1).reshape(n, 2).astype(np.uint16)

    qp = sections[bs.COV_QUANT_PARAMS]
    if len(qp) != 1 + 24 or not 1 <= qp[0] <= 16:
        raise bad("covariance quantiser parameters have the wrong size or bit depth")
    cov_bits = int(qp[0])
    vals = np.frombuffer(qp, dtype="<f4", offset=1).astype(np.float32)
    cov_scale, cov_offset = vals[:3].copy(), vals[3:].copy()

    cv = memoryview(sections[bs.COVARIANCE])
    if len(cv) < 1 or cv[0] not in (MODE_FIXED, MODE_ENTROPY):
        raise bad("covariance section has an unknown mode")
    cov_mode = cv[0]
    cov_chunks = _read_chunks(cv[1:], 3, "covariance section", source)
    cov = np.stack([_uncode(ch, n, 1 << cov_bits, cov_mode, source) for ch in cov_chunks], axis=1) if n else \
        np.zeros((0, 3), dtype=np.int64)

    idx, books = read_colour_payloads(sections, n, c, source)

    q = QuantizedGaussians(size=(header.height, header.width), channels=c, position_symbols=positions,
                           cov_symbols=cov, cov_scale=cov_scale, cov_offset=cov_offset, colour_indices=idx,
                           codebooks=books, cov_bits=cov_bits)
    return q, meta


# ------------------------------------------------------------------------------------------------ encode


@dataclass
class EncodeResult:
    """``data``: the ``.spix`` bytes; ``quantized``: what they hold; ``report``: rate, quality and timings."""

    data: bytes = field(repr=False)
    quantized: Any = field(repr=False)  # QuantizedGaussians or sga.SGAQuantized
    report: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the file atomically (temporary file + rename)."""
        atomic_write_bytes(path, self.data)


def decode_bytes(data: bytes, *, source: str = "<bytes>") -> Gaussians:
    """The model stored in ``.spix`` bytes (renders at any size with :func:`splatpix.render`)."""
    q, _ = unpack(data, source=source)
    return q.dequantize()


def decode(path: str | os.PathLike[str]) -> Gaussians:
    """The model stored in a ``.spix`` file (size-capped read, untrusted input)."""
    bs.read_spix_file(path)
    return decode_bytes(Path(path).read_bytes(), source=os.fspath(path))


METHODS = ("gaussianimage", "sga")


def encode(image: Tensor, n_gaussians: int, *, method: str = "gaussianimage", fit_config: FitConfig | None = None,
           qat_config: QATConfig | None = None, sga_config: Any = None, fixed_length: bool = False,
           progress: bool = True, fitted: FitResult | None = None) -> EncodeResult:
    """Fit ``n_gaussians`` to ``image`` (``(C, H, W)`` in ``[0, 1]``), fine-tune with quantisation, and code it.

    ``method``: ``"gaussianimage"`` (GaussianImage's codec) or ``"sga"`` (structure-guided, :mod:`.sga`; with
    ``fit_config=None`` it fits with :data:`.sga.SGA_FIT_DEFAULTS`; ``sga_config`` is a :class:`.sga.SGAConfig`).
    The report's ``psnr`` / ``ms_ssim`` are measured on the image decoded *from the produced bytes* (8-bit
    rounded); ``bpp`` is ``len(bytes) * 8 / (H * W)``. ``fitted``: the result of ``fit(image, fit_config)`` to
    quantise instead of fitting again (sweeps of the quantisation settings on one fit, e.g.
    benchmarks/colour_codebook.py); it must be a model of ``n_gaussians`` Cholesky Gaussians of this image.
    """
    if method not in METHODS:
        raise SplatpixError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    t0 = time.perf_counter()
    if fit_config is not None:
        fc = fit_config
    elif method == "sga":
        from .sga import SGA_FIT_DEFAULTS

        fc = FitConfig(**SGA_FIT_DEFAULTS)
    else:
        fc = FitConfig()
    fc = FitConfig(**{**fc.__dict__, "n_gaussians": int(n_gaussians), "param": "cholesky"})
    if fitted is None:
        fitted = fit(image, fc, progress=progress)
    elif not isinstance(fitted, FitResult) or fitted.gaussians.n != int(n_gaussians) or \
            fitted.gaussians.param != "cholesky" or tuple(fitted.gaussians.size) != tuple(image.shape[1:]):
        raise SplatpixError(f"fitted must be the FitResult of {int(n_gaussians)} Cholesky Gaussians of this image")
    # a diverged fit is its last good state: quantise that, and raise EncodeDiverged (with the file) at the end
    qat_config = qat_config if qat_config is not None else QATConfig()
    if not isinstance(qat_config, QATConfig):
        raise SplatpixError(f"qat_config must be a QATConfig, got {type(qat_config).__name__}")
    if qat_config.footprint_weight is None:  # QAT keeps the Gaussians as small as the fit did
        qat_config = dataclasses.replace(qat_config, footprint_weight=fc.footprint_weight)
    if qat_config.vq_codebook is None:  # the method's colour codebook size
        from .qat import GI_VQ_CODEBOOK
        from .sga import SGA_VQ_CODEBOOK

        qat_config = dataclasses.replace(qat_config,
                                         vq_codebook=SGA_VQ_CODEBOOK if method == "sga" else GI_VQ_CODEBOOK)
    meta: dict[str, Any] = {"encoder": f"splatpix {__version__}", "method": method, "fit_steps": fitted.steps,
                            "fixed_length": fixed_length}
    extra: dict[str, Any] = {}
    if method == "sga":
        from .sga import SGAConfig, SGAState, config_dict, pack_sga, plan_tiers

        sc = sga_config if sga_config is not None else SGAConfig()
        if not isinstance(sc, SGAConfig):
            raise SplatpixError(f"sga_config must be an SGAConfig, got {type(sc).__name__}")
        qc = qat_config
        target = image.detach().float()
        g = fitted.gaussians

        def render_sse(cov: Tensor) -> float:
            with torch.no_grad():
                m = Gaussians(g.means, cov, g.colours, "cholesky", g.size)
                return float(((render(m, clamp=True) - target) ** 2).sum())

        colour_bits = qc.vq_stages * math.log2(max(qc.vq_codebook, 2))
        thresholds, bits, tier_info = plan_tiers(g, target, sc, colour_bits, render_sse)
        qat = quantization_aware_finetune(
            g, image, qc, progress=progress,
            make_state=lambda g_, c_, d_: SGAState(g_, c_, d_, sc, thresholds, bits))
        extra = {"tier_bits": bits, "tier_thresholds": thresholds, "tier_planning": tier_info,
                 "sga_config": config_dict(sc)}
        meta.update({"tier_bits": bits, "subdiv": sc.subdiv})

        def packer(q: Any, fixed: bool) -> bytes:
            return pack_sga(q, fixed_length=fixed, metadata=meta, cov_context_bits=sc.cov_context_bits)
    else:
        qat = quantization_aware_finetune(fitted.gaussians, image, qat_config, progress=progress)

        def packer(q: Any, fixed: bool) -> bytes:
            return pack(q, fixed_length=fixed, metadata=meta)
    meta["qat_steps"] = qat.steps
    data = packer(qat.quantized, fixed_length)
    encode_seconds = time.perf_counter() - t0
    td = time.perf_counter()
    g = decode_bytes(data)
    with torch.no_grad():
        out = render(g, clamp=True)
    decode_seconds = time.perf_counter() - td
    target = image.detach().float()
    h, w = image.shape[1:]
    report = {
        "bpp": len(data) * 8 / (h * w), "bytes": len(data), "psnr": psnr(out, target), "ms_ssim": ms_ssim(out, target),
        "encode_seconds": encode_seconds, "decode_seconds": decode_seconds, "n_gaussians": int(n_gaussians),
        "bytes_fixed_length": len(packer(qat.quantized, True)), "method": method,
        "psnr_fit": fitted.psnr, "psnr_before_qat": qat.psnr_before, "fit_steps": fitted.steps,
        "fit_seconds": fitted.seconds, "qat_steps": qat.steps, "fixed_length": fixed_length, "width": int(w),
        "height": int(h), "vq_stages": qat_config.vq_stages, "vq_codebook": qat_config.vq_codebook,
        "fit_config": {k: fc.__dict__[k] for k in (
            "init", "colour_solve_init", "colour_solve_every", "geo_weight", "steps", "lr", "optimizer",
            "lr_cov_scale", "relocate_every", "relocate_fraction", "lr_means_ref_n", "footprint_weight")},
        **extra,
    }
    result = EncodeResult(data=data, quantized=qat.quantized, report=report)
    if fitted.diverged or qat.diverged:  # the last good state is a complete, valid file: hand it over with the error
        msg = (f"encoding failed during quantisation-aware fine-tuning: {qat.message}" if qat.diverged else
               f"encoding failed during the fit: {fitted.message} (that state was quantised)")
        report.update(diverged=True, message=msg)
        raise EncodeDiverged(msg, result)
    return result


class EncodeDiverged(SplatpixError):
    """The fit or quantisation-aware fine-tuning diverged. ``result`` is the :class:`EncodeResult` of the last good
    state (the last good fit, quantised, or the last good QAT state): a complete, decodable file with
    ``report["diverged"]`` True, so that nothing trained is lost. The CLI writes it and exits with status 3."""

    def __init__(self, message: str, result: EncodeResult) -> None:
        super().__init__(message)
        self.result = result


def side_bits_estimate(channels: int = 3, stages: int = 2, k: int = 8) -> int:
    """Bits of everything but the per-Gaussian symbols (container, quantiser parameters, codebooks), roughly."""
    return 8 * (bs.HEADER_SIZE + 6 * bs.SECTION_HEADER_SIZE + 40 + 25 + 4 + 4 * stages * k * channels + 120)


def gaussians_for_bpp(bpp: float, height: int, width: int, bits_per_gaussian: float = 56.0,
                      channels: int = 3) -> int:
    """Initial guess of N for a target rate (GaussianImage's 56 fixed-length bits per Gaussian)."""
    return max(1, int((bpp * height * width - side_bits_estimate(channels)) / bits_per_gaussian))
