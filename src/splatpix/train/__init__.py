"""Fitting Gaussians to an image, and the parts of the trainer.

* :mod:`.loop`: :class:`FitConfig`, :func:`fit`, :class:`FitResult` (initialisation, colour solves, relocation,
  per-parameter learning rates, the loss terms, the divergence guard).
* :mod:`.guard`: the divergence guard every training loop shares (fit, QAT, GaINeR).
* :mod:`.losses`: the clamped MSE (numba, with its torch reference); :mod:`.geometry`: the geometry-consistent
  regulariser; :mod:`.footprint`: the decode-time (pairs per pixel) term.
* :mod:`.relocate`: error-guided placement; :mod:`.colour_solve`: closed-form colours; :mod:`.optim`: Adan.
"""

from .colour_solve import solve_colours
from .guard import DivergenceGuard
from .loop import FitConfig, FitResult, fit

__all__ = ["DivergenceGuard", "FitConfig", "FitResult", "fit", "solve_colours"]
