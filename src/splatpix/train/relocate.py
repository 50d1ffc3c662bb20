"""Error-guided placement: move the least useful Gaussians to where the render is worst (issue 4, section 5).

At a fixed budget N, gradient descent moves a Gaussian only a few pixels per step, so Gaussians that start in
flat regions rarely reach the detailed regions that need them. Every ``relocate_every`` steps (up to the fraction
``relocate_until`` of the run) :func:`relocate` takes the ``fraction`` of Gaussians with the smallest importance

    imp_i = ||c_i||_1 * sqrt(det Sigma_i)           (colour mass: the integral of |c_i| w_i is 2 pi ||c_i||_1 sqrt(det))

and re-places them at pixels drawn without replacement with probability proportional to the smoothed squared
error ``E = blur(sum_c (I - R)^2)`` (3x3 box, so one noisy pixel does not attract a Gaussian; pixels already drawn
cannot be drawn twice). A re-placed Gaussian is isotropic with ``sigma = scale * sqrt(H W / N)`` pixels (at most
the spacing of a uniform tiling), centred at the pixel centre plus a uniform jitter of +-0.5 px, and its colour is
the residual ``I - R`` at that pixel divided by the summed weight of all moved Gaussians at its centre (the
renderer sums Gaussians and a Gaussian's weight at its centre is 1; moved Gaussians crowd where the error is, and
without the division they would add several times the residual).
Removing Gaussians of the lowest importance changes the render little by construction.

Optimiser state of the moved rows is reset: first moments to zero, second moments (Adam's ``exp_avg_sq``, Adan's
too) to the median of the other rows, so the first updates of a moved Gaussian have the typical size rather than
the ``(1 - b1) / sqrt(1 - b2) ~ 3x`` larger steps of an all-zero state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..init.common import rng_from_seed, weighted_sample
from ..model.gaussians import covariance_from_params
from ..model.raw import ATANH_CLIP, CHOLESKY_BOUND, SCALE_BOUND, build_model

__all__ = ["importance", "relocate"]


def importance(raw: dict[str, Tensor], param: str, size: tuple[int, int]) -> Tensor:
    """``(N,)`` colour mass ``||c||_1 sqrt(det Sigma)`` (native pixels) of the model built from ``raw``."""
    with torch.no_grad():
        g = build_model({k: v.detach() for k, v in raw.items()}, param, size)
        cov = covariance_from_params(g.cov_params, param)
        det = (cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2).clamp_min(0.0)
        return g.colours.abs().sum(1) * det.sqrt()


def _reset_rows(opt: torch.optim.Optimizer, p: Tensor, idx: Tensor) -> None:
    state = opt.state.get(p)
    if not state:
        return
    keep = torch.ones(p.shape[0], dtype=torch.bool, device=p.device)
    keep[idx] = False
    for name, t in state.items():
        if not isinstance(t, Tensor) or t.shape != p.shape:
            continue
        if name == "exp_avg_sq" and bool(keep.any()):
            t[idx] = t[keep].median(0).values
        else:
            t[idx] = 0.0


def relocate(
    raw: dict[str, Tensor],
    param: str,
    size: tuple[int, int],
    target: Tensor,
    render_out: Tensor,
    fraction: float,
    *,
    scale: float = 0.5,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
) -> Tensor:
    """Move ``round(fraction * N)`` Gaussians of ``raw`` in place (module docstring); returns their indices.

    ``render_out`` is the current render ``(C, H, W)`` of ``raw`` as the loss sees it: clamped to ``[0, 1]`` when
    the loss clamps (as :func:`splatpix.fit` does by default). An unclamped render overshoots in saturated regions
    (white sky, black shadows) where the clamped loss is zero; its residual there would draw Gaussians with
    colours far below 0 into them (docs/notes/2026-12-02-relocation-fix.md).
    ``optimizer`` (if given) has the moved rows of every raw tensor's state reset.
    """
    h, w = size
    n = int(raw["features"].shape[0])
    m = min(int(round(fraction * n)), n, h * w)
    if m <= 0:
        return torch.zeros(0, dtype=torch.int64)
    with torch.no_grad():
        imp = importance(raw, param, size)
        idx = torch.argsort(imp, stable=True)[:m].to(raw["features"].device)
        resid = target - render_out.detach()
        err = (resid * resid).sum(0, keepdim=True)[None]
        err = F.avg_pool2d(F.pad(err, (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0, 0]
        rng = rng_from_seed(seed)
        pix = weighted_sample(err.flatten().cpu().double().numpy(), m, rng)
        ys, xs = np.divmod(pix, w)
        jitter = rng.uniform(-0.5, 0.5, size=(m, 2))
        u = np.clip((xs + 0.5 + jitter[:, 0]) / w, 0.0, 1.0)
        v = np.clip((ys + 0.5 + jitter[:, 1]) / h, 0.0, 1.0)
        dev, dt = raw["xy"].device, raw["xy"].dtype
        uv = torch.as_tensor(np.stack((u, v), 1), dtype=dt, device=dev)
        raw["xy"][idx] = torch.atanh((2.0 * uv - 1.0).clamp(-ATANH_CLIP, ATANH_CLIP))
        sigma = float(scale) * math.sqrt(h * w / n)
        if param == "cholesky":
            b = CHOLESKY_BOUND
            raw["cholesky"][idx] = torch.tensor((sigma - b[0], -b[1], sigma - b[2]), dtype=dt, device=dev)
        else:
            raw["scaling"][idx] = sigma - SCALE_BOUND
            raw["rotation"][idx] = 0.0  # theta = pi: isotropic, any angle
        pix_t = torch.as_tensor(pix, device=resid.device)
        # the moved Gaussians overlap where the error is concentrated: divide each one's residual by the summed
        # weight of the moved Gaussians at its centre, so together they add about the residual, not a multiple
        xy_px = torch.as_tensor(np.stack((u * w, v * h), 1), dtype=torch.float64)
        cover = torch.zeros(m, dtype=torch.float64)
        for s in range(0, m, 1024):
            d2 = torch.cdist(xy_px[s:s + 1024], xy_px).square()
            cover[s:s + 1024] = torch.exp(-0.5 * d2 / (sigma * sigma)).sum(1)
        cols = resid.flatten(1)[:, pix_t].T.double() / cover[:, None].to(resid.device)
        raw["features"][idx] = cols.to(raw["features"].dtype)
        if optimizer is not None:
            for t in raw.values():
                _reset_rows(optimizer, t, idx)
    return idx
