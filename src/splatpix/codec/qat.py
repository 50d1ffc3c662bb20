"""Quantisation-aware fine-tuning (QAT) of a fitted Cholesky model, as in GaussianImage's codec.

After fitting, GaussianImage fine-tunes the model with its quantisers in the loop (fp16 positions, 6-bit learned
uniform quantisers for the Cholesky covariance, residual VQ with 2 stages x 8 codewords for the colours; see
:mod:`.quantize`). Here:

* **Trainable parameters.** Means are trained pre-tanh as in fitting and GaussianImage (``u = (tanh(xy) + 1) / 2``,
  so positions stay inside ``[0, 1]`` where the fp16 precision bound of :mod:`.quantize` holds, and the step
  size in image units matches fitting's); a model's means are mapped back with ``atanh`` (clipped like
  :mod:`splatpix.train.loop`, which moves means closer than 5e-5 to the border by at most that). The fp16 rounding
  is applied to ``u`` with a straight-through estimator. The Cholesky parameters ``(l11, l21, l22)`` are
  trained directly and fake-quantised by a :class:`~.quantize.LearnedUniformQuantizer` (its scale and offset
  train too); the colours pass through a :class:`~.quantize.ResidualVQ` whose codebooks train too.
* **Initialisation** (= naive post-training quantisation, what ``steps=0`` returns): the covariance quantiser
  from the data's min/max, the codebooks by seeded k-means on the colours.
* **Loss**: ``clamped_mse(render, image) + ResidualVQ.loss(colours)`` (VQ-VAE commitment and codebook terms,
  weights ``vq_commitment`` = 1 and ``vq_codebook_weight`` = 0; why in :mod:`.quantize`), plus, when
  ``footprint_weight > 0``, the footprint term of :func:`splatpix.train.footprint.footprint_penalty`. One optimiser
  (Adan by default, as GaussianImage; or Adam) at a constant ``lr`` for all parameters, quantisers included.
* **NaN guard** (:class:`splatpix.train.guard.DivergenceGuard`, as in fitting): on a non-finite loss or
  parameter, stop and restore the last good state (model and quantisers), ``diverged=True``.
* **Result.** The final :class:`~.quantize.QuantizedGaussians` is encoded from the final state; ``psnr`` is
  measured on the render of its :meth:`~.quantize.QuantizedGaussians.dequantize` -- bit-identical to the
  fake-quantised model the last training step evaluated, since the quantisers' forward values are exact.
  Rendering happens at the model's native size, which must equal the image size.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..checks import check_image, is_int, is_number, json_float
from ..errors import SplatpixError
from ..metrics import psnr
from ..model.gaussians import Gaussians
from ..render import render
from ..train.footprint import footprint_penalty
from ..train.guard import DivergenceGuard
from ..train.losses import clamped_mse
from ..train.optim import Adam, Adan
from .methods.gaussianimage_qat import GaussianImageState

__all__ = ["QATConfig", "QATResult", "quantization_aware_finetune"]

OPTIMIZERS = ("adan", "adam")


@dataclass
class QATConfig:
    """QAT options. GaussianImage fine-tunes 50k steps; ``steps=0`` gives naive post-training quantisation."""

    steps: int = 2000
    lr: float = 1e-3
    optimizer: str = "adan"
    cov_bits: int = 6
    vq_stages: int = 2
    # codewords per colour VQ stage; None: the method's default (CodecMethod.vq_codebook: 8 for gaussianimage,
    # 16 for sga), resolved by each method's QAT state (and by encode, for its report)
    vq_codebook: int | None = None
    seed: int = 0
    log_every: int = 100
    position_bits: int = 16  # fp16; the only supported value for now
    vq_commitment: float = 1.0
    vq_codebook_weight: float = 0.0
    kmeans_iters: int = 10
    # > 0: penalise the renderer's pairs per pixel (splatpix.train.footprint); None: 0 here, and in
    # splatpix.codec.api.encode the fit's FitConfig.footprint_weight
    footprint_weight: float | None = None

    def __post_init__(self) -> None:
        def bad(msg: str) -> SplatpixError:
            return SplatpixError(f"invalid QAT config: {msg}")

        if not is_int(self.steps) or self.steps < 0:
            raise bad(f"steps must be an integer >= 0, got {self.steps!r}")
        if not (is_number(self.lr) and self.lr > 0):
            raise bad(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise bad(f"unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
        if not is_int(self.cov_bits) or not 1 <= self.cov_bits <= 16:
            raise bad(f"cov_bits must be an integer in [1, 16], got {self.cov_bits!r}")
        if not is_int(self.vq_stages) or not 1 <= self.vq_stages <= 8:
            raise bad(f"vq_stages must be an integer in [1, 8], got {self.vq_stages!r}")
        if self.vq_codebook is not None and (not is_int(self.vq_codebook) or not 1 <= self.vq_codebook <= 4096):
            raise bad(f"vq_codebook must be an integer in [1, 4096], got {self.vq_codebook!r}")
        if not is_int(self.seed):
            raise bad(f"seed must be an integer, got {self.seed!r}")
        if not is_int(self.log_every) or self.log_every < 1:
            raise bad(f"log_every must be an integer >= 1, got {self.log_every!r}")
        if self.position_bits != 16 or not is_int(self.position_bits):
            raise bad(f"position_bits must be 16 (fp16 positions, as GaussianImage), got {self.position_bits!r}")
        for name in ("vq_commitment", "vq_codebook_weight"):
            v = getattr(self, name)
            if not (is_number(v) and v >= 0):
                raise bad(f"{name} must be a finite number >= 0, got {v!r}")
        if self.footprint_weight is not None and not (is_number(self.footprint_weight)
                                                      and self.footprint_weight >= 0):
            raise bad(f"footprint_weight must be a finite number >= 0, got {self.footprint_weight!r}")
        if not is_int(self.kmeans_iters) or self.kmeans_iters < 0:
            raise bad(f"kmeans_iters must be an integer >= 0, got {self.kmeans_iters!r}")


@dataclass
class QATResult:
    """Outcome of :func:`quantization_aware_finetune`.

    ``psnr``: 8-bit PSNR of the render of ``quantized.dequantize()``; ``psnr_before``: of the unquantised input
    model; ``psnr_ptq``: of the naive post-training quantisation (the quantisers' initial state, before any
    fine-tuning). ``steps``: optimiser steps applied to the returned state; ``seconds``: training wall time
    (logging excluded); ``history``: ``{step, seconds, psnr, loss}`` at logged steps (PSNR of the quantised
    training render), plus a final ``{step, seconds, psnr}`` entry when the last step was not logged.
    """

    quantized: Any  # QuantizedGaussians (GaussianImage) or SGAQuantized (method sga)
    psnr: float
    psnr_before: float
    psnr_ptq: float
    steps: int
    seconds: float
    config: QATConfig
    history: list[dict[str, float]] = field(default_factory=list)
    diverged: bool = False
    message: str = ""

    def report(self) -> dict[str, Any]:
        """JSON-serialisable summary (non-finite numbers become ``None``)."""

        q = self.quantized
        return {
            "psnr": json_float(self.psnr),
            "psnr_before": json_float(self.psnr_before),
            "psnr_ptq": json_float(self.psnr_ptq),
            "steps": int(self.steps),
            "seconds": json_float(self.seconds),
            "n_gaussians": q.n,
            "channels": q.channels,
            "size": list(q.size),
            "diverged": bool(self.diverged),
            "message": self.message,
            "config": asdict(self.config),
            "history": [{k: json_float(v) for k, v in e.items()} for e in self.history],
        }


def quantization_aware_finetune(
    g: Gaussians,
    image: Tensor,
    cfg: QATConfig | None = None,
    progress: bool = True,
    *,
    make_state: Callable[[Gaussians, QATConfig, torch.device], Any] | None = None,
) -> QATResult:
    """Fine-tune ``g`` (param ``"cholesky"``, native size = image size) with its quantisers in the loop.

    ``image``: ``(C, H, W)`` float in ``[0, 1]``. See the module docs for what trains, the loss and the result.
    Raises :class:`SplatpixError` for an RS model, a size or channel mismatch, non-finite parameters or a bad
    config. ``make_state(g, cfg, device)`` builds the trainable state (default: GaussianImage's quantisers,
    :class:`~.methods.gaussianimage_qat.GaussianImageState`); a method passes its own
    (:attr:`.registry.Prepared.make_state`) with the same methods (``tensors``, ``fake_quantized``, ``aux_loss``,
    ``refresh``, ``encode``).
    """
    cfg = QATConfig() if cfg is None else cfg
    if not isinstance(cfg, QATConfig):
        raise SplatpixError(f"cfg must be a QATConfig, got {type(cfg).__name__}")
    if not isinstance(g, Gaussians):
        raise SplatpixError(f"g must be a Gaussians model, got {type(g).__name__}")
    if g.param != "cholesky":
        raise SplatpixError(
            f"the GaussianImage codec quantises the Cholesky covariance (l11, l21, l22); this model uses "
            f"param={g.param!r}: fit it with param='cholesky'"
        )
    target = check_image(image)
    channels, height, width = target.shape
    if (int(height), int(width)) != g.size:
        raise SplatpixError(f"image size {height}x{width} differs from the model's native size "
                            f"{g.size[0]}x{g.size[1]}")
    if channels != g.channels:
        raise SplatpixError(f"image has {channels} channels, the model {g.channels}")
    if g.n < 1:
        raise SplatpixError("cannot quantise a model with no Gaussians")
    for name, t in (("means", g.means), ("cov_params", g.cov_params), ("colours", g.colours)):
        if not bool(torch.isfinite(t).all()):
            raise SplatpixError(f"the model has non-finite {name}")
    device = target.device

    with torch.no_grad():
        psnr_before = psnr(render(g.detach().to(device, torch.float32), height, width, clamp=True), target)

    state = (make_state or GaussianImageState)(g, cfg, device)
    with torch.no_grad():  # the quantisers' initial state is naive post-training quantisation
        psnr_ptq = psnr(render(state.fake_quantized(), height, width, clamp=True), target)
    params = list(state.tensors().values())
    opt: torch.optim.Optimizer = Adan(params, lr=cfg.lr) if cfg.optimizer == "adan" else Adam(params, lr=cfg.lr)

    guard = DivergenceGuard(state.tensors(), what="QAT", kept="state")
    history: list[dict[str, float]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc="qat", unit="step", dynamic_ncols=True, leave=True)

    footprint_weight = cfg.footprint_weight or 0.0
    log_time = 0.0
    t0 = time.perf_counter()
    try:
        for k in range(cfg.steps):
            model = state.fake_quantized()
            out = render(model, height, width)
            mse = clamped_mse(out, target)
            loss = mse + state.aux_loss()
            if footprint_weight > 0:
                loss = loss + footprint_penalty(mse, model.cov_params, model.param, height, width, footprint_weight)
            loss_value = float(loss.detach())
            if not guard.record(loss_value, k, state.tensors()):
                break
            if k % cfg.log_every == 0:
                state.refresh()
                t_log = time.perf_counter()
                p = psnr(out.detach(), target)
                history.append({"step": k, "seconds": t_log - t0 - log_time, "psnr": p, "loss": loss_value})
                if bar is not None:
                    bar.set_postfix(psnr=f"{p:.2f}", refresh=False)
                log_time += time.perf_counter() - t_log
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if bar is not None:
                bar.update(1)
            if not guard.params_ok(state.tensors(), k + 1):
                break
        else:
            guard.step = cfg.steps
        seconds = time.perf_counter() - t0 - log_time
    finally:
        if bar is not None:
            bar.close()

    diverged, message, good_step = guard.diverged, guard.message, guard.step
    if diverged:
        guard.restore(state.tensors())

    state.refresh()
    quantized = state.encode()
    with torch.no_grad():
        final_psnr = psnr(render(quantized.dequantize().to(device), height, width, clamp=True), target)
    if not history or history[-1]["step"] != good_step:
        history.append({"step": good_step, "seconds": seconds, "psnr": final_psnr})
    if not message:
        message = (f"QAT of {g.n} Gaussians, {good_step} steps: {psnr_before:.2f} dB unquantised, "
                   f"{psnr_ptq:.2f} dB naive PTQ, {final_psnr:.2f} dB after QAT")
    return QATResult(
        quantized=quantized,
        psnr=final_psnr,
        psnr_before=psnr_before,
        psnr_ptq=psnr_ptq,
        steps=good_step,
        seconds=seconds,
        config=copy.deepcopy(cfg),
        history=history,
        diverged=diverged,
        message=message,
    )
