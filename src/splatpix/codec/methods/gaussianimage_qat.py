"""Method ``gaussianimage``'s quantisation-aware training state (torch); the format is :mod:`.gaussianimage`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...model.gaussians import Gaussians
from ...model.raw import ATANH_CLIP
from ..quantize import LearnedUniformQuantizer, QuantizedGaussians, ResidualVQ, fp16_ste, quantize_positions
from ..registry import Prepared
from .gaussianimage import VQ_CODEBOOK

__all__ = ["GaussianImageState", "prepare", "trainable_tensors"]


def trainable_tensors(g: Gaussians, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """The QAT's raw trainable tensors of ``g``: pre-tanh means (clipped as in fitting), Cholesky parameters,
    colours (float32)."""
    means = g.means.detach().to(device=device, dtype=torch.float32)
    u = (2.0 * means - 1.0).clamp(-ATANH_CLIP, ATANH_CLIP)
    xy = torch.atanh(u).requires_grad_(True)
    chol = g.cov_params.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
    colours = g.colours.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
    return xy, chol, colours


class GaussianImageState:
    """GaussianImage's QAT state: pre-tanh means with fp16 rounding (STE), a learned uniform quantiser of the
    Cholesky parameters, residual VQ of the colours. Every QAT state has these methods (see
    :func:`splatpix.codec.qat.quantization_aware_finetune`): ``tensors``, ``aux_loss``, ``refresh``, ``means``,
    ``fake_quantized``, ``encode``."""

    def __init__(self, g: Gaussians, cfg: Any, device: torch.device) -> None:
        self.xy, self.chol, self.colours = trainable_tensors(g, device)
        self.size = g.size
        self.cov_q = LearnedUniformQuantizer(3, cfg.cov_bits).to(device).init_from(self.chol)
        k = VQ_CODEBOOK if cfg.vq_codebook is None else cfg.vq_codebook
        self.vq = ResidualVQ(g.channels, cfg.vq_stages, k, kmeans_iters=cfg.kmeans_iters,
                             commitment=cfg.vq_commitment, codebook_weight=cfg.vq_codebook_weight)
        self.vq = self.vq.to(device).init_from(self.colours, seed=cfg.seed)

    def tensors(self) -> dict[str, Tensor]:
        return {"xy": self.xy, "chol": self.chol, "colours": self.colours, "log_scale": self.cov_q.log_scale,
                "offset": self.cov_q.offset, "codebooks": self.vq.codebooks}

    def aux_loss(self) -> Tensor:
        """Loss terms besides the render's MSE (the residual VQ's commitment/codebook terms)."""
        return self.vq.loss(self.colours)

    def refresh(self) -> None:
        """Called at every logged step; the baseline's quantisers have no state derived from the model."""

    def means(self) -> Tensor:
        return 0.5 * (torch.tanh(self.xy) + 1.0)

    def fake_quantized(self) -> Gaussians:
        """The model as the decoder will see it (exact values), differentiable through the STEs."""
        return Gaussians(fp16_ste(self.means()), self.cov_q(self.chol), self.vq(self.colours), "cholesky",
                         self.size)

    @torch.no_grad()
    def encode(self) -> QuantizedGaussians:
        pos, _ = quantize_positions(self.means())
        return QuantizedGaussians(
            size=self.size,
            channels=int(self.colours.shape[1]),
            position_symbols=pos,
            cov_symbols=self.cov_q.encode(self.chol),
            cov_scale=self.cov_q.scale.detach().cpu().numpy().astype("float32"),
            cov_offset=self.cov_q.offset.detach().cpu().numpy().astype("float32"),
            colour_indices=self.vq.encode(self.colours),
            codebooks=self.vq.codebooks.detach().cpu().numpy().astype("float32"),
            cov_bits=self.cov_q.bits,
        )


def prepare(g: Gaussians, image: Tensor, qat_config: Any, options: None) -> Prepared:
    """The registry's ``prepare`` of method ``gaussianimage``: nothing to plan."""
    return Prepared(make_state=GaussianImageState)
