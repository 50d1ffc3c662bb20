"""GaussianImage-style fitting: optimise N Gaussians to reproduce one image.

Faithful to GaussianImage (ECCV 2024) in its representation and schedule:

* raw means ``xy`` are stored pre-tanh, initialised as ``atanh(2 (U(0,1) - 0.5))`` (clipped away from
  ``+-1``) and mapped to normalised image coordinates ``u = (tanh(xy) + 1) / 2``;
* Cholesky covariance ``(l11, l21, l22) = raw + (0.5, 0, 0.5)`` with ``raw ~ U(0,1)``, in native pixels;
* RS covariance: scales ``|s + 0.5|`` with ``s ~ U(0,1)``, rotation ``sigmoid(r) 2 pi`` with ``r ~ U(0,1)``;
* colours ("features") ``~ U(0,1)`` per channel; opacity is fixed at 1, so the colours are the weighted
  colours summed by the renderer;
* MSE loss on the full image each step, render clamped to ``[0, 1]`` (``clamp_output``), Adan with
  ``lr = 1e-3`` halved every 20 000 steps.

Beyond GaussianImage (all off by default, so the defaults reproduce it exactly), for structure-guided allocation:

* ``init``: ``"random"`` (GaussianImage), ``"gradient"`` (Image-GS) or ``"structure"`` (SLIC superpixels with 6:2:1
  budgets by complexity class), see :mod:`splatpix.init`; ``init_scale`` and ``superpixel_area`` tune the latter
  two. The image-driven initialisations produce an effective model that is converted to the raw parameters
  (:func:`splatpix.init.raw_from_gaussians`).
* ``colour_solve_init``: right after initialisation, replace the colours by the damped least-squares solution for
  the initial geometry (:func:`splatpix.train.colour_solve.solve_colours`, ``colour_solve_iters`` CG iterations);
  ``colour_solve_every = k > 0``: also at every step ``k, 2k, ...`` (before that step's render), each time resetting
  the optimiser's state (moments, step count) of the colour tensor, whose old moments describe other colours.
* ``geo_weight``: loss ``clamped_mse + geo_weight * L_geo`` with the geometry-consistent regulariser
  :class:`splatpix.train.geometry.GeometryLoss`.
* ``footprint_weight``: the decode-time term :func:`splatpix.train.footprint.footprint_penalty`.
* ``relocate_every``: error-guided placement (:mod:`splatpix.train.relocate`).
* ``lr_means_scale``, ``lr_cov_scale``, ``lr_colour_scale``: per-parameter learning rates, multiples of ``lr``
  (one optimiser group per raw tensor; all 1 reproduces GaussianImage's single rate exactly). The raw Cholesky
  factors are in pixels and an image-driven initialisation makes them several pixels large, so at ``lr = 1e-2``
  they move 0.01 px per step while the means move ~0.5 % of the image; method ``sga`` uses ``lr_cov_scale = 10``
  (docs/notes/2026-12-02-sga-fit-learning-rates.md).
* ``lr_means_ref_n = R > 0``: above ``R`` Gaussians the means' rate is further multiplied by ``sqrt(R / N)``, so a
  step stays the same fraction of the Gaussians' mean spacing (``~ N^-1/2`` of the image, whatever its size). With
  a fixed rate, Adam's early steps move the means by several pixels (``lr = 1e-2`` of a 768-px side), more than the
  spacing at N = 70 000 (2.4 px), and training oscillates. Method ``sga`` uses ``R = 1000``
  (docs/notes/2026-12-02-sga-fit-learning-rates.md).

Initialisation and colour solves are work of the method: their time is part of ``FitResult.seconds`` and of the
history's ``seconds`` (the clock starts before the initialisation); the step-0 log entry is the initialised (and
colour-solved) model.

Note that because the renderer sums (it does not alpha-blend) and the output is clamped, very dense models
(N comparable to the pixel count) start fully saturated at 1, where the clamp passes no gradient; as in
GaussianImage, N should stay well below the number of pixels.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..checks import check_image, json_float
from ..errors import SplatpixError
from ..init import initial_raw, random_raw
from ..metrics import ms_ssim, psnr
from ..model.gaussians import Gaussians
from ..model.raw import ATANH_CLIP, CHOLESKY_BOUND, SCALE_BOUND, build_model, raw_from_gaussians
from ..render import render
from .colour_solve import solve_colours
from .config import FitConfig
from .footprint import footprint_penalty
from .geometry import GeometryLoss
from .guard import DivergenceGuard
from .losses import clamped_mse
from .optim import Adam, Adan
from .relocate import relocate

__all__ = ["FitConfig", "FitInterrupted", "FitResult", "fit"]

_CHOLESKY_BOUND = CHOLESKY_BOUND
_SCALE_BOUND = SCALE_BOUND
_ATANH_CLIP = ATANH_CLIP  # keeps atanh finite: |xy| <= ~4.95


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, which the CLI turns into a KeyboardInterrupt) during :func:`fit`: ``result`` is the
    :class:`FitResult` of the last good state (the parameters of the last finite step), so that nothing trained is
    lost; ``splatpix fit`` saves it and exits with status 130. ``signal`` is the interrupting exception."""

    def __init__(self, result: FitResult, signal: BaseException) -> None:
        super().__init__(result.message)
        self.result = result
        self.signal = signal


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    ``gaussians`` holds the final model (detached) with effective parameters: normalised means, effective
    Cholesky ``L`` or ``(s1, s2, theta)``, colours. When training diverged it is the last good model.
    ``psnr`` is on 8-bit rounded images of the clamped native-size render; ``seconds`` is the training wall
    time, initialisation and colour solves included (metric evaluations for the log and the final evaluation
    excluded); ``init_seconds`` the part of it spent initialising (with the initial colour solve); ``history``
    lists the logged points ``{step, seconds, psnr}`` (plus ``ms_ssim`` with ``log_ms_ssim``).
    """

    gaussians: Gaussians
    psnr: float
    psnr_float: float
    ms_ssim: float | None
    seconds: float
    steps: int
    n_gaussians: int
    config: FitConfig
    history: list[dict[str, float]] = field(default_factory=list)
    diverged: bool = False
    message: str = ""
    init_seconds: float = 0.0

    def report(self) -> dict[str, Any]:
        """JSON-serialisable summary (non-finite numbers become ``None``)."""
        h, w = self.gaussians.size
        return {
            "psnr": json_float(self.psnr),
            "psnr_float": json_float(self.psnr_float),
            "ms_ssim": json_float(self.ms_ssim),
            "seconds": json_float(self.seconds),
            "steps": int(self.steps),
            "n_gaussians": int(self.n_gaussians),
            "param": self.gaussians.param,
            "channels": int(self.gaussians.channels),
            "size": [h, w],
            "diverged": bool(self.diverged),
            "message": self.message,
            "init_seconds": json_float(self.init_seconds),
            "config": asdict(self.config),
            "history": [{k: json_float(v) for k, v in e.items()}
                        for e in self.history],
        }


# --------------------------------------------------------------------------------------------- model


def _init_raw(n: int, channels: int, param: str, seed: int) -> dict[str, Tensor]:
    """GaussianImage's raw parameter initialisation (float32, CPU, from a seeded generator):
    :func:`splatpix.init.random_raw`."""
    return random_raw(n, channels, param, seed)


def _build(raw: dict[str, Tensor], param: str, size: tuple[int, int]) -> Gaussians:
    """Effective (differentiable) :class:`Gaussians` from the raw parameters: :func:`splatpix.init.build_model`."""
    return build_model(raw, param, size)


def _initial_raw(target: Tensor, cfg: FitConfig) -> dict[str, Tensor]:
    """Raw parameters of ``cfg.init`` for ``target`` (CPU float32)."""
    channels = int(target.shape[0])
    if cfg.init == "random":
        return _init_raw(cfg.n_gaussians, channels, cfg.param, cfg.seed)
    options: dict[str, Any] = {} if cfg.init_scale is None else {"scale": float(cfg.init_scale)}
    if cfg.init == "structure":
        options["superpixel_area"] = float(cfg.superpixel_area)
    return initial_raw(target.cpu(), cfg.n_gaussians, cfg.init, param=cfg.param, seed=cfg.seed,
                       backend=cfg.backend, **options)


def _solve_colours_into(raw: dict[str, Tensor], cfg: FitConfig, size: tuple[int, int], target: Tensor) -> bool:
    """Replace ``raw["features"]`` by the least-squares colours of the current geometry; False if not finite."""
    with torch.no_grad():
        model = build_model({k: v.detach() for k, v in raw.items()}, cfg.param, size)
        cols = solve_colours(model, target, iters=cfg.colour_solve_iters, backend=cfg.backend)
        if not bool(torch.isfinite(cols).all()):
            return False
        raw["features"].copy_(cols.to(raw["features"].dtype))
    return True


_LR_SCALE = {"xy": "lr_means_scale", "cholesky": "lr_cov_scale", "scaling": "lr_cov_scale",
             "features": "lr_colour_scale"}


def means_density_factor(n: int, ref_n: int) -> float:
    """``sqrt(ref_n / n)`` when ``0 < ref_n < n``, else 1: the means' rate factor of ``FitConfig.lr_means_ref_n``."""
    return math.sqrt(ref_n / n) if 0 < ref_n < n else 1.0


def _param_groups(raw: dict[str, Tensor], cfg: FitConfig) -> list[dict[str, Any]]:
    """One optimiser group per raw tensor, with ``lr`` times its ``lr_*_scale`` (the rotation keeps ``lr``); the
    means' also times :func:`means_density_factor`. A schedule (StepLR) scales every group's rate by the same
    factor."""
    n = int(raw["xy"].shape[0])
    groups = []
    for name, t in raw.items():
        rate = cfg.lr * (getattr(cfg, _LR_SCALE[name]) if name in _LR_SCALE else 1.0)
        if name == "xy":
            rate *= means_density_factor(n, cfg.lr_means_ref_n)
        groups.append({"params": [t], "lr": rate})
    return groups


# ------------------------------------------------------------------------------------------------ fit


def fit(
    image: Tensor,
    config: FitConfig | None = None,
    *,
    progress: bool = True,
    callback: Callable[[int, dict[str, Any]], Any] | None = None,
    start: Gaussians | None = None,
) -> FitResult:
    """Fit ``config.n_gaussians`` Gaussians to ``image`` (``(C, H, W)`` float in ``[0, 1]``, C = 1, 3 or 4).

    ``start``: continue from this model (a saved fit of the same image size and N, e.g. one stopped by Ctrl-C)
    instead of initialising; the optimiser starts afresh (its moments are not saved with a model), so the result is
    close to, not the same as, one uninterrupted run of the summed steps. The initial colour solve is skipped.

    PSNR (8-bit rounded) is logged every ``config.log_every`` steps, at step 0 and at the end; it reuses the
    training render, so logging costs no extra render. ``callback(step, info)`` is called at each logged
    point with ``info = {step, seconds, psnr, loss, lr}``; if it returns ``True`` training stops early.

    If the loss or a parameter becomes non-finite, training stops, the last good parameters (those of the
    last step with a finite loss) are restored and the result has ``diverged=True`` and a ``message``.
    """
    cfg = FitConfig() if config is None else config
    if not isinstance(cfg, FitConfig):
        raise SplatpixError(f"config must be a FitConfig, got {type(cfg).__name__}")
    target = check_image(image)
    channels, height, width = target.shape
    size = (int(height), int(width))
    device = target.device
    if cfg.n_gaussians > 0.5 * height * width:
        warnings.warn(
            f"{cfg.n_gaussians} Gaussians for {height * width} pixels: the clamped sum starts saturated and "
            "passes little gradient; use fewer Gaussians than about a quarter of the pixel count",
            stacklevel=2,
        )

    t_init = time.perf_counter()
    if start is not None:
        if start.n != cfg.n_gaussians or tuple(start.size) != size or start.channels != channels:
            raise SplatpixError(f"cannot continue a model of {start.n} Gaussians of a {start.size[1]}x{start.size[0]} "
                                f"image with {start.channels} channels on {cfg.n_gaussians} Gaussians of this "
                                f"{width}x{height} image with {channels}")
        initial = raw_from_gaussians(start.detach().to("cpu", torch.float32), cfg.param)
    else:
        initial = _initial_raw(target, cfg)
    raw = {k: v.to(device).requires_grad_(True) for k, v in initial.items()}
    if cfg.colour_solve_init and start is None:
        _solve_colours_into(raw, cfg, size, target)
    init_seconds = time.perf_counter() - t_init
    geo = GeometryLoss(target) if cfg.geo_weight > 0 else None
    params = _param_groups(raw, cfg)
    if cfg.optimizer == "adan":
        opt: torch.optim.Optimizer = Adan(params, lr=cfg.lr)
    else:
        opt = Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_decay_every, gamma=cfg.lr_decay)

    # last good parameters: those whose render gave a finite loss (initially the initial parameters)
    guard = DivergenceGuard(raw)
    history: list[dict[str, float]] = []
    message = ""
    stopped = False

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc="fit", unit="step", dynamic_ncols=True, leave=True)

    log_time = [0.0]  # time spent evaluating metrics for the log, excluded from the training time

    def log(step: int, out: Tensor, loss: float, seconds: float) -> bool:
        t_log = time.perf_counter()
        p = psnr(out.detach(), target)
        entry: dict[str, Any] = {"step": step, "seconds": seconds, "psnr": p}
        if cfg.log_ms_ssim:
            entry["ms_ssim"] = ms_ssim(out.detach(), target)
        history.append(entry)
        log_time[0] += time.perf_counter() - t_log
        if bar is not None:
            bar.set_postfix(psnr=f"{p:.2f}", refresh=False)
        if callback is not None:
            lr = opt.param_groups[0]["lr"]
            info = {"step": step, "seconds": seconds, "psnr": p, "loss": loss, "lr": lr}
            return callback(step, info) is True
        return False

    train_time = 0.0
    interrupt: BaseException | None = None
    t0 = time.perf_counter() - init_seconds  # the clock counts the initialisation (and the colour solves)
    try:
        for k in range(cfg.steps):
            # k = number of optimizer steps applied to the current parameters
            if (cfg.relocate_every and k > 0 and k % cfg.relocate_every == 0
                    and k <= cfg.relocate_until * cfg.steps):
                with torch.no_grad():
                    # the render the loss sees (clamped when the loss clamps): an unclamped render overshoots in
                    # saturated regions, where its residual is large but the loss's is zero
                    current = render(_build(raw, cfg.param, size), height, width, clamp=cfg.clamp_output,
                                     backend=cfg.backend)
                relocate(raw, cfg.param, size, target, current, cfg.relocate_fraction, scale=cfg.relocate_scale,
                         seed=cfg.seed + k, optimizer=opt)
            if cfg.colour_solve_every and k > 0 and k % cfg.colour_solve_every == 0:
                if _solve_colours_into(raw, cfg, size, target):
                    opt.state.pop(raw["features"], None)  # fresh moments for the new colours
            model = _build(raw, cfg.param, size)
            out = render(model, height, width, backend=cfg.backend)
            loss = clamped_mse(out, target, clamp=cfg.clamp_output)
            if cfg.footprint_weight > 0:
                loss = loss + footprint_penalty(loss, model.cov_params, cfg.param, height, width,
                                                cfg.footprint_weight)
            if geo is not None:
                loss = loss + cfg.geo_weight * geo(out, clamp=cfg.clamp_output)
            loss_value = float(loss.detach())
            if not guard.record(loss_value, k, raw):
                break
            if k % cfg.log_every == 0:
                if log(k, out, loss_value, time.perf_counter() - t0 - log_time[0]):
                    stopped = True
                    message = f"stopped by callback at step {k}"
                    break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
            if not guard.params_ok(raw, k + 1):
                break
        else:
            guard.step = cfg.steps
    except KeyboardInterrupt as e:  # keep the last good state: FitInterrupted carries it
        interrupt, stopped = e, True
        message = f"stopped at step {guard.step}"
    finally:
        train_time = time.perf_counter() - t0 - log_time[0]
        if bar is not None:
            bar.close()

    diverged = guard.diverged
    message = guard.message or message
    if diverged or stopped:
        guard.restore(raw)
    steps_done = guard.step

    with torch.no_grad():
        final = _build({k: v.detach().clone() for k, v in raw.items()}, cfg.param, size)
        out = render(final, height, width, clamp=True, backend=cfg.backend)
        final_psnr = psnr(out, target)
        final_psnr_float = psnr(out, target, quantize=False)
        final_ms_ssim = ms_ssim(out, target)
    if not history or history[-1]["step"] != steps_done:
        entry = {"step": steps_done, "seconds": train_time, "psnr": final_psnr}
        if cfg.log_ms_ssim:
            entry["ms_ssim"] = final_ms_ssim
        history.append(entry)
        if callback is not None:
            callback(steps_done, {"step": steps_done, "seconds": train_time, "psnr": final_psnr,
                                  "loss": None, "lr": opt.param_groups[0]["lr"]})
    if not message:
        message = f"fitted {cfg.n_gaussians} Gaussians in {steps_done} steps: {final_psnr:.2f} dB"

    result = FitResult(
        gaussians=final,
        psnr=final_psnr,
        psnr_float=final_psnr_float,
        ms_ssim=final_ms_ssim,
        seconds=train_time,
        steps=steps_done,
        n_gaussians=cfg.n_gaussians,
        config=copy.deepcopy(cfg),
        history=history,
        diverged=diverged,
        message=message,
        init_seconds=init_seconds,
    )
    if interrupt is not None:
        raise FitInterrupted(result, interrupt)
    return result
