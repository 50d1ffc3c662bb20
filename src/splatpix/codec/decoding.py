"""Decoding ``.spix`` files to numpy arrays: the decode path, with no torch.

:func:`unpack` parses (untrusted) bytes into the method's quantised model, :func:`dequantize_arrays` turns it into a
:class:`~splatpix.model.arrays.GaussianArrays`, and :func:`decode_arrays` does both for a file.
:mod:`.api` wraps them for the torch API (:func:`splatpix.decode` returns a torch ``Gaussians``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SplatpixError
from ..model.arrays import GaussianArrays
from . import bitstream as bs
from . import (
    methods,  # noqa: F401  (registers the built-in methods)
    registry,
)

__all__ = ["DEFAULT_MAX_MEMORY", "decode_arrays", "decode_bytes_arrays", "dequantize_arrays", "unpack"]

DEFAULT_MAX_MEMORY = 2 << 30
"""The default memory budget of a decode (bytes): the decoder's estimate and a render's whole-frame buffers."""


def unpack(data: bytes, *, source: str = "<bytes>", max_pixels: int = bs.DEFAULT_MAX_PIXELS,
           max_gaussians: int = bs.DEFAULT_MAX_GAUSSIANS, max_memory: int = DEFAULT_MAX_MEMORY
           ) -> tuple[Any, dict[str, Any]]:
    """Parse ``.spix`` bytes (untrusted) into the method's quantised model and the metadata (``{}`` if none).
    Every method's model has ``dequantize_arrays()``, ``dequantize()`` (torch), ``n``, ``size``, ``channels`` and
    ``codebooks``.

    The budget is checked against the header before the payloads are decoded: at most ``max_pixels`` pixels and
    ``max_gaussians`` Gaussians, and at most ``max_memory`` bytes for the decoder (N times the method's
    :attr:`~.registry.CodecMethod.decode_bytes_per_gaussian`): a file of a few hundred bytes can declare millions of
    Gaussians whose symbols cost zero bits."""
    header, sections = bs.read_spix(data, max_pixels=max_pixels, max_gaussians=max_gaussians, source=source)
    m = registry.by_id(header.method, source)
    need = header.n_gaussians * m.decode_bytes_per_gaussian
    if need > max_memory:
        raise SplatpixError(f"{source}: decoding its {header.n_gaussians} Gaussians needs about {_mb(need)}, over the "
                            f"memory budget of {_mb(max_memory)} (--max-memory)")
    meta: dict[str, Any] = {}
    if bs.METADATA in sections:
        meta = bs.decode_metadata(sections[bs.METADATA], source=source)
    return m.unpack(header, sections, source), meta


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def dequantize_arrays(q: Any, source: str = "<bytes>") -> GaussianArrays:
    """``q.dequantize_arrays()``, refused when a parameter decodes to a non-finite value (the symbols of a damaged
    or hostile file can point at infinite quantiser steps, fp16 infinities or overflowing codebooks)."""
    g = q.dequantize_arrays()
    for what, a in (("positions", g.means), ("covariances", g.cov_params), ("colours", g.colours)):
        if not np.isfinite(a).all():
            raise SplatpixError(f"{source}: corrupt .spix file: the {what} decode to non-finite values")
    return g


def decode_bytes_arrays(data: bytes, *, source: str = "<bytes>", **budget: int) -> GaussianArrays:
    """The model stored in ``.spix`` bytes, as numpy arrays (render it with :func:`splatpix.render_array`);
    ``budget``: ``max_pixels``, ``max_gaussians``, ``max_memory`` as in :func:`unpack`."""
    q, _ = unpack(data, source=source, **budget)
    return dequantize_arrays(q, source)


def decode_arrays(path: str | os.PathLike[str], *, max_pixels: int = bs.DEFAULT_MAX_PIXELS,
                  max_gaussians: int = bs.DEFAULT_MAX_GAUSSIANS,
                  max_memory: int = DEFAULT_MAX_MEMORY) -> GaussianArrays:
    """The model stored in a ``.spix`` file as numpy arrays (size-capped read, untrusted input, the budget of
    :func:`unpack`)."""
    bs.read_spix_file(path, max_pixels=max_pixels, max_gaussians=max_gaussians)
    return decode_bytes_arrays(Path(path).read_bytes(), source=os.fspath(path), max_pixels=max_pixels,
                               max_gaussians=max_gaussians, max_memory=max_memory)
