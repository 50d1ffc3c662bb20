"""Fitting Gaussians to an image, and the parts of the trainer.

* :mod:`.config`: :class:`FitConfig` (no torch); :mod:`.loop`: :func:`fit`, :class:`FitResult` (initialisation,
  colour solves, relocation, per-parameter learning rates, the loss terms, the divergence guard).
* :mod:`.guard`: the divergence guard every training loop shares (fit, QAT, GaINeR).
* :mod:`.losses`: the clamped MSE (numba, with its torch reference); :mod:`.geometry`: the geometry-consistent
  regulariser; :mod:`.footprint`: the decode-time (pairs per pixel) term.
* :mod:`.relocate`: error-guided placement; :mod:`.colour_solve`: closed-form colours; :mod:`.optim`: Adan.
"""

from __future__ import annotations

from typing import Any

from .config import FitConfig

__all__ = ["DivergenceGuard", "FitConfig", "FitResult", "fit", "solve_colours"]

# loaded on first use: FitConfig (the command line's options) imports no torch
_LAZY = {"DivergenceGuard": ".guard", "FitResult": ".loop", "fit": ".loop", "solve_colours": ".colour_solve"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
