"""Conversion between effective Gaussian parameters and the raw (optimised) parameters of :mod:`splatpix.train.loop`.

:func:`splatpix.train.fit` optimises *raw* tensors and builds the effective model from them (``loop._build``):

* means: ``u = (tanh(xy) + 1) / 2``, so ``xy = atanh(2 u - 1)``, with ``2 u - 1`` clipped to
  ``[-ATANH_CLIP, ATANH_CLIP]`` (``|xy| <= ~4.95``) exactly as the random initialisation does;
* Cholesky: ``L = raw + (0.5, 0, 0.5)``, so ``raw = L - (0.5, 0, 0.5)``;
* RS: ``s = |raw_s + 0.5|`` and ``theta = sigmoid(raw_r) 2 pi``. The inverse takes the covariance's
  eigen-decomposition ``(s1, s2, theta)`` (:func:`splatpix.model.gaussians.params_from_covariance`), so any effective
  Cholesky model converts: ``raw_s = s - 0.5`` (then ``|raw_s + 0.5| = s`` since ``s >= 0``) and
  ``raw_r = logit(theta' / (2 pi))`` where ``theta'`` is ``theta`` moved into ``[pi/2, 3 pi/2)`` by a multiple
  of ``pi`` (an ellipse is unchanged by a half turn). That window keeps the sigmoid argument within
  ``|raw_r| <= logit(3/4) ~ 1.1``, away from the saturated tails, and contains ``theta = pi`` (``raw_r = 0``),
  the value chosen for isotropic Gaussians, whose rotation is arbitrary;
* colours ("features") are used as they are.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .gaussians import Gaussians, covariance_from_params, params_from_covariance

__all__ = ["ATANH_CLIP", "CHOLESKY_BOUND", "SCALE_BOUND", "build_model", "raw_from_gaussians"]

CHOLESKY_BOUND = (0.5, 0.0, 0.5)
SCALE_BOUND = 0.5
ATANH_CLIP = 1.0 - 1e-4  # keeps atanh finite: |xy| <= ~4.95


def build_model(raw: dict[str, Tensor], param: str, size: tuple[int, int]) -> Gaussians:
    """Effective (differentiable) :class:`Gaussians` from raw parameters (the mapping :func:`splatpix.train.fit`
    trains through)."""
    means = 0.5 * (torch.tanh(raw["xy"]) + 1.0)
    if param == "cholesky":
        bound = torch.tensor(CHOLESKY_BOUND, dtype=raw["cholesky"].dtype, device=raw["cholesky"].device)
        cov = raw["cholesky"] + bound
    else:
        scales = torch.abs(raw["scaling"] + SCALE_BOUND)
        theta = torch.sigmoid(raw["rotation"]) * (2.0 * math.pi)
        cov = torch.cat((scales, theta), dim=1)
    return Gaussians(means, cov, raw["features"], param, size)


def raw_from_gaussians(g: Gaussians, param: str | None = None) -> dict[str, Tensor]:
    """Raw parameters whose :func:`build_model` is ``g`` (in the parameterisation ``param``, default ``g.param``).

    Returns new float32 tensors (detached, on ``g``'s device) with keys ``xy``, ``cholesky`` or
    ``scaling``/``rotation``, and ``features``. Means at 0 or 1 are moved inside by the atanh clip
    (``|2u - 1| <= 1 - 1e-4``); everything else round-trips to float precision.
    """
    param = g.param if param is None else param
    means = g.means.detach().to(torch.float32)
    cov_params = g.cov_params.detach().to(torch.float64)
    raw: dict[str, Tensor] = {"xy": torch.atanh((2.0 * means - 1.0).clamp(-ATANH_CLIP, ATANH_CLIP))}
    if param == "cholesky":
        if g.param == "cholesky":
            chol = cov_params
        else:
            chol = params_from_covariance(covariance_from_params(cov_params, g.param), "cholesky")
        bound = torch.tensor(CHOLESKY_BOUND, dtype=chol.dtype, device=chol.device)
        raw["cholesky"] = (chol - bound).to(torch.float32)
    elif param == "rs":
        rs = params_from_covariance(covariance_from_params(cov_params, g.param), "rs")
        s = rs[:, :2]
        theta = rs[:, 2]
        # move theta into [pi/2, 3 pi/2) by a multiple of pi; isotropic covariances give theta = 0 -> pi
        theta = torch.remainder(theta - 0.5 * math.pi, math.pi) + 0.5 * math.pi
        frac = theta / (2.0 * math.pi)
        raw["scaling"] = (s - SCALE_BOUND).to(torch.float32)
        raw["rotation"] = torch.log(frac / (1.0 - frac)).to(torch.float32)[:, None]
    else:
        raise ValueError(f"unknown covariance parameterisation {param!r}")
    raw["features"] = g.colours.detach().to(torch.float32).clone()
    return raw
