"""The codec methods, one module each; importing this package registers them (:mod:`..registry`).

* :mod:`.gaussianimage`: GaussianImage's codec (id 0).
* :mod:`.sga`: the structure-guided codec (id 1).
"""

from . import gaussianimage, sga

__all__ = ["gaussianimage", "sga"]
