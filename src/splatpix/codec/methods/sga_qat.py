"""Method ``sga``'s encoder side (torch): the bit-depth planning (covariance tiers, scalar colour channels) and the
QAT state; the format is :mod:`.sga`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...errors import SplatpixError
from ...model.gaussians import Gaussians
from ...render import render
from ..colours_qat import ScalarColourQuantizer, colour_transform, ptq_colours
from ..entropy import ideal_code_length_bits
from ..grid import grid_ste, quantize_grid
from ..positions import encode_grid_points
from ..quantize import LearnedUniformQuantizer, ResidualVQ
from ..registry import Prepared
from ..tier_bits import choose_tier_bits, rd_bit_search, tier_ptq
from ..tiers import assign_tiers, tier_thresholds
from .gaussianimage_qat import trainable_tensors
from .sga import SGA_VQ_CODEBOOK, SGAConfig, SGAQuantized, config_dict

__all__ = ["SGAState", "plan_bits", "prepare"]


class SGAState:
    """QAT state of the ``sga`` codec (see :func:`.qat.quantization_aware_finetune`): grid positions (STE),
    per-tier learned uniform quantisers of the Cholesky parameters, scalar-quantised colours (or residual VQ
    colours when ``colour_bits`` is ``None``). Tiers are re-derived from the quantised positions at every logged step
    and before encoding, as the decoder will."""

    def __init__(self, g: Gaussians, cfg: Any, device: torch.device, sga: SGAConfig,
                 thresholds: list[int], tier_bits: list[int], colour_bits: list[int] | None = None) -> None:
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
        self.vq: ResidualVQ | None = None
        self.colour_q: ScalarColourQuantizer | None = None
        if colour_bits is not None:
            self.colour_q = ScalarColourQuantizer(colour_bits).to(device).init_from(self.colours)
            return
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
        out = {"xy": self.xy, "chol": self.chol, "colours": self.colours}
        if self.vq is not None:
            out["codebooks"] = self.vq.codebooks
        else:
            out.update(self.colour_q.parameters_by_name())
        for t, q in enumerate(self.cov_q):
            out[f"log_scale{t}"] = q.log_scale
            out[f"offset{t}"] = q.offset
        return out

    def aux_loss(self) -> Tensor:
        return self.vq.loss(self.colours) if self.vq is not None else self.colours.new_zeros(())

    def quantized_colours(self) -> Tensor:
        return self.vq(self.colours) if self.vq is not None else self.colour_q(self.colours)

    def fake_quantized(self) -> Gaussians:
        cov = self.chol
        for t, q in enumerate(self.cov_q):
            cov = torch.where(self.tier_mask[:, t:t + 1], q(self.chol), cov)
        means = grid_ste(self.means(), self.size, self.sga.subdiv)
        return Gaussians(means, cov, self.quantized_colours(), "cholesky", self.size)

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
            cov_symbols=sym[order],
            colour_indices=None if self.vq is None else self.vq.encode(self.colours)[order],
            codebooks=None if self.vq is None else self.vq.codebooks.detach().cpu().numpy().astype("float32"),
            scalar_colours=None if self.colour_q is None else self.colour_q.encode(self.colours).take(order))


def plan_bits(g: Gaussians, image: Tensor, sga: SGAConfig, colour_bits: float,
              render_sse) -> tuple[list[int], list[int], list[int] | None, dict[str, Any]]:
    """Tier thresholds (spacing quantiles), the tiers' bit depths and, for scalar colours, the colour channels' bit
    depths for a fitted model ``g``: each fixed where ``sga`` fixes it, the others chosen jointly, RD-aware
    (:func:`..tier_bits.rd_bit_search` on post-training quantisation).

    ``render_sse(cov, colours)``: squared error of the render of ``g`` with covariance ``cov`` and ``colours``;
    ``colour_bits``: the residual VQ's bits per Gaussian (its rate, for ``colour="vq"``)."""
    grid, _ = quantize_grid(g.means, g.size, sga.subdiv)
    thresholds = tier_thresholds(grid, sga.n_tiers, sga.tier_k)
    info: dict[str, Any] = {"thresholds": thresholds}
    scalar = sga.colour == "scalar"
    fixed_cov = sga.tier_bits is not None
    fixed_col = not scalar or sga.colour_bits is not None
    if fixed_col and scalar and len(sga.colour_bits) != g.channels:
        raise SplatpixError(f"colour_bits needs one bit depth per channel ({g.channels}), got {list(sga.colour_bits)}")
    col_bits = list(sga.colour_bits) if scalar and fixed_col else None
    if fixed_cov and fixed_col:
        return thresholds, list(sga.tier_bits), col_bits, info
    tiers = assign_tiers(grid, thresholds, sga.tier_k)
    pos_bits = 8 * len(encode_grid_points(grid, (g.size[1] * sga.subdiv + 1, g.size[0] * sga.subdiv + 1))[0])
    chol = g.cov_params.detach().cpu().float()
    colours = g.colours.detach().cpu().float()
    if not scalar:  # the tiers alone, under a fixed colour rate
        bpg = pos_bits / max(g.n, 1) + 3 * 6 + colour_bits  # covariance at GaussianImage's 6 bits before coding
        bits, rd = choose_tier_bits(chol, tiers, sga.n_tiers, lambda cov: render_sse(cov, colours), bpg,
                                    sga.tier_candidates)
        info.update(rd)
        return thresholds, bits, None, info
    masks = [torch.from_numpy(tiers == t) for t in range(sga.n_tiers)]
    n_cov = 0 if fixed_cov else sga.n_tiers
    start_col = [7] + [6] * (g.channels - 1) if colour_transform(g.channels) else [7] * g.channels
    start = ([] if fixed_cov else [6] * sga.n_tiers) + (col_bits or start_col)
    cands = [sga.tier_candidates] * n_cov + ([(b,) for b in col_bits] if col_bits else
                                             [sga.colour_candidates] * g.channels)
    cov_cache: dict[tuple[int, ...], tuple[Tensor, float]] = {}
    col_cache: dict[tuple[int, ...], tuple[Tensor, float]] = {}

    def evaluate(bits_: list[int]) -> tuple[float, float]:
        tb = tuple(sga.tier_bits) if fixed_cov else tuple(bits_[:n_cov])
        cb = tuple(bits_[n_cov:])
        if tb not in cov_cache:
            cov_cache[tb] = tier_ptq(chol, masks, tb)
        if cb not in col_cache:
            deq, sym = ptq_colours(colours, cb)
            col_cache[cb] = (deq, sum(ideal_code_length_bits(sym[:, j], 1 << b) for j, b in enumerate(cb)))
        (cov, r_cov), (col, r_col) = cov_cache[tb], col_cache[cb]
        return render_sse(cov, col), r_cov + sga.colour_rate_weight * r_col

    evaluate(start)
    tb0 = tuple(sga.tier_bits) if fixed_cov else tuple(start[:n_cov])
    r_start = cov_cache[tb0][1] + col_cache[tuple(start[n_cov:])][1]  # lambda from the unweighted rate
    bits, rd = rd_bit_search(evaluate, start, cands, g.n, pos_bits / max(g.n, 1) + r_start / max(g.n, 1))
    info.update(rd)
    tier_bits = list(sga.tier_bits) if fixed_cov else bits[:n_cov]
    return thresholds, tier_bits, bits[n_cov:], info


SCALAR_QAT_STEPS = 0.2
SCALAR_QAT_LR = 0.1
"""Scalar colours fine-tune for this fraction of the QAT config's steps at this multiple of its learning rate:
their post-training quantisation is already close to what QAT reaches, and QAT's first steps at the VQ's rate cost
more than a decibel that the rest of the run does not win back (docs/notes/2026-12-04-sga-scalar-colour.md)."""


def prepare(g: Gaussians, image: Tensor, qat_config: Any, options: SGAConfig) -> Prepared:
    """Plan the covariance tiers (and scalar colours') bit depths for the fitted ``g`` (RD-aware unless fixed) and
    build the QAT state; with ``colour="auto"``, one of each colour coding, for the encoder to keep the better."""
    target = image.detach().float()

    def render_sse(cov: Tensor, colours: Tensor) -> float:
        with torch.no_grad():
            m = Gaussians(g.means, cov, colours.to(g.colours), "cholesky", g.size)
            return float(((render(m, clamp=True) - target) ** 2).sum())

    k = qat_config.vq_codebook if qat_config.vq_codebook is not None else SGA_VQ_CODEBOOK
    if options.colour == "scalar" and (k != SGA_VQ_CODEBOOK or qat_config.vq_stages != 2):
        raise SplatpixError("vq_codebook and vq_stages set the residual VQ colours: use them with colour 'vq' "
                            "or 'auto' (--colour vq|auto)")
    colour_bits = qat_config.vq_stages * math.log2(max(k, 2))

    def one(colour: str) -> Prepared:
        opts = dataclasses.replace(options, colour=colour, colour_bits=options.colour_bits if colour == "scalar"
                                   else None)
        thresholds, bits, col_bits, tier_info = plan_bits(g, target, opts, colour_bits, render_sse)
        report: dict[str, Any] = {"tier_bits": bits, "tier_thresholds": thresholds, "tier_planning": tier_info,
                                  "sga_config": config_dict(options), "colour": colour}
        metadata: dict[str, Any] = {"tier_bits": bits, "subdiv": options.subdiv}
        overrides: dict[str, Any] = {}
        if col_bits is not None:
            report["colour_bits"] = metadata["colour_bits"] = col_bits
            overrides = {"steps": round(qat_config.steps * SCALAR_QAT_STEPS), "lr": qat_config.lr * SCALAR_QAT_LR}
        return Prepared(make_state=lambda g_, c_, d_: SGAState(g_, c_, d_, opts, thresholds, bits, col_bits),
                        report=report, metadata=metadata, qat_overrides=overrides,
                        select_lambda=float(tier_info.get("lambda", 0.0)))

    if options.colour != "auto":
        return one(options.colour)
    scalar, vq = one("scalar"), one("vq")
    return Prepared(make_state=scalar.make_state, alternatives=[scalar, vq], select_lambda=scalar.select_lambda)
