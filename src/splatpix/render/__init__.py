"""Rendering Gaussian images: the order-free accumulated sum, on any output grid.

* :mod:`.tensor`: :func:`render` / :func:`rasterize` of a torch model, differentiable, with the ``"numba"`` and
  ``"reference"`` backends (training, editing, the Python API).
* :mod:`.arrays`: :func:`render_array` of a numpy model (the decode path: no torch).
* :mod:`.cpu`: the numba kernels (forward, hand-written backward); :mod:`.reference`: the pure-PyTorch oracle.
* :mod:`.bands`: work estimates and banded output for untrusted models.

The names are loaded on first use, so that importing :mod:`splatpix.render.arrays` imports no torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BACKENDS", "output_size", "rasterize", "render", "render_array"]

BACKENDS = ("auto", "numba", "reference")
"""The rasteriser backends of :func:`render` / :func:`rasterize` (:mod:`.tensor`)."""



def output_size(native: tuple[int, int], height: int | None, width: int | None,
                scale: float | None) -> tuple[int, int]:
    """The ``(height, width)`` of a render (both renderers): ``height``/``width`` (default: the ``native`` size),
    or ``scale`` times the native size."""
    h0, w0 = native
    if scale is not None:
        if height is not None or width is not None:
            raise ValueError("give either scale or height/width, not both")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        return max(1, round(h0 * scale)), max(1, round(w0 * scale))
    return (h0 if height is None else int(height)), (w0 if width is None else int(width))


_LAZY = {"rasterize": ".tensor", "render": ".tensor", "render_array": ".arrays"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
