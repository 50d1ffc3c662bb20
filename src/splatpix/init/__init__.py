"""Initialisations of a Gaussian image model.

* ``"random"`` (:mod:`.random`): GaussianImage's random initialisation, the default of :func:`splatpix.train.fit`;
* ``"gradient"`` (:mod:`.gradient`): Image-GS's positions drawn from the squared gradient mixed with 30 % uniform;
* ``"structure"`` (:mod:`.structure`): structure-guided allocation over SLIC superpixels (6:2:1 budgets by
  complexity class), Lloyd-spread positions, spacing-derived covariance.

:func:`initialise` returns the effective model (:class:`~splatpix.model.gaussians.Gaussians`);
:func:`initial_raw` returns the raw parameters :func:`splatpix.train.fit` optimises (for ``"random"`` exactly
GaussianImage's draws, for the others the conversion :func:`.params.raw_from_gaussians`).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor

from ..checks import check_image
from ..errors import SplatpixError
from ..model.gaussians import PARAMETERISATIONS, Gaussians
from ..model.raw import build_model, raw_from_gaussians
from ..train.config import INIT_METHODS as METHODS  # the names live with FitConfig (no torch)
from .random import random_raw
from .structure import complexity_map

__all__ = ["METHODS", "build_model", "complexity_map", "initial_raw", "initialise", "raw_from_gaussians",
           "random_raw"]

def _check(n: int, method: str, param: str) -> None:
    if method not in METHODS:
        raise SplatpixError(f"unknown initialisation {method!r}; use one of {', '.join(METHODS)}")
    if param not in PARAMETERISATIONS:
        raise SplatpixError(f"unknown covariance parameterisation {param!r}; use one of {', '.join(PARAMETERISATIONS)}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SplatpixError(f"number of Gaussians must be an integer >= 1, got {n!r}")


def initialise(
    image: Tensor,
    n: int,
    method: str = "random",
    *,
    param: str = "cholesky",
    seed: int = 0,
    backend: str = "auto",
    **options: Any,
) -> Gaussians:
    """``n`` initial Gaussians for ``image`` (``(C, H, W)`` float in ``[0, 1]``, C = 1, 3 or 4).

    ``options`` go to the method: ``gradient``: ``uniform_fraction``, ``scale``, ``k_neighbours``;
    ``structure``: ``superpixel_area``, ``compactness``, ``slic_sigma``, ``scale``, ``sigma_from``,
    ``lloyd_iters``, ``floor``; ``random`` takes none. ``backend`` is the renderer used to read colours.
    Deterministic for a given ``seed``.
    """
    raw = initial_raw(image, n, method, param=param, seed=seed, backend=backend, **options)
    _, h, w = image.shape
    return build_model(raw, param, (int(h), int(w))).detach()


def initial_raw(
    image: Tensor,
    n: int,
    method: str = "random",
    *,
    param: str = "cholesky",
    seed: int = 0,
    backend: str = "auto",
    **options: Any,
) -> dict[str, Tensor]:
    """Raw parameters (``xy``, ``cholesky`` or ``scaling``/``rotation``, ``features``; float32, CPU) of the
    initialisation ``method``; :func:`.params.build_model` maps them to the effective model."""

    _check(n, method, param)
    target = check_image(image)
    if method == "random":
        if options:
            raise SplatpixError(f"the random initialisation takes no options, got {', '.join(sorted(options))}")
        return random_raw(n, int(target.shape[0]), param, seed)
    if method == "gradient":
        from .gradient import gradient_init as func
    else:
        from .structure import structure_init as func
    known = [k for k, v in inspect.signature(func).parameters.items()
             if v.kind == v.KEYWORD_ONLY and k not in ("param", "seed", "backend")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SplatpixError(f"unknown option(s) {', '.join(unknown)} for the {method} initialisation; "
                            f"known: {', '.join(known)}")
    out = func(target.cpu(), n, param=param, seed=seed, backend=backend, **options)
    g = out if isinstance(out, Gaussians) else out.gaussians
    return raw_from_gaussians(g, param)
