"""The Gaussian image model and its files.

* :mod:`.gaussians`: :class:`Gaussians` (means, covariance parameters, colours, native size), the two covariance
  parameterisations, projection to any output grid.
* :mod:`.raw`: the model's raw trainable form (pre-tanh means, bounded Cholesky or scale/rotation) and back.
* :mod:`.files`: model files (safetensors + JSON metadata); :mod:`.container`: the safetensors container both
  model kinds use, validated as untrusted input.
"""

from .files import load_model, read_model_metadata, save_model
from .gaussians import PARAMETERISATIONS, Gaussians

__all__ = ["PARAMETERISATIONS", "Gaussians", "load_model", "read_model_metadata", "save_model"]
