"""The GaussianImage codec: quantisation-aware fine-tuning, entropy coding and the ``.spix`` file format.

Submodules: :mod:`.quantize` (quantisers with straight-through estimators), :mod:`.qat` (quantisation-aware
fine-tuning and :class:`~splatpix.codec.quantize.QuantizedGaussians`), :mod:`.entropy` and :mod:`.bitstream`.
"""
