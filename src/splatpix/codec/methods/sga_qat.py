"""Method ``sga``'s encoder side (torch): the covariance tier planning and the QAT state; the format is :mod:`.sga`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...model.gaussians import Gaussians
from ...render import render
from ..grid import grid_ste, quantize_grid
from ..positions import encode_grid_points
from ..quantize import LearnedUniformQuantizer, ResidualVQ
from ..registry import Prepared
from ..tier_bits import choose_tier_bits
from ..tiers import assign_tiers, tier_thresholds
from .gaussianimage_qat import trainable_tensors
from .sga import SGA_VQ_CODEBOOK, SGAConfig, SGAQuantized, config_dict

__all__ = ["SGAState", "plan_tiers", "prepare"]


class SGAState:
    """QAT state of the ``sga`` codec (see :func:`.qat.quantization_aware_finetune`): grid positions (STE),
    per-tier learned uniform quantisers of the Cholesky parameters, residual VQ colours. Tiers are re-derived
    from the quantised positions at every logged step and before encoding, as the decoder will."""

    def __init__(self, g: Gaussians, cfg: Any, device: torch.device, sga: SGAConfig,
                 thresholds: list[int], tier_bits: list[int]) -> None:
        self.xy, self.chol, self.colours = trainable_tensors(g, device)
        self.size = g.size
        self.sga = sga
        self.thresholds = list(thresholds)
        self.tier_bits = list(tier_bits)
        self.refresh()
        self.cov_q = []
        for t, b in enumerate(self.tier_bits):
            members = self.chol[self.tier_mask[:, t]] if bool(self.tier_mask[:, t].any()) else self.chol
            self.cov_q.append(LearnedUniformQuantizer(3, b).to(device).init_from(members))
        k = SGA_VQ_CODEBOOK if cfg.vq_codebook is None else cfg.vq_codebook
        self.vq = ResidualVQ(g.channels, cfg.vq_stages, k, kmeans_iters=cfg.kmeans_iters,
                             commitment=cfg.vq_commitment, codebook_weight=cfg.vq_codebook_weight)
        self.vq = self.vq.to(device).init_from(self.colours, seed=cfg.seed)

    def means(self) -> Tensor:
        return 0.5 * (torch.tanh(self.xy) + 1.0)

    def refresh(self) -> None:
        with torch.no_grad():
            grid, _ = quantize_grid(self.means(), self.size, self.sga.subdiv)
        tiers = torch.from_numpy(assign_tiers(grid, self.thresholds, self.sga.tier_k)).to(self.xy.device)
        self.tiers = tiers
        self.tier_mask = tiers[:, None] == torch.arange(len(self.tier_bits), device=tiers.device)[None, :]

    def tensors(self) -> dict[str, Tensor]:
        out = {"xy": self.xy, "chol": self.chol, "colours": self.colours, "codebooks": self.vq.codebooks}
        for t, q in enumerate(self.cov_q):
            out[f"log_scale{t}"] = q.log_scale
            out[f"offset{t}"] = q.offset
        return out

    def aux_loss(self) -> Tensor:
        return self.vq.loss(self.colours)

    def fake_quantized(self) -> Gaussians:
        cov = self.chol
        for t, q in enumerate(self.cov_q):
            cov = torch.where(self.tier_mask[:, t:t + 1], q(self.chol), cov)
        means = grid_ste(self.means(), self.size, self.sga.subdiv)
        return Gaussians(means, cov, self.vq(self.colours), "cholesky", self.size)

    @torch.no_grad()
    def encode(self) -> SGAQuantized:
        grid, _ = quantize_grid(self.means(), self.size, self.sga.subdiv)
        tiers = assign_tiers(grid, self.thresholds, self.sga.tier_k)
        sym = np.zeros((grid.shape[0], 3), dtype=np.int64)
        for t, q in enumerate(self.cov_q):
            m = tiers == t
            if m.any():
                sym[m] = q.encode(self.chol[torch.from_numpy(m).to(self.chol.device)])
        # in the file's order (the position coder's), so that the model renders bit-identically to the decoded one
        # (a float sum depends on its order)
        h, w = self.size
        _, order = encode_grid_points(grid, (w * self.sga.subdiv + 1, h * self.sga.subdiv + 1))
        return SGAQuantized(
            size=self.size, channels=int(self.colours.shape[1]), subdiv=self.sga.subdiv, grid=grid[order],
            tier_k=self.sga.tier_k, thresholds=self.thresholds, tier_bits=self.tier_bits,
            cov_scale=np.stack([q.scale.detach().cpu().numpy() for q in self.cov_q]).astype("float32"),
            cov_offset=np.stack([q.offset.detach().cpu().numpy() for q in self.cov_q]).astype("float32"),
            cov_symbols=sym[order], colour_indices=self.vq.encode(self.colours)[order],
            codebooks=self.vq.codebooks.detach().cpu().numpy().astype("float32"))


def plan_tiers(g: Gaussians, image: Tensor, sga: SGAConfig, colour_bits: float,
               render_sse) -> tuple[list[int], list[int], dict[str, Any]]:
    """Tier thresholds (spacing quantiles) and bit depths (fixed, or RD-aware) for a fitted model ``g``.

    ``render_sse(cov)``: squared error of the render of ``g`` with covariance ``cov``; ``colour_bits``: the colour
    bits per Gaussian (for the rate estimate behind ``lambda``)."""
    grid, _ = quantize_grid(g.means, g.size, sga.subdiv)
    thresholds = tier_thresholds(grid, sga.n_tiers, sga.tier_k)
    info: dict[str, Any] = {"thresholds": thresholds}
    if sga.tier_bits is not None:
        return thresholds, list(sga.tier_bits), info
    tiers = assign_tiers(grid, thresholds, sga.tier_k)
    pos_bits = 8 * len(encode_grid_points(grid, (g.size[1] * sga.subdiv + 1, g.size[0] * sga.subdiv + 1))[0])
    bpg = pos_bits / max(g.n, 1) + 3 * 6 + colour_bits  # covariance at GaussianImage's 6 bits before entropy coding
    bits, rd = choose_tier_bits(g.cov_params, tiers, sga.n_tiers, render_sse, bpg, sga.tier_candidates)
    info.update(rd)
    return thresholds, bits, info


def prepare(g: Gaussians, image: Tensor, qat_config: Any, options: SGAConfig) -> Prepared:
    """Plan the covariance tiers of the fitted ``g`` (RD-aware bit depths unless fixed) and build the QAT state."""
    target = image.detach().float()

    def render_sse(cov: Tensor) -> float:
        with torch.no_grad():
            m = Gaussians(g.means, cov, g.colours, "cholesky", g.size)
            return float(((render(m, clamp=True) - target) ** 2).sum())

    k = qat_config.vq_codebook if qat_config.vq_codebook is not None else SGA_VQ_CODEBOOK
    colour_bits = qat_config.vq_stages * math.log2(max(k, 2))
    thresholds, bits, tier_info = plan_tiers(g, target, options, colour_bits, render_sse)
    return Prepared(
        make_state=lambda g_, c_, d_: SGAState(g_, c_, d_, options, thresholds, bits),
        report={"tier_bits": bits, "tier_thresholds": thresholds, "tier_planning": tier_info,
                "sga_config": config_dict(options)},
        metadata={"tier_bits": bits, "subdiv": options.subdiv})
