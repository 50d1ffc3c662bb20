"""Keyframed animation: for each frame, evaluate the spec at ``t = i / fps``, edit the *original* model (edits are
never accumulated from frame to frame), composite it and stream the frame to the writer (memory stays bounded:
one frame at a time, except GIF's palettised frames, :mod:`.writers`).

Background default: ``original`` (the unedited model's render) when the spec has a region (global or per edit),
since the rest of the image stays in place; black otherwise (e.g. corners uncovered by a rotation of the whole
image).
"""

from __future__ import annotations

import os
import time
from typing import Any

from torch import Tensor

from .apply import apply_edit, gaussian_selection, model_kind
from .composite import composite, resolve_background
from .spec import EditSpec
from .writers import open_writer

__all__ = ["animate", "default_background", "render_at"]


def default_background(spec: EditSpec) -> str:
    """``"original"`` when the spec has any region, ``"#000000"`` otherwise."""
    has_region = spec.region is not None or any(t.region is not None for t in spec.edits)
    return "original" if has_region else "#000000"


def render_at(model: Any, spec: EditSpec, t: float, height: int, width: int,
              background: Tensor | str | tuple[float, ...], selection: Tensor | None = None) -> Tensor:
    """The frame at time ``t``: the spec's edits at ``t`` applied to ``model``, composited over ``background``
    at ``height x width``."""
    steps = spec.steps_at(t, model.size)
    edited = apply_edit(model, steps, spec.region, spec.transform_covariance)
    return composite(edited, background, selection, height, width)


def animate(model: Any, spec: EditSpec, output: str | os.PathLike[str], *, progress: bool = True) -> dict[str, Any]:
    """Render ``spec`` (with timing) on ``model`` to ``output`` (``.gif``, ``.mp4`` or a folder ending in ``/``);
    returns a report ``{output, frames, fps, width, height, seconds}``."""
    from tqdm import tqdm

    from ..errors import SplatpixError

    model_kind(model)
    if spec.frames is None:
        raise SplatpixError("spec.duration: an animation needs duration (seconds) or frames")
    spec.check(model.size)
    h, w = spec.size if spec.size is not None else model.size
    t0 = time.perf_counter()
    bg = resolve_background(spec.background or default_background(spec), model, h, w, spec.base_dir)
    sel = gaussian_selection(model, spec.region) if spec.object_only and spec.region is not None else None
    with open_writer(output, spec.fps) as writer:
        for i in tqdm(range(spec.frames), disable=not progress, desc="frames", unit="frame"):
            writer.write(render_at(model, spec, i / spec.fps, h, w, bg, sel))
    return {"output": os.fspath(output), "frames": spec.frames, "fps": spec.fps, "width": w, "height": h,
            "seconds": time.perf_counter() - t0}
