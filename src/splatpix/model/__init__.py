"""The Gaussian image model and its files.

* :mod:`.gaussians`: :class:`Gaussians` (torch: means, covariance parameters, colours, native size), the two
  covariance parameterisations, projection to any output grid.
* :mod:`.arrays`: :class:`GaussianArrays`, the same model as numpy arrays (the decode path, no torch).
* :mod:`.raw`: the model's raw trainable form (pre-tanh means, bounded Cholesky or scale/rotation) and back.
* :mod:`.files`: model files (safetensors + JSON metadata); :mod:`.container`: the safetensors container both
  model kinds use, validated as untrusted input.

The names are loaded on first use, so that importing :mod:`.arrays` imports no torch.
"""

from __future__ import annotations

from typing import Any

from .arrays import PARAMETERISATIONS, GaussianArrays

__all__ = ["PARAMETERISATIONS", "GaussianArrays", "Gaussians", "load_arrays", "load_model", "read_model_metadata",
           "save_model"]

_LAZY = {"Gaussians": ".gaussians", "load_model": ".files", "load_arrays": ".files",
         "read_model_metadata": ".files", "save_model": ".files"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
