"""The fit's options, :class:`FitConfig`: a plain dataclass with no torch, so that the command line builds its
options (and the decode path runs) without importing torch. The fit itself is :mod:`.loop`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import is_int, is_number
from ..errors import SplatpixError
from ..model.arrays import PARAMETERISATIONS
from ..render import BACKENDS

__all__ = ["INIT_METHODS", "OPTIMIZERS", "FitConfig"]

OPTIMIZERS = ("adan", "adam")
INIT_METHODS = ("random", "gradient", "structure")
"""The initialisations of :mod:`splatpix.init`."""


@dataclass
class FitConfig:
    """Fitting options (defaults follow GaussianImage, except ``steps``: it trains 50k, users report a
    plateau after ~10k)."""

    n_gaussians: int = 10_000
    steps: int = 10_000
    lr: float = 1e-3
    optimizer: str = "adan"
    lr_decay_every: int = 20_000
    lr_decay: float = 0.5
    param: str = "cholesky"
    seed: int = 0
    backend: str = "auto"
    log_every: int = 100
    clamp_output: bool = True
    log_ms_ssim: bool = False  # also record MS-SSIM at each logged point (costs one MS-SSIM evaluation each)
    # structure-guided allocation (defaults: off, i.e. GaussianImage)
    init: str = "random"  # "random" | "gradient" | "structure" (splatpix.init)
    init_scale: float | None = None  # gradient/structure: sigma = init_scale * spacing; None: the init's default
    superpixel_area: float = 1024.0  # structure: target SLIC superpixel area in pixels
    colour_solve_init: bool = False  # least-squares colours right after initialisation
    colour_solve_every: int = 0  # k > 0: also every k steps (resets the colours' optimiser state); 0 = never
    colour_solve_iters: int = 20  # CG iterations per colour solve
    geo_weight: float = 0.0  # geometry-consistent loss weight (0 = off); L_geo ~ 10-30x the MSE, try ~0.01
    footprint_weight: float = 0.0  # > 0: penalise the pairs per pixel the renderer evaluates (losses.footprint)
    # error-guided placement (splatpix.train.relocate): every k steps move the least important Gaussians to high error
    relocate_every: int = 0  # 0 = off
    relocate_fraction: float = 0.05  # of N per relocation
    relocate_until: float = 0.5  # fraction of the steps after which no relocation happens
    relocate_scale: float = 0.5  # sigma of a moved Gaussian, in units of the uniform spacing sqrt(HW / N)
    # per-parameter learning rates, as multiples of ``lr`` (1.0 = GaussianImage's single rate)
    lr_means_scale: float = 1.0  # raw means (pre-tanh)
    lr_cov_scale: float = 1.0  # raw Cholesky factors (pixels); rs: the scales (the rotation keeps ``lr``)
    lr_colour_scale: float = 1.0  # colours
    lr_means_ref_n: int = 0  # > 0: means' rate times sqrt(lr_means_ref_n / N) when N > lr_means_ref_n (0 = off)

    def __post_init__(self) -> None:
        def bad(msg: str) -> SplatpixError:
            return SplatpixError(f"invalid fit config: {msg}")

        if not is_int(self.n_gaussians) or self.n_gaussians < 1:
            raise bad(f"n_gaussians must be an integer >= 1, got {self.n_gaussians!r}")
        if not is_int(self.steps) or self.steps < 0:
            raise bad(f"steps must be an integer >= 0, got {self.steps!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise bad(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise bad(f"unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
        if not is_int(self.lr_decay_every) or self.lr_decay_every < 1:
            raise bad(f"lr_decay_every must be an integer >= 1, got {self.lr_decay_every!r}")
        if not (isinstance(self.lr_decay, int | float) and 0 < self.lr_decay <= 1):
            raise bad(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if self.param not in PARAMETERISATIONS:
            known = ", ".join(PARAMETERISATIONS)
            raise bad(f"unknown covariance parameterisation {self.param!r}; use one of {known}")
        if not is_int(self.seed):
            raise bad(f"seed must be an integer, got {self.seed!r}")
        if self.backend not in BACKENDS:
            raise bad(f"unknown render backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        if not is_int(self.log_every) or self.log_every < 1:
            raise bad(f"log_every must be an integer >= 1, got {self.log_every!r}")
        if self.init not in INIT_METHODS:
            raise bad(f"unknown init {self.init!r}; use one of {', '.join(INIT_METHODS)}")
        if self.init_scale is not None and (not is_number(self.init_scale) or self.init_scale <= 0):
            raise bad(f"init_scale must be a finite number > 0 (or None: the method's default), "
                      f"got {self.init_scale!r}")
        if not is_number(self.superpixel_area) or self.superpixel_area < 1:
            raise bad(f"superpixel_area must be a finite number >= 1 (pixels), got {self.superpixel_area!r}")
        if not isinstance(self.colour_solve_init, bool):
            raise bad(f"colour_solve_init must be True or False, got {self.colour_solve_init!r}")
        if not is_int(self.colour_solve_every) or self.colour_solve_every < 0:
            raise bad(f"colour_solve_every must be an integer >= 0 (0 = never), got {self.colour_solve_every!r}")
        if not is_int(self.colour_solve_iters) or self.colour_solve_iters < 1:
            raise bad(f"colour_solve_iters must be an integer >= 1, got {self.colour_solve_iters!r}")
        if not is_number(self.geo_weight) or self.geo_weight < 0:
            raise bad(f"geo_weight must be a finite number >= 0, got {self.geo_weight!r}")
        if not is_number(self.footprint_weight) or self.footprint_weight < 0:
            raise bad(f"footprint_weight must be a finite number >= 0, got {self.footprint_weight!r}")
        if not is_int(self.relocate_every) or self.relocate_every < 0:
            raise bad(f"relocate_every must be an integer >= 0 (0 = off), got {self.relocate_every!r}")
        for name in ("relocate_fraction", "relocate_until"):
            v = getattr(self, name)
            if not is_number(v) or not 0 <= v <= 1:
                raise bad(f"{name} must be a number in [0, 1], got {v!r}")
        if not is_number(self.relocate_scale) or self.relocate_scale <= 0:
            raise bad(f"relocate_scale must be a finite number > 0, got {self.relocate_scale!r}")
        for name in ("lr_means_scale", "lr_cov_scale", "lr_colour_scale"):
            v = getattr(self, name)
            if not is_number(v) or v <= 0:
                raise bad(f"{name} must be a finite number > 0, got {v!r}")
        if not is_int(self.lr_means_ref_n) or self.lr_means_ref_n < 0:
            raise bad(f"lr_means_ref_n must be an integer >= 0 (0 = off), got {self.lr_means_ref_n!r}")
