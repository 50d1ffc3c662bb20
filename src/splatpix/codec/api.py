"""The codec end to end: image -> fit -> QAT -> symbols -> ``.spix`` bytes, and back.

Methods are looked up in :mod:`.registry` (:mod:`.methods` holds them); the container is :mod:`.bitstream` and the
shared symbol layer :mod:`.symbols` (byte layouts in docs/format.md). :func:`encode_configs` turns a preset
(:data:`splatpix.presets.CODEC_PRESETS`), a method and the caller's options into the fit and QAT configs:
:func:`encode`, ``splatpix encode`` and ``splatpix eval rd`` all go through it, so the same options give the same
file everywhere.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._version import __version__
from ..errors import SplatpixError
from ..io import atomic_write_bytes
from ..metrics import ms_ssim, psnr
from ..model.gaussians import Gaussians
from ..presets import CODEC_PRESETS, DEFAULT_CODEC_METHOD, DEFAULT_CODEC_PRESET
from ..render import render
from ..train.loop import FitConfig, FitResult, fit
from . import bitstream as bs
from . import registry
from .decoding import DEFAULT_MAX_MEMORY, decode_arrays, decode_bytes_arrays, dequantize_arrays, unpack
from .qat import QATConfig, quantization_aware_finetune

__all__ = ["DEFAULT_MAX_MEMORY", "EncodeDiverged", "EncodeResult", "decode", "decode_bytes", "dequantize", "encode",
           "encode_at_bpp", "encode_configs", "gaussians_for_bpp", "unpack"]

_FIT_FIELDS = frozenset(f.name for f in dataclasses.fields(FitConfig)) - {"n_gaussians"}
_QAT_FIELDS = frozenset(f.name for f in dataclasses.fields(QATConfig))
_SHARED = frozenset({"seed"})  # options that set both the fit and the QAT


# ------------------------------------------------------------------------------------------------ decode


def dequantize(q: Any, source: str = "<bytes>") -> Gaussians:
    """:func:`.decoding.dequantize_arrays` as a torch :class:`~splatpix.model.gaussians.Gaussians`: refused when a
    parameter decodes to a non-finite value."""
    return Gaussians.from_arrays(dequantize_arrays(q, source))


def decode_bytes(data: bytes, *, source: str = "<bytes>", **budget: int) -> Gaussians:
    """The model stored in ``.spix`` bytes (renders at any size with :func:`splatpix.render`); ``budget``:
    ``max_pixels``, ``max_gaussians``, ``max_memory`` as in :func:`.decoding.unpack`."""
    return Gaussians.from_arrays(decode_bytes_arrays(data, source=source, **budget))


def decode(path: str | os.PathLike[str], *, max_pixels: int = bs.DEFAULT_MAX_PIXELS,
           max_gaussians: int = bs.DEFAULT_MAX_GAUSSIANS, max_memory: int = DEFAULT_MAX_MEMORY) -> Gaussians:
    """The model stored in a ``.spix`` file (size-capped read, untrusted input, the budget of
    :func:`.decoding.unpack`) as a torch model; :func:`.decoding.decode_arrays` gives it as numpy arrays."""
    return Gaussians.from_arrays(decode_arrays(path, max_pixels=max_pixels, max_gaussians=max_gaussians,
                                               max_memory=max_memory))


# ------------------------------------------------------------------------------------------------ encode


@dataclass
class EncodeResult:
    """``data``: the ``.spix`` bytes; ``quantized``: what they hold; ``report``: rate, quality and timings."""

    data: bytes = field(repr=False)
    quantized: Any = field(repr=False)  # the method's quantised model
    report: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the file atomically (temporary file + rename)."""
        atomic_write_bytes(path, self.data)


class EncodeDiverged(SplatpixError):
    """The fit or quantisation-aware fine-tuning diverged. ``result`` is the :class:`EncodeResult` of the last good
    state (the last good fit, quantised, or the last good QAT state): a complete, decodable file with
    ``report["diverged"]`` True, so that nothing trained is lost. The CLI writes it and exits with status 3."""

    def __init__(self, message: str, result: EncodeResult) -> None:
        super().__init__(message)
        self.result = result


def encode_configs(method: str = DEFAULT_CODEC_METHOD, preset: str = DEFAULT_CODEC_PRESET,
                   options: Mapping[str, Any] | None = None) -> tuple[FitConfig, QATConfig, Any]:
    """The fit config, QAT config and method options of an encode: the ``preset``'s schedule, then the method's
    fit defaults, then ``options`` (``None`` values are ignored).

    ``options`` may hold any :class:`~splatpix.train.FitConfig` field (``steps``, ``lr``, ``init``, ...; not
    ``n_gaussians``, which :func:`encode` sets), QAT fields either by their own name where the fit has none
    (``vq_stages``, ``vq_codebook``, ``cov_bits``, ...) or prefixed ``qat_`` (``qat_steps``, ``qat_lr``,
    ``qat_optimizer``), ``seed`` (both), and the method's options (:attr:`.registry.CodecMethod.options_type`, e.g.
    ``sga``'s ``subdiv``, ``tier_bits``). Anything else is a :class:`SplatpixError`.
    """
    m = registry.get(method)
    if preset not in CODEC_PRESETS:
        raise SplatpixError(f"unknown codec preset {preset!r}; use one of {', '.join(CODEC_PRESETS)}")
    fit_kw = dict(CODEC_PRESETS[preset]["fit"])
    qat_kw = dict(CODEC_PRESETS[preset]["qat"])
    decay_at = fit_kw.pop("lr_decay_at", None)
    fit_kw.update(m.fit_defaults)
    method_kw: dict[str, Any] = {}
    method_names = set(m.option_names())
    for key, value in (options or {}).items():
        if value is None:
            continue
        if key in _SHARED:
            fit_kw[key] = qat_kw[key] = value
        elif key.startswith("qat_") and key[4:] in _QAT_FIELDS:
            qat_kw[key[4:]] = value
        elif key in _FIT_FIELDS:
            fit_kw[key] = value
        elif key in _QAT_FIELDS:
            qat_kw[key] = value
        elif key in method_names:
            method_kw[key] = value
        else:
            known = sorted(_FIT_FIELDS | {f"qat_{k}" for k in _QAT_FIELDS} | (_QAT_FIELDS - _FIT_FIELDS) | method_names)
            hint = " (an option of another method)" if any(
                key in registry.get(n).option_names() for n in registry.names()) else ""
            raise SplatpixError(f"method {method!r} has no encode option {key!r}{hint}; known: {', '.join(known)}")
    if decay_at is not None and "lr_decay_every" not in fit_kw:
        fit_kw["lr_decay_every"] = max(1, round(fit_kw["steps"] * decay_at))
    try:
        return FitConfig(**fit_kw), QATConfig(**qat_kw), m.options(method_kw)
    except TypeError as e:
        raise SplatpixError(f"invalid encode options: {e}") from None


def encode(image: Tensor, n_gaussians: int, *, method: str = DEFAULT_CODEC_METHOD, preset: str = DEFAULT_CODEC_PRESET,
           fit_config: FitConfig | None = None, qat_config: QATConfig | None = None, options: Any = None,
           fixed_length: bool = False, progress: bool = True, fitted: FitResult | None = None) -> EncodeResult:
    """Fit ``n_gaussians`` to ``image`` (``(C, H, W)`` in ``[0, 1]``), fine-tune with quantisation, and code it.

    ``method``: a registered method (:func:`.registry.names`: ``"gaussianimage"``, ``"sga"``). ``fit_config`` and
    ``qat_config`` default to those of :func:`encode_configs` for ``method`` and ``preset`` (``"cpu"``: the CPU
    schedule every codec result in docs/results.md used; ``"gaussianimage-paper"``: GaussianImage's 50k + 50k
    steps); a given ``fit_config`` is used as it is (N and the Cholesky parameterisation set). ``options``: the
    method's options (an instance of its options type or a dict of its fields, e.g. ``sga``'s ``SGAConfig``).
    The report's ``psnr`` / ``ms_ssim`` are measured on the image decoded *from the produced bytes* (8-bit
    rounded); ``bpp`` is ``len(bytes) * 8 / (H * W)``. ``fitted``: the result of ``fit(image, fit_config)`` to
    quantise instead of fitting again (sweeps of the quantisation settings on one fit); it must be a model of
    ``n_gaussians`` Cholesky Gaussians of this image.
    """
    m = registry.get(method)
    t0 = time.perf_counter()
    if fit_config is None or qat_config is None:
        fc0, qc0, _ = encode_configs(method, preset)
        fit_config = fc0 if fit_config is None else fit_config
        qat_config = qc0 if qat_config is None else qat_config
    if not isinstance(fit_config, FitConfig):
        raise SplatpixError(f"fit_config must be a FitConfig, got {type(fit_config).__name__}")
    if not isinstance(qat_config, QATConfig):
        raise SplatpixError(f"qat_config must be a QATConfig, got {type(qat_config).__name__}")
    opts = m.options(options)
    fc = dataclasses.replace(fit_config, n_gaussians=int(n_gaussians), param="cholesky")
    if fitted is None:
        fitted = fit(image, fc, progress=progress)
    elif not isinstance(fitted, FitResult) or fitted.gaussians.n != int(n_gaussians) or \
            fitted.gaussians.param != "cholesky" or tuple(fitted.gaussians.size) != tuple(image.shape[1:]):
        raise SplatpixError(f"fitted must be the FitResult of {int(n_gaussians)} Cholesky Gaussians of this image")
    # a diverged fit is its last good state: quantise that, and raise EncodeDiverged (with the file) at the end
    qc = qat_config
    if qc.footprint_weight is None:  # QAT keeps the Gaussians as small as the fit did
        qc = dataclasses.replace(qc, footprint_weight=fc.footprint_weight)
    if qc.vq_codebook is None:  # the method's colour codebook size
        qc = dataclasses.replace(qc, vq_codebook=m.vq_codebook)
    top = m.prepare(fitted.gaussians, image, qc, opts)
    tried = []
    for cand in top.alternatives or [top]:
        qc_c = dataclasses.replace(qc, **cand.qat_overrides) if cand.qat_overrides else qc
        qat_c = quantization_aware_finetune(fitted.gaussians, image, qc_c, progress=progress,
                                            make_state=cand.make_state)
        meta_c: dict[str, Any] = {"encoder": f"splatpix {__version__}", "method": method, "fit_steps": fitted.steps,
                                  "fixed_length": fixed_length, **cand.metadata, "qat_steps": qat_c.steps}
        data_c = m.pack(qat_c.quantized, fixed_length=fixed_length, metadata=meta_c, options=opts)
        sse = 10 ** (-qat_c.psnr / 10) * image.numel()  # of the dequantised model's (clamped, float) render
        tried.append((sse + top.select_lambda * 8 * len(data_c), cand, qc_c, qat_c, meta_c, data_c))
    _, prepared, qc, qat, meta, data = min(tried, key=lambda t: t[0])
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
        "bytes_fixed_length": len(m.pack(qat.quantized, fixed_length=True, metadata=meta, options=opts)),
        "method": method, "psnr_fit": fitted.psnr, "psnr_before_qat": qat.psnr_before, "fit_steps": fitted.steps,
        "fit_seconds": fitted.seconds, "qat_steps": qat.steps, "fixed_length": fixed_length, "width": int(w),
        "height": int(h), "vq_stages": qc.vq_stages, "vq_codebook": qc.vq_codebook,
        "fit_config": {k: fc.__dict__[k] for k in (
            "init", "colour_solve_init", "colour_solve_every", "geo_weight", "steps", "lr", "optimizer",
            "lr_cov_scale", "relocate_every", "relocate_fraction", "lr_means_ref_n", "footprint_weight")},
        "psnr_ptq": qat.psnr_ptq, "qat_config": {"steps": qc.steps, "lr": qc.lr, "optimizer": qc.optimizer},
        **prepared.report,
    }
    if len(tried) > 1:  # the alternatives the encoder compared (e.g. sga's colour codings)
        report["alternatives"] = [{**{k: c.report.get(k) for k in ("colour", "colour_bits", "tier_bits")},
                                   "bytes": len(d), "psnr_dequantised": q.psnr, "cost": j}
                                  for j, c, _, q, _, d in tried]
    if report.get("colour") == "scalar":  # no residual VQ in the file
        del report["vq_stages"], report["vq_codebook"]
    result = EncodeResult(data=data, quantized=qat.quantized, report=report)
    if fitted.diverged or qat.diverged:  # the last good state is a complete, valid file: hand it over with the error
        msg = (f"encoding failed during quantisation-aware fine-tuning: {qat.message}" if qat.diverged else
               f"encoding failed during the fit: {fitted.message} (that state was quantised)")
        report.update(diverged=True, message=msg)
        raise EncodeDiverged(msg, result)
    return result


def encode_at_bpp(image: Tensor, bpp: float, *, trials: int = 3, tolerance: float = 0.03,
                  on_trial: Callable[[EncodeResult], None] | None = None, **kw: Any) -> EncodeResult:
    """:func:`encode` at the N whose file comes closest to ``bpp``: start from GaussianImage's 56-bit fixed-length
    budget, then rescale N by the measured rate, at most ``trials`` encodes (stopping within ``tolerance`` of the
    target). ``on_trial`` sees each trial's result; ``kw`` go to :func:`encode`. The report gets ``target_bpp`` and
    ``trials`` (each trial's ``n_gaussians``, ``bpp``, ``psnr``, ``encode_seconds``)."""
    if not bpp > 0:
        raise SplatpixError(f"target bpp must be positive, got {bpp}")
    h, w = image.shape[1:]
    n = gaussians_for_bpp(bpp, h, w, channels=image.shape[0])
    best = None
    tried: list[dict[str, Any]] = []
    for _ in range(trials):
        res = encode(image, n, **kw)
        tried.append({k: res.report[k] for k in ("n_gaussians", "bpp", "psnr", "encode_seconds")})
        if on_trial is not None:
            on_trial(res)
        if best is None or abs(res.report["bpp"] - bpp) < abs(best.report["bpp"] - bpp):
            best = res
        if abs(res.report["bpp"] - bpp) <= tolerance * bpp:
            break
        n = max(1, round(n * bpp / res.report["bpp"]))
    best.report["target_bpp"] = bpp
    best.report["trials"] = tried
    return best


def side_bits_estimate(channels: int = 3, stages: int = 2, k: int = 8) -> int:
    """Bits of everything but the per-Gaussian symbols (container, quantiser parameters, codebooks), roughly."""
    return 8 * (bs.HEADER_SIZE + 6 * bs.SECTION_HEADER_SIZE + 40 + 25 + 4 + 4 * stages * k * channels + 120)


def gaussians_for_bpp(bpp: float, height: int, width: int, bits_per_gaussian: float = 56.0,
                      channels: int = 3) -> int:
    """Initial guess of N for a target rate (GaussianImage's 56 fixed-length bits per Gaussian)."""
    return max(1, int((bpp * height * width - side_bits_estimate(channels)) / bits_per_gaussian))
