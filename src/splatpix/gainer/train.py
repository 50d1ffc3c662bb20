"""Training a GaINeR field on one image.

* Means: uniform random in ``[0, 1)^2`` from ``seed`` (:func:`splatpix.gainer.field.random_means`); frozen unless
  ``model.trainable_means`` (GaINeR's released configuration freezes them).
* Covariances: isotropic, sigma = ``sigma_init_scale`` times the mean spacing ``1 / sqrt(N)``.
* Loss: Smooth-L1 with ``beta = smooth_l1_beta`` (default 1, as GaINeR's code; on colours in ``[0, 1]`` every error is
  below beta, so it equals ``0.5 * MSE``). Each step uses the whole image (``batch = 0``) or ``batch`` pixels drawn
  uniformly with replacement from a generator seeded with ``seed``.
* Optimiser: Adam, ``lr`` for the hash table and the MLP, ``lr_cov`` for the covariances, ``lr_means`` for trainable
  means; all learning rates are multiplied by ``lr_gamma`` at the fractions ``lr_milestones`` of ``steps`` (GaINeR:
  x0.33 at 50 / 75 / 90 %).
* RGBA (4 channels): a separate mask model on the same Gaussians (``model.alpha_model = "separate"``, the default;
  GaINeR's code trains a whole second model on the mask) or one MLP with 4 outputs (``"head"``). The colour
  channels are supervised only at pixels with alpha > 0.5 (GaINeR's sampling mask), the alpha channel at every
  pixel; the loss is the sum of the two means.
* Engine (``engine``): with frozen means and full-image steps on the CPU, ``"auto"`` (and ``"plan"``) runs the
  frozen-means fast path (:mod:`.plan`: each pixel's neighbour list, the transposed lists and every mean's hash-grid
  corners computed once; the fused kernels of :mod:`.fused`; Adam on the compact table, which is exactly Adam on
  the full table in this configuration; the MLP as batched matrix products, :mod:`.batched_mlp`). Its neighbour
  lists come from the initial acceptance radii and are recomputed from the current ones every ``knn_every`` steps
  (0, the default: never; GaINeR's code rebuilds its index every 1000 steps), so its steps equal the general
  path's only while the lists are current (with ``knn_every = 1``, up to float rounding; tested). A resumed run
  recomputes the lists at its first step, which is exact when ``knn_every`` is 0 or the resume step is below or a
  multiple of it. ``"field"`` always runs the general path (:meth:`.field.GainerField.forward`).
* NaN guard: if the loss or a parameter becomes non-finite, training stops, the parameters of the last step with a
  finite loss are restored, and the result has ``diverged=True`` and a message.
* Checkpoints and resume: with ``checkpoint_path``, a resumable checkpoint (:mod:`splatpix.gainer.checkpoint`: the
  field, Adam's moments, the sampler's state, the history) is written atomically every ``checkpoint_every`` steps
  and when training ends (not after a divergence: the last periodic one is kept). ``resume`` (a path or a
  :class:`~splatpix.gainer.checkpoint.Checkpoint`) continues such a run: the config comes from the checkpoint unless
  one is given (only ``steps``, ``log_every`` and ``checkpoint_every`` may differ), the image must be the same (its
  SHA-256 is checked), and the continued run ends with the same parameters as an uninterrupted one. The learning
  rate of step ``k`` is the base rate times ``lr_gamma`` to the number of milestones ``<= k`` (as
  ``MultiStepLR``), so it is a function of the step alone.

Presets (:meth:`GainerTrainConfig.preset`, defined in :data:`splatpix.presets.GAINER_PRESETS`): ``"balanced"`` (the
CLI's default: 500k Gaussians, K = 8, table 2^21, resolution 16..8192, the plain MLP, 160 full-image steps, lr 3e-2),
``"paper-cpu"`` (GaINeR's model: K = 16 and the decoder of its code, 500 full-image steps, lr 3e-2), ``"paper"``
(GaINeR's model and schedule: 30k full-image steps, lr 1e-3) and ``"small"`` (formerly ``"cpu"``: 20k Gaussians,
K = 8, table 2^16, 2000 steps of 2^13-pixel batches, lr 1e-2).
"""

from __future__ import annotations

import bisect
import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_image, is_int, is_number, json_float
from ..errors import SplatpixError
from ..metrics import psnr, psnr_rgba
from ..presets import GAINER_PRESETS
from ..train.guard import DivergenceGuard
from .batched_mlp import BatchedMLP
from .checkpoint import Checkpoint, image_digest, load_checkpoint, save_checkpoint
from .field import GainerConfig, GainerField, initial_cov_params, random_means
from .hashgrid import HashGridConfig
from .plan import FrozenPlan

__all__ = ["ENGINES", "PRESETS", "GainerResult", "GainerTrainConfig", "fit_gainer", "uses_plan"]

ENGINES = ("auto", "plan", "field")


def _is_pos(x: object) -> bool:
    return is_number(x) and x > 0


@dataclass
class GainerTrainConfig:
    """Training options; ``model`` is the field's :class:`GainerConfig` (its ``channels`` is set from the image).
    Defaults are the ``"small"`` preset's schedule with the default model."""

    model: GainerConfig = field(default_factory=GainerConfig)
    steps: int = 2000
    lr: float = 1e-2
    lr_cov: float = 1e-3
    lr_means: float = 1e-4
    lr_milestones: tuple[float, ...] = (0.5, 0.75, 0.9)
    lr_gamma: float = 0.33
    batch: int = 1 << 13  # pixels per step; 0 = the whole image
    smooth_l1_beta: float = 1.0
    sigma_init_scale: float = 1.0
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 0  # call the checkpoint callback every this many steps (0 = only at the end)
    engine: str = "auto"  # "plan" (frozen-means fast path), "field" (the general path) or "auto"
    knn_every: int = 0  # the plan's neighbour lists are recomputed every this many steps (0 = never)

    def __post_init__(self) -> None:
        def bad(msg: str) -> SplatpixError:
            return SplatpixError(f"invalid GaINeR training config: {msg}")

        if not isinstance(self.model, GainerConfig):
            raise bad(f"model must be a GainerConfig, got {type(self.model).__name__}")
        if not is_int(self.steps) or self.steps < 0:
            raise bad(f"steps must be an integer >= 0, got {self.steps!r}")
        for name in ("lr", "lr_cov", "lr_means", "smooth_l1_beta", "sigma_init_scale"):
            if not _is_pos(getattr(self, name)):
                raise bad(f"{name} must be a finite number > 0, got {getattr(self, name)!r}")
        self.lr_milestones = tuple(self.lr_milestones)
        if not all(_is_pos(m) and m < 1 for m in self.lr_milestones):
            raise bad(f"lr_milestones must be fractions in (0, 1), got {self.lr_milestones!r}")
        if not (_is_pos(self.lr_gamma) and self.lr_gamma <= 1):
            raise bad(f"lr_gamma must be in (0, 1], got {self.lr_gamma!r}")
        if not is_int(self.batch) or self.batch < 0:
            raise bad(f"batch must be an integer >= 0 (0 = whole image), got {self.batch!r}")
        if not is_int(self.seed):
            raise bad(f"seed must be an integer, got {self.seed!r}")
        if not is_int(self.log_every) or self.log_every < 1:
            raise bad(f"log_every must be an integer >= 1, got {self.log_every!r}")
        if not is_int(self.checkpoint_every) or self.checkpoint_every < 0:
            raise bad(f"checkpoint_every must be an integer >= 0, got {self.checkpoint_every!r}")
        if self.engine not in ENGINES:
            raise bad(f"unknown engine {self.engine!r}; use one of {', '.join(ENGINES)}")
        if not is_int(self.knn_every) or self.knn_every < 0:
            raise bad(f"knn_every must be an integer >= 0, got {self.knn_every!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GainerTrainConfig:
        """Rebuild a config from :func:`dataclasses.asdict` output (validated)."""
        if not isinstance(d, dict) or not isinstance(d.get("model"), dict):
            raise SplatpixError("invalid GaINeR training config: not a dict with a model")
        try:
            m = dict(d["model"])
            m["hashgrid"] = HashGridConfig(**m.get("hashgrid", {}))
            rest = {k: v for k, v in d.items() if k != "model"}
            if isinstance(rest.get("lr_milestones"), list):
                rest["lr_milestones"] = tuple(rest["lr_milestones"])
            return cls(model=GainerConfig(**m), **rest)
        except TypeError as e:
            raise SplatpixError(f"invalid GaINeR training config: {e}") from e

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> GainerTrainConfig:
        """A preset of :data:`PRESETS` (module docstring), with field overrides (``model=`` replaces the model)."""
        if name not in PRESETS:
            raise SplatpixError(f"unknown GaINeR preset {name!r}; use one of {', '.join(sorted(PRESETS))}")
        try:
            return replace(copy.deepcopy(PRESETS[name]), **overrides)
        except TypeError as e:
            raise SplatpixError(f"invalid GaINeR preset override: {e}") from e


def _from_preset(d: dict[str, Any]) -> GainerTrainConfig:
    model = dict(d.get("model", {}))
    model["hashgrid"] = HashGridConfig(**model.get("hashgrid", {}))
    return GainerTrainConfig(model=GainerConfig(**model), **{k: v for k, v in d.items() if k != "model"})


PRESETS: dict[str, GainerTrainConfig] = {name: _from_preset(d) for name, d in GAINER_PRESETS.items()}
"""The presets of :data:`splatpix.presets.GAINER_PRESETS` as configs."""


@dataclass
class GainerResult:
    """Outcome of :func:`fit_gainer`: the trained (unbaked) ``field`` — the last good one if training diverged —,
    ``psnr`` (8-bit rounded) and ``psnr_float`` of the native-size render (for RGBA: the colour channels where the
    image is visible, alpha > 0, and ``psnr_alpha`` the alpha channel's; the whole image otherwise), the training
    ``seconds``, the ``steps`` applied, ``history`` of logged
    ``{step, seconds, loss, psnr, psnr_8bit, seconds_per_step}`` (``psnr`` of the step's batch, float;
    ``psnr_8bit`` of its prediction rounded to 8 bits; the mean seconds per step since the previous entry),
    ``diverged`` and ``message``."""

    field: GainerField
    psnr: float
    psnr_float: float
    seconds: float
    steps: int
    config: GainerTrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    diverged: bool = False
    message: str = ""
    psnr_alpha: float | None = None

    def report(self) -> dict[str, Any]:
        """JSON-serialisable summary (non-finite numbers become ``None``)."""

        return {
            "psnr": json_float(self.psnr), "psnr_float": json_float(self.psnr_float),
            **({"psnr_alpha": json_float(self.psnr_alpha)} if self.psnr_alpha is not None else {}),
            "seconds": json_float(self.seconds),
            "steps": self.steps, "n_gaussians": self.field.n, "channels": self.field.channels,
            "size": list(self.field.size), "diverged": self.diverged, "message": self.message,
            "config": asdict(self.config),
            "history": [{k: json_float(v) for k, v in e.items()} for e in self.history],
        }


def _loss(pred: Tensor, target: Tensor, beta: float) -> Tensor:
    """Smooth-L1 of ``(P, C)`` colours; for 4 channels colour on alpha > 0.5 plus alpha everywhere."""
    if target.shape[1] != 4:
        return F.smooth_l1_loss(pred, target, beta=beta)
    alpha = F.smooth_l1_loss(pred[:, 3], target[:, 3], beta=beta)
    mask = target[:, 3] > 0.5
    if not bool(mask.any()):
        return alpha
    return F.smooth_l1_loss(pred[mask, :3], target[mask, :3], beta=beta) + alpha


def _psnr_from(pred: Tensor, target: Tensor, quantize: bool = False) -> float:
    p = pred.detach().clamp(0, 1)
    if quantize:
        p = torch.round(p * 255.0) / 255.0
    err = float(((p - target) ** 2).mean())
    return math.inf if err == 0 else 10.0 * math.log10(1.0 / err)


def _resume_config(ck: Checkpoint, cfg: GainerTrainConfig | None) -> GainerTrainConfig:
    saved = GainerTrainConfig.from_dict(ck.config)
    if cfg is None:
        return saved
    free = ("steps", "log_every", "checkpoint_every")
    a, b = asdict(replace(saved, **{k: getattr(cfg, k) for k in free})), asdict(cfg)
    a["model"].pop("channels"), b["model"].pop("channels")
    if a != b:
        diff = sorted(k for k in a if a[k] != b[k])
        raise SplatpixError(f"cannot resume with a different training config ({', '.join(diff)} differ from the "
                            f"checkpoint's; only {', '.join(free)} may change)")
    return cfg


def uses_plan(cfg: GainerTrainConfig, n_pixels: int, device: torch.device | str = "cpu") -> bool:
    """Whether :func:`fit_gainer` runs the frozen-means fast path (:mod:`.plan`): frozen means, full-image steps,
    the CPU, and ``engine`` ``"auto"`` or ``"plan"`` (``"plan"`` where these do not hold is an error)."""
    ok = (not cfg.model.trainable_means and (cfg.batch == 0 or cfg.batch >= n_pixels)
          and torch.device(device).type == "cpu")
    if cfg.engine == "plan" and not ok:
        raise SplatpixError("the plan engine needs frozen means, full-image steps (batch 0) and the CPU")
    return ok and cfg.engine != "field"


def _lr_factor(step: int, milestones: list[int], gamma: float) -> float:
    return gamma ** bisect.bisect_right(milestones, step)


def fit_gainer(
    image: Tensor,
    cfg: GainerTrainConfig | None = None,
    progress: bool = True,
    *,
    callback: Callable[[int, dict[str, Any]], Any] | None = None,
    checkpoint: Callable[[int, GainerField], Any] | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | Checkpoint | None = None,
) -> GainerResult:
    """Train a GaINeR field on ``image`` (``(C, H, W)`` float in ``[0, 1]``, C = 1, 3 or 4; module docstring).

    A tqdm bar (``progress``) shows the batch PSNR. ``callback(step, info)`` is called every ``log_every`` steps with
    ``info = {step, seconds, loss, psnr}``; returning ``True`` stops training. ``checkpoint(step, field)`` is called
    every ``checkpoint_every`` steps (if > 0) and once at the end with the current (unbaked) field.
    ``checkpoint_path`` writes resumable checkpoints at the same times; ``resume`` continues from one (module
    docstring).
    """
    target = check_image(image)
    c, h, w = (int(s) for s in target.shape)
    ck = None
    if resume is not None:
        ck = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
        if (ck.channels, *ck.size) != (c, h, w) or ck.digest != image_digest(target):
            raise SplatpixError(f"the checkpoint was written for another image ({ck.size[1]}x{ck.size[0]}, "
                                f"{ck.channels} channels, SHA-256 {ck.digest[:12]}...); resume on the same image")
        cfg = _resume_config(ck, cfg)
    cfg = GainerTrainConfig() if cfg is None else cfg
    if not isinstance(cfg, GainerTrainConfig):
        raise SplatpixError(f"config must be a GainerTrainConfig, got {type(cfg).__name__}")
    if ck is not None and ck.step > cfg.steps:
        raise SplatpixError(f"the checkpoint is at step {ck.step}, past the {cfg.steps} steps asked for")
    device = target.device
    mcfg = replace(cfg.model, channels=c)
    n = mcfg.n_gaussians
    model = GainerField(
        mcfg, random_means(n, cfg.seed), initial_cov_params(n, cfg.sigma_init_scale / math.sqrt(n)),
        size=(h, w), seed=cfg.seed,
    ).to(device)

    # pixel centres and their colours, flattened row-major
    us = (torch.arange(w, dtype=torch.float64) + 0.5) / w
    vs = (torch.arange(h, dtype=torch.float64) + 0.5) / h
    coords = torch.stack(torch.meshgrid(vs, us, indexing="ij")[::-1], -1).reshape(-1, 2).to(torch.float32)
    coords = coords.to(device)
    colours = target.reshape(c, -1).T.contiguous()
    n_pix = h * w
    gen = torch.Generator().manual_seed(int(cfg.seed))

    radius0 = model.knn_radius()  # the initial covariances' acceptance radii
    if ck is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(ck.params[name].to(device))

    # the frozen-means fast path: neighbours, grid corners and the compact tables computed once (module docstring)
    plan = None
    if uses_plan(cfg, n_pix, device):  # neighbours of the initial radii until the first refresh (resume: exact)
        first = cfg.knn_every == 0 or (ck.step if ck is not None else 0) < cfg.knn_every
        plan = FrozenPlan(model, coords, radius0 if first else None)
    grids = {"grid.table": model.grid} if plan is None else {
        name: g for name, g in (("grid.table", model.grid), ("mask_grid.table", model.mask_grid)) if g is not None}
    tables = {} if plan is None else {name: torch.nn.Parameter(plan.gather_table(g.table))
                                      for name, g in grids.items()}
    runners = [] if plan is None else [BatchedMLP(m) for m in (model.mlp, model.mask_mlp) if m is not None]

    def forward() -> Tensor:
        if plan is None:
            return model(q)
        agg = plan.aggregate(model.cov_params, plan.gaussian_features(list(tables.values())))
        if len(runners) == 1:
            return runners[0](agg)
        d = mcfg.feature_dim
        return torch.cat((runners[0](agg[:, :d]), runners[1](agg[:, d:])), 1)

    def sync_tables() -> None:
        for name, t in tables.items():
            plan.scatter_table(t, grids[name].table)

    def trained() -> dict[str, Tensor]:
        """The trained tensors by the field's parameter names (the compact tables under their grids' names)."""
        out = {name: p for name, p in model.named_parameters() if p.requires_grad and name not in tables}
        out.update(tables)
        return out

    nets = ("grid.", "mlp.", "mask_grid.", "mask_mlp.")
    net_params = [p for name, p in model.named_parameters() if name.startswith(nets) and name not in tables]
    groups = [{"params": [*tables.values(), *net_params], "lr": cfg.lr},
              {"params": [model.cov_params], "lr": cfg.lr_cov}]
    if mcfg.trainable_means:
        groups.append({"params": [model.means], "lr": cfg.lr_means})
    for g in groups:
        g["base_lr"] = g["lr"]
    try:  # the fused kernel is several times faster on the large hash table (CPU float32 needs torch >= 2.4)
        opt = torch.optim.Adam(groups, fused=True)
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.Adam(groups)
    milestones = sorted({max(1, int(round(m * cfg.steps))) for m in cfg.lr_milestones})

    params = trained()
    start, adam_step, seconds0 = 0, 0, 0.0
    history: list[dict[str, float]] = []
    if ck is not None:
        with torch.no_grad():
            for name, p in params.items():
                m1, m2 = ck.moments[name]
                if name in tables:  # the full table's moments: only the compact rows can be non-zero
                    m1, m2 = plan.gather_table(m1), plan.gather_table(m2)
                opt.state[p] = {"step": torch.tensor(float(ck.adam_step), dtype=torch.float32, device=device),
                                "exp_avg": m1.to(device).clone(), "exp_avg_sq": m2.to(device).clone()}
        try:
            gen.set_state(ck.rng_state)
        except (RuntimeError, ValueError) as e:
            raise SplatpixError("the checkpoint's generator state is invalid") from e
        start, adam_step, seconds0 = ck.step, ck.adam_step, ck.seconds
        history = [dict(e) for e in ck.history if isinstance(e, dict) and e.get("step", -1) < ck.step]
        model._index = None

    def write_checkpoint(step: int, rng_state: Tensor, seconds: float) -> None:
        moments = {}
        for name, p in params.items():
            st = opt.state.get(p, {})
            m1, m2 = st.get("exp_avg", torch.zeros_like(p)), st.get("exp_avg_sq", torch.zeros_like(p))
            if name in tables:
                full1, full2 = torch.zeros_like(grids[name].table), torch.zeros_like(grids[name].table)
                plan.scatter_table(m1, full1)
                plan.scatter_table(m2, full2)
                m1, m2 = full1, full2
            moments[name] = (m1, m2)
        if tables:
            sync_tables()
        save_checkpoint(checkpoint_path, Checkpoint(
            step=step, adam_step=adam_step, seconds=seconds,
            params={k: v.detach() for k, v in model.named_parameters()}, moments=moments, rng_state=rng_state,
            config=asdict(replace(cfg, model=mcfg)), size=(h, w), channels=c, digest=image_digest(target),
            history=history))

    guard = DivergenceGuard(params, step=start)
    stopped = False
    message = ""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc="gainer", unit="step", dynamic_ncols=True, leave=True)

    t0 = time.perf_counter() - seconds0
    rng_state = gen.get_state()
    try:
        for k in range(start, cfg.steps):
            rng_state = gen.get_state()  # the sampler's state at the start of step k (a checkpoint at k needs it)
            factor = _lr_factor(k, milestones, cfg.lr_gamma)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
            if cfg.batch and cfg.batch < n_pix:
                sel = torch.randint(0, n_pix, (cfg.batch,), generator=gen).to(device)
                q, tgt = coords[sel], colours[sel]
            else:
                q, tgt = coords, colours
            if plan is not None and cfg.knn_every and k > start and k % cfg.knn_every == 0:
                plan.refresh_neighbours(model)
            pred = forward()
            loss = _loss(pred, tgt, cfg.smooth_l1_beta)
            loss_value = float(loss.detach())
            if not guard.record(loss_value, k, params):
                break
            if k % cfg.log_every == 0:
                pc, tc = (pred[:, :3], tgt[:, :3]) if c == 4 else (pred, tgt)
                p_batch = _psnr_from(pc, tc)
                now = time.perf_counter() - t0
                entry = {"step": k, "seconds": now, "loss": loss_value, "psnr": p_batch,
                         "psnr_8bit": _psnr_from(pc, tc, quantize=True)}
                if history and k > history[-1]["step"]:
                    per_step = (now - history[-1]["seconds"]) / (k - history[-1]["step"])
                    entry["seconds_per_step"] = per_step
                history.append(entry)
                if bar is not None:
                    post = {"psnr": f"{p_batch:.2f}"}
                    if "seconds_per_step" in entry:
                        post["s/step"] = f"{entry['seconds_per_step']:.3f}"
                    bar.set_postfix(post, refresh=False)
                if callback is not None and callback(k, dict(entry)) is True:
                    stopped = True
                    message = f"stopped by callback at step {k}"
                    break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            adam_step += 1
            if bar is not None:
                bar.update(1)
            if not guard.params_ok(params, k + 1):
                break
            if cfg.checkpoint_every and (k + 1) % cfg.checkpoint_every == 0:
                if checkpoint_path is not None:
                    write_checkpoint(k + 1, gen.get_state(), time.perf_counter() - t0)
                if checkpoint is not None:
                    if tables:
                        sync_tables()
                    checkpoint(k + 1, model)
        else:
            guard.step = cfg.steps
            rng_state = gen.get_state()
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    diverged, good_step = guard.diverged, guard.step
    message = guard.message or message
    if diverged or stopped:
        guard.restore(params)
    if tables:
        sync_tables()
    model._index = None  # parameters may have been restored: rebuild the neighbour index on next use
    if checkpoint_path is not None and not diverged:
        write_checkpoint(good_step, rng_state, seconds)

    out = model.render(h, w)
    psnr_alpha = None
    if c == 4:  # the colour where the image is visible (alpha > 0), and the alpha channel
        (final_psnr, psnr_alpha), (final_psnr_float, _) = psnr_rgba(out, target), psnr_rgba(out, target, False)
    else:
        final_psnr, final_psnr_float = psnr(out, target), psnr(out, target, quantize=False)
    if checkpoint is not None:
        checkpoint(good_step, model)
    if not message:
        message = f"fitted {n} GaINeR Gaussians in {good_step} steps: {final_psnr:.2f} dB"
    return GainerResult(field=model, psnr=final_psnr, psnr_float=final_psnr_float, seconds=seconds,
                        steps=good_step, config=copy.deepcopy(cfg), history=history, diverged=diverged,
                        message=message, psnr_alpha=psnr_alpha)
