"""The divergence guard shared by every training loop (Gaussian fit, quantisation-aware fine-tuning, GaINeR).

A loop calls :meth:`DivergenceGuard.record` with each step's loss before the optimiser step: a finite loss makes
the current parameters the last good ones, a non-finite one ends training. After the optimiser step,
:meth:`DivergenceGuard.params_ok` ends training when a parameter became non-finite. :meth:`restore` then puts the
last good parameters back, so that what is saved is never worse than the last finite state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor


class DivergenceGuard:
    """The last good copy of a set of named tensors and the step it belongs to.

    ``what`` names the loop in the message (``"training"``, ``"QAT"``), ``kept`` what is restored (``"model"``,
    ``"state"``); ``step`` is the step of the initial tensors (a resumed run starts later)."""

    def __init__(self, tensors: Mapping[str, Tensor], *, step: int = 0, what: str = "training",
                 kept: str = "model") -> None:
        self.good = {name: t.detach().clone() for name, t in tensors.items()}
        self.step = step
        self.what = what
        self.kept = kept
        self.diverged = False
        self.message = ""

    def _fail(self, reason: str) -> bool:
        self.diverged = True
        self.message = f"{self.what} diverged: {reason}; restored the last good {self.kept} (step {self.step})"
        return False

    def record(self, loss: float, step: int, tensors: Mapping[str, Tensor]) -> bool:
        """False (diverged) when ``loss`` is not finite; else ``tensors`` become the last good state at ``step``."""
        if not math.isfinite(loss):
            return self._fail(f"non-finite loss at step {step}")
        for name, t in tensors.items():
            self.good[name].copy_(t.detach())
        self.step = step
        return True

    def params_ok(self, tensors: Mapping[str, Tensor], step: int) -> bool:
        """False (diverged) when a tensor holds a non-finite value after the optimiser's ``step``-th step."""
        # a NaN or Inf anywhere makes the sum non-finite (one reduction, no boolean copy of a large hash table); a
        # finite sum overflows only for values near 1e38 / numel, which a diverging run reaches anyway
        if all(bool(torch.isfinite(t.detach().sum())) for t in tensors.values()):
            return True
        return self._fail(f"non-finite parameters after step {step}")

    def restore(self, tensors: Mapping[str, Tensor]) -> None:
        """Copy the last good values back into ``tensors``."""
        with torch.no_grad():
            for name, t in tensors.items():
                t.copy_(self.good[name])
