"""Simulate a model and render it to a video: model -> particles (:mod:`.bridge`), MLS-MPM frames
(:mod:`.solver`), particles -> moved model, composited over the scene's background and streamed to the writer
(:mod:`splatpix.edit.writers`; one frame in memory at a time, except GIF's palettised frames).

Frame 0 is the initial state; frame ``i`` follows ``i`` solver frames of ``frame_dt`` simulated seconds each
(default ``1 / fps``: real time). The background defaults to black: a moved object uncovers what was behind it,
which the model does not hold (``original`` would leave a ghost of the object in place). When a scene has both
simulated and static Gaussians of a GaussianImage model, a simulated object covers the scene it moves over instead of
adding its colours to it (:func:`_layered_frames`); frame 0 is still exactly the model's render. GaINeR fields are
rendered whole (their KNN features mix, they do not add up).

NaN guard: when the solver stops on non-finite values (or the moved Gaussians are degenerate), the frames written
so far are kept (the writer is closed, so the file is valid) and a :class:`SplatpixError` names the frame.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import SplatpixError
from .bridge import Bridge
from .scene import Scene, load_scene, parse_scene

__all__ = ["simulate"]


def _as_scene(scene: Scene | Mapping[str, Any] | str | os.PathLike[str]) -> Scene:
    if isinstance(scene, Scene):
        return scene
    if isinstance(scene, Mapping):
        return parse_scene(scene)
    if isinstance(scene, str | os.PathLike):
        return load_scene(scene)
    raise SplatpixError(f"scene must be a Scene, a mapping or a scene file, got {type(scene).__name__}")


def _is_black(bg: Any) -> bool:
    from ..edit.composite import parse_colour

    if isinstance(bg, str):
        return parse_colour(bg) == (0.0, 0.0, 0.0)
    return isinstance(bg, tuple | list) and all(float(t) == 0.0 for t in bg)


def _layered_frames(bridge: Bridge, background: Any, h: int, w: int):
    """Frames of a GaussianImage model whose simulated Gaussians (front, ``f``) move over static ones (back, ``b``).

    The model sums Gaussians, so rendering the moved model adds an object's colours to the scene it passes over.
    With the unclamped layer renders ``O`` (colour) and ``A`` (coverage, the sum of Gaussian weights) and the whole
    model's coverage at rest ``T``, the coverages relative to it are ``a = A / T`` and the frame is

        k = clamp((1 - a_f) / a_b, 0, 1),    out = clamp(O_f + k O_b + clamp(1 - a_f - k a_b, 0, 1) B, 0, 1):

    at rest ``a_f + a_b = 1``, so ``k = 1`` and the frame is exactly the model's render; where the object (densely)
    covers the scene, ``a_f >= 1`` hides it; where the object left, ``a_f = 0`` and the uncovered share ``1 - a_b``
    shows the background ``B``."""
    from ..edit.composite import prepare_background
    from ..model.gaussians import Gaussians
    from ..render import render

    base = bridge.base
    static = torch.as_tensor(bridge.static, dtype=torch.long)
    moving = torch.as_tensor(bridge.index, dtype=torch.long)

    def layer(g: Gaussians, idx: Tensor) -> tuple[Tensor, Tensor]:
        cols = torch.cat((g.colours[idx], torch.ones(len(idx), 1, dtype=g.colours.dtype)), 1)
        with torch.no_grad():
            out = render(Gaussians(g.means[idx], g.cov_params[idx], cols, g.param, g.size), h, w)
        return out[:-1], out[-1:]

    ob, ab = layer(base, static)
    _, af0 = layer(base, moving)
    total = (ab + af0).clamp_min(1e-6)
    a_b = ab / total
    bg = prepare_background(background, ob.shape[0], h, w, ob.device)

    def frame(m: Any) -> Tensor:
        of, af = layer(m, moving)
        a_f = af / total
        k = ((1 - a_f) / a_b.clamp_min(1e-6)).clamp(0, 1)
        return (of + k * ob + (1 - a_f - k * a_b).clamp(0, 1) * bg).clamp(0, 1)

    return frame


def simulate(model: Any, scene: Scene | Mapping[str, Any] | str | os.PathLike[str], output: str | os.PathLike[str],
             *, progress: bool = True) -> dict[str, Any]:
    """Simulate ``scene`` on ``model`` (a :class:`~splatpix.model.gaussians.Gaussians` model or a GaINeR field) and
    write the frames to ``output`` (``.gif``, ``.mp4`` or a folder ending in ``/``). Returns a report: ``output, kind,
    frames, fps, width, height, seconds`` (wall), ``seconds_simulate, seconds_render, frames_per_second,
    frames_per_minute`` (achieved), ``substeps, substeps_per_frame, frame_dt, simulated_seconds, particles,
    static, grid, grid_res, dx, clamped, objects, mass, seed``."""
    from tqdm import tqdm

    from ..edit.apply import model_kind
    from ..edit.composite import composite, resolve_background
    from ..edit.writers import open_writer, output_kind
    from .solver import MPMSolver

    kind = model_kind(model)
    output_kind(output)  # a bad output path fails before any work
    sc = _as_scene(scene)
    t0 = time.perf_counter()
    bridge = Bridge(model, sc)
    cfg = bridge.config(sc)
    solver = MPMSolver(cfg, bridge.state, bridge.materials)
    mass0 = solver.total_mass()
    h, w = sc.size if sc.size is not None else bridge.base.size
    bg = resolve_background(sc.background or "#000000", bridge.base, h, w, sc.base_dir)
    t_sim = t_render = 0.0
    if kind == "gaussians" and model.channels in (1, 3) and len(bridge.static) and len(bridge.index):
        frame = _layered_frames(bridge, bg, h, w)
    elif _is_black(bg) and kind == "gaussians" and model.channels in (1, 3):
        from ..render import render

        def frame(m: Any) -> Any:  # over black the composite is the clamped render: skip the coverage channel
            with torch.no_grad():
                return render(m, h, w).clamp(0, 1)
    else:
        def frame(m: Any) -> Any:
            return composite(m, bg, None, h, w)

    writer = open_writer(output, sc.fps)
    try:
        tr = time.perf_counter()
        writer.write(frame(bridge.base))
        t_render += time.perf_counter() - tr
        for i in tqdm(range(1, sc.frames), disable=not progress, desc="frames", unit="frame",
                      initial=1, total=sc.frames):
            try:
                ts = time.perf_counter()
                x, F = solver.step_frame()
                t_sim += time.perf_counter() - ts
                tr = time.perf_counter()
                moved = bridge.to_model(x, F)
            except SplatpixError as e:
                kept = writer.count
                writer.close()  # a valid file with the frames before this one
                raise SplatpixError(f"simulation stopped at frame {i} of {sc.frames} ({e}); the {kept} frames "
                                    f"before it were written to {os.fspath(output)}") from e
            writer.write(frame(moved))
            t_render += time.perf_counter() - tr
        writer.close()
    except BaseException:
        if not writer.closed:
            writer.abort()
        raise
    seconds = time.perf_counter() - t0
    steps = max(1, sc.frames - 1)
    return {
        "output": os.fspath(output), "kind": kind, "frames": sc.frames, "fps": sc.fps, "width": w, "height": h,
        "seconds": seconds, "seconds_simulate": t_sim, "seconds_render": t_render,
        "frames_per_second": sc.frames / seconds, "frames_per_minute": 60.0 * sc.frames / seconds,
        "substeps": solver.substeps_done, "substeps_per_frame": solver.substeps_done / steps,
        "frame_dt": cfg.frame_dt, "simulated_seconds": solver.time, "particles": int(len(bridge.index)),
        "static": int(len(bridge.static)), "grid": [cfg.nx, cfg.ny], "grid_res": bridge.grid_res, "dx": cfg.dx,
        "clamped": bridge.clamped, "objects": bridge.objects, "mass": [mass0, solver.total_mass()],
        "seed": sc.seed,
    }
