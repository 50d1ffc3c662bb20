"""Argument groups shared by several commands: the fit options (``fit``, ``demo``, ``encode``, ``eval rd``) and the
codec options (``encode``, ``eval rd``), and the dict of encode options they become.

For ``encode`` and ``eval rd`` every fit option defaults to ``None``: the codec preset and the method decide
(:func:`splatpix.codec.api.encode_configs`), so both commands and :func:`splatpix.encode` make the same file.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_codec_options", "add_fit_options", "codec_options"]

_QAT_ARGS = ("qat_steps", "qat_lr", "qat_optimizer", "vq_stages", "vq_codebook")


def add_fit_options(p: argparse.ArgumentParser, *, codec: bool = False) -> None:
    """The fitting options (without ``-n``/``--steps``). ``codec``: defaults ``None`` (the preset's and the
    method's), else :class:`~splatpix.train.FitConfig`'s."""
    from ..train.config import FitConfig

    d = FitConfig.__dataclass_fields__

    def dflt(name: str) -> Any:
        return None if codec else d[name].default

    p.add_argument("--lr", type=float, default=dflt("lr"), help="learning rate (default %(default)s)")
    p.add_argument("--optimizer", choices=("adan", "adam"), default=dflt("optimizer"))
    p.add_argument("--lr-decay-every", type=int, default=dflt("lr_decay_every"),
                   help="halve the learning rate every this many steps (default %(default)s)")
    p.add_argument("--param", choices=("cholesky", "rs"), default=dflt("param"), help="covariance parameterisation")
    p.add_argument("--seed", type=int, default=dflt("seed"))
    p.add_argument("--log-every", type=int, default=dflt("log_every"), help="PSNR logging interval")
    # structure-guided allocation; values are checked by FitConfig (one-line errors)
    p.add_argument("--init", default=None, metavar="{random,gradient,structure}",
                   help="initialisation: GaussianImage's random one (default; structure for encode --method sga), "
                        "Image-GS's gradient sampling, or structure-guided allocation over SLIC superpixels")
    p.add_argument("--init-scale", type=float, default=dflt("init_scale"),
                   help="gradient/structure init: initial sigma = this times the local spacing (default: the "
                        "measured 1.0 for gradient, 0.7 for structure)")
    p.add_argument("--superpixel-area", type=float, default=dflt("superpixel_area"),
                   help="structure init: target superpixel area in pixels (default %(default)s)")
    p.add_argument("--colour-solve-init", action=argparse.BooleanOptionalAction, default=None,
                   help="least-squares colours (conjugate gradients) right after initialisation (default: off, "
                        "on for encode --method sga)")
    p.add_argument("--colour-solve-every", type=int, default=dflt("colour_solve_every"), metavar="K",
                   help="also solve the colours every K steps (0 = never, the default)")
    p.add_argument("--colour-solve-iters", type=int, default=dflt("colour_solve_iters"),
                   help="CG iterations per colour solve (default %(default)s)")
    p.add_argument("--geo-weight", type=float, default=dflt("geo_weight"), metavar="W",
                   help="weight of the geometry-consistent (Sobel-gradient) loss (default 0: off)")
    p.add_argument("--relocate-every", type=int, default=None, metavar="K",
                   help="error-guided placement: every K steps (in the first half) move the least important "
                        "Gaussians to where the error is largest (default 0: off; 250 for encode --method sga)")
    p.add_argument("--relocate-fraction", type=float, default=None, metavar="F",
                   help=f"fraction of the Gaussians moved each time (default {d['relocate_fraction'].default})")
    p.add_argument("--lr-cov-scale", type=float, default=None, metavar="M",
                   help="learning rate of the covariances as a multiple of --lr (default 1; 10 for encode "
                        "--method sga)")
    p.add_argument("--lr-means-scale", type=float, default=None, metavar="M",
                   help="learning rate of the means as a multiple of --lr (default 1)")
    p.add_argument("--lr-colour-scale", type=float, default=None, metavar="M",
                   help="learning rate of the colours as a multiple of --lr (default 1)")
    p.add_argument("--lr-means-ref-n", type=int, default=None, metavar="R",
                   help="above R Gaussians scale the means' learning rate by sqrt(R/N), keeping a step a fixed "
                        "fraction of their spacing (default 0: off; 1000 for encode --method sga)")
    p.add_argument("--footprint-weight", type=float, default=None, metavar="W",
                   help="penalise the pixels each Gaussian covers (the renderer's work, so decode time): one more "
                        "(pixel, Gaussian) pair per pixel must lower the MSE by the fraction W (default 0: off; "
                        "encode: also during QAT; with --method sga, 0.3 renders at GaussianImage's speed at equal N)")
    if codec:
        for action in p._actions:
            if action.help and "%(default)s" in action.help:
                action.help = action.help.replace("%(default)s", "the preset's")


def add_codec_options(p: argparse.ArgumentParser) -> None:
    """The codec's own options: preset, method, QAT schedule, colour quantiser, method options."""
    from ..codec import registry
    from ..presets import CODEC_PRESETS, DEFAULT_CODEC_PRESET

    methods = registry.names()
    p.add_argument("--preset", choices=tuple(CODEC_PRESETS), default=DEFAULT_CODEC_PRESET,
                   help="codec schedule (default %(default)s: fit 2000 steps Adam 1e-2 halved at half-way, QAT 1000 "
                        "steps Adam 1e-3; gaussianimage-paper: GaussianImage's 50k + 50k Adan steps)")
    p.add_argument("--steps", type=int, default=None, help="fitting steps (default: the preset's)")
    p.add_argument("--qat-steps", type=int, default=None, help="quantisation-aware fine-tuning steps (default: the "
                                                                "preset's)")
    p.add_argument("--qat-lr", type=float, default=None, help="QAT learning rate (default: the preset's)")
    p.add_argument("--qat-optimizer", choices=("adan", "adam"), default=None, help="QAT optimiser (default: the "
                                                                                   "preset's)")
    p.add_argument("--vq-stages", type=int, help="colour residual VQ stages (default 2, GaussianImage's)")
    p.add_argument("--vq-codebook", type=int, help="codewords per colour VQ stage (default: the method's; "
                   + ", ".join(f"{m} {registry.get(m).vq_codebook}" for m in methods) + ")")
    g = p.add_argument_group("method sga")
    g.add_argument("--subdiv", type=int, help="position grid steps per pixel (default 4)")
    g.add_argument("--cov-context-bits", type=int, help="widest l11 context for coding l21/l22 (0 = none; default 2)")
    g.add_argument("--tier-bits", type=int, nargs="+",
                   help="fixed covariance bits per tier, e.g. 6 6 6 (default: chosen RD-aware per image)")
    g.add_argument("--colour", choices=("auto", "scalar", "vq"),
                   help="colour coding: scalar (YCoCg, a quantiser per channel, entropy coded), vq (GaussianImage's "
                        "residual VQ) or auto (the default: both fine-tuned and coded, the better kept)")
    g.add_argument("--colour-bits", type=int, nargs="+",
                   help="fixed bits per colour channel of the scalar coding, e.g. 7 6 6 (default: chosen RD-aware "
                        "per image)")


def codec_options(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The encode options of ``args`` for :func:`splatpix.codec.api.encode_configs` (the values given; ``None``
    leaves the preset's or the method's default). Options of another method are refused."""
    from dataclasses import fields

    from ..codec import registry
    from ..errors import SplatpixError
    from ..train.config import FitConfig
    from .common import option

    out: dict[str, Any] = {f.name: getattr(args, f.name, None) for f in fields(FitConfig) if f.name != "n_gaussians"}
    out.update({k: getattr(args, k, None) for k in _QAT_ARGS})
    own = set(registry.get(method).option_names())
    for name in sorted({n for m in registry.names() for n in registry.get(m).option_names()}):
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in own:
            raise SplatpixError(f"{option(name)} does not apply to --method {method}")
        out[name] = tuple(value) if isinstance(value, list) else value
    if "tier_bits" in out and "n_tiers" in own:  # --tier-bits B0 B1 ... fixes the number of tiers too
        out["n_tiers"] = len(out["tier_bits"])
    return {k: v for k, v in out.items() if v is not None}
