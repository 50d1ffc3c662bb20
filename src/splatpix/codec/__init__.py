"""Compression: Gaussian images as ``.spix`` files.

* :mod:`.api`: ``encode`` (fit -> QAT -> pack), ``decode``, ``unpack``, ``encode_configs`` (presets + options).
* :mod:`.registry`: the codec methods by name and header id; :mod:`.methods` holds them (``gaussianimage``,
  ``sga``), one module each with its defaults, QAT state, ``pack`` and ``unpack``.
* :mod:`.qat`: quantisation-aware fine-tuning; :mod:`.quantize`: the quantisers (fp16 positions, learned uniform,
  residual VQ) with straight-through estimators.
* :mod:`.bitstream`: the ``.spix`` container; :mod:`.symbols`: the chunk/symbol layer the methods share;
  :mod:`.entropy`: ANS coding with constriction and fixed-length packing.
* Method ``sga``'s parts: :mod:`.positions` (grid positions coded as a set), :mod:`.tiers` (adaptive-bitwidth
  covariance tiers).
"""

from . import methods  # registers the built-in methods (registry)

__all__ = ["methods"]
