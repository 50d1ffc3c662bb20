"""Resumable GaINeR training checkpoints (safetensors + JSON, never pickle).

A checkpoint holds everything :func:`splatpix.gainer.train.fit_gainer` needs to continue a run exactly where it
stopped: the unbaked field (``model.<name>`` for every parameter: means, covariances, the hash table(s), the MLP(s)),
Adam's moments (``adam.<name>.exp_avg`` / ``adam.<name>.exp_avg_sq`` for every trained parameter), and in the JSON
metadata the step, Adam's step count, the elapsed training seconds, the training config, the batch sampler's
generator state (base64), the PSNR history, and the image's size, channels and SHA-256 (of its float32 pixels), so a
checkpoint is never resumed on another image. A run resumed from step ``k`` gives the same parameters as the run
that was never interrupted (tested), up to the floating-point nondeterminism of the kernels, which is none on CPU.

Files are untrusted input, validated like model files (:mod:`splatpix.model.container`): exact tensor set and shapes
(computed from the config, never from the file's own header), finite values, a well-formed config and generator
state; every problem is a one-line :class:`~splatpix.errors.SplatpixError`. Writes are atomic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..checks import is_int, is_number, is_real
from ..errors import SplatpixError
from ..model.container import ContainerReader, write_container
from ..model.files import MAX_SIDE
from .field import GainerConfig
from .hashgrid import HashGridConfig
from .io import mlp_shapes

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "image_digest", "load_checkpoint", "parameter_shapes",
           "save_checkpoint"]

CHECKPOINT_FORMAT = "splatpix-gainer-checkpoint"
CHECKPOINT_VERSION = 1
MAX_CHECKPOINT_BYTES = 32 << 30
MAX_RNG_STATE_BYTES = 1 << 16
MAX_HISTORY = 1 << 24  # logged entries

PathLike = str | os.PathLike[str]


def image_digest(image: Tensor) -> str:
    """SHA-256 of the image's float32 pixels (C, H, W, row-major)."""
    return hashlib.sha256(image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


def parameter_shapes(cfg: GainerConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of an unbaked field's parameters (``GainerField.named_parameters()`` names)."""
    n, h = cfg.n_gaussians, cfg.hashgrid
    table = (h.n_levels, h.table_size, h.features_per_level)
    shapes: dict[str, tuple[int, ...]] = {"means": (n, 2), "cov_params": (n, 3), "grid.table": table}
    shapes.update(mlp_shapes(cfg, "mlp", cfg.colour_outputs))
    if cfg.separate_mask:
        shapes["mask_grid.table"] = table
        shapes.update(mlp_shapes(cfg, "mask_mlp", 1))
    return shapes


@dataclass
class Checkpoint:
    """A training state: ``step`` steps done, ``adam_step`` Adam updates, ``params`` (name -> tensor),
    ``moments`` (name -> ``(exp_avg, exp_avg_sq)``) for the trained parameters, the sampler's ``rng_state``,
    ``seconds`` of training so far, ``config`` (a :class:`~splatpix.gainer.train.GainerTrainConfig` as a dict),
    ``size`` / ``channels`` / ``digest`` of the image, and the ``history``."""

    step: int
    adam_step: int
    seconds: float
    params: dict[str, Tensor]
    moments: dict[str, tuple[Tensor, Tensor]]
    rng_state: Tensor
    config: dict[str, Any]
    size: tuple[int, int]
    channels: int
    digest: str
    history: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(path: PathLike, ck: Checkpoint) -> None:
    """Write ``ck`` atomically."""
    tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in ck.params.items()}
    for k, (m1, m2) in ck.moments.items():
        tensors[f"adam.{k}.exp_avg"] = m1
        tensors[f"adam.{k}.exp_avg_sq"] = m2
    meta = {
        "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "step": int(ck.step),
        "adam_step": int(ck.adam_step), "seconds": float(ck.seconds), "config": ck.config,
        "height": int(ck.size[0]), "width": int(ck.size[1]), "channels": int(ck.channels), "digest": ck.digest,
        "rng_state": base64.b64encode(ck.rng_state.to(torch.uint8).numpy().tobytes()).decode("ascii"),
        "history": ck.history,
    }
    write_container(path, tensors, meta, "GaINeR checkpoint")


def _model_config(r: ContainerReader, raw: Any) -> GainerConfig:
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict) or \
            not isinstance(raw["model"].get("hashgrid"), dict):
        raise r.bad("missing or invalid training config")
    try:
        return GainerConfig(**{**raw["model"], "hashgrid": HashGridConfig(**raw["model"]["hashgrid"])})
    except TypeError as e:
        raise r.bad(f"invalid model config ({e})") from e
    except SplatpixError as e:
        raise r.bad(str(e)) from e


def _validate(r: ContainerReader, meta: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise r.bad(f"format is {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    version = meta.get("format_version")
    if not is_int(version) or not 1 <= version <= CHECKPOINT_VERSION:
        raise r.bad(f"unsupported checkpoint version {version!r}")
    for key, top in (("step", 1 << 53), ("adam_step", 1 << 53), ("height", MAX_SIDE), ("width", MAX_SIDE),
                     ("channels", 4)):
        if not is_int(meta.get(key)) or not 0 <= meta[key] <= top:
            raise r.bad(f"invalid {key} {meta.get(key)!r}")
    if not is_number(meta.get("seconds")) or meta["seconds"] < 0:
        raise r.bad("invalid seconds")
    if not isinstance(meta.get("digest"), str) or not isinstance(meta.get("rng_state"), str) or \
            len(meta["rng_state"]) > 2 * MAX_RNG_STATE_BYTES:
        raise r.bad("invalid image digest or generator state")
    history = meta.get("history", [])
    if not isinstance(history, list) or len(history) > MAX_HISTORY or not all(
            isinstance(e, dict) and is_int(e.get("step", 0))
            and all(isinstance(k, str) and (v is None or is_real(v)) for k, v in e.items()) for e in history):
        raise r.bad("invalid history (a list of {name: number} entries)")
    cfg = _model_config(r, meta.get("config"))
    shapes = {f"model.{k}": v for k, v in parameter_shapes(cfg).items()}
    trained = [k for k in parameter_shapes(cfg) if k != "means" or cfg.trainable_means]
    for k in trained:
        shapes[f"adam.{k}.exp_avg"] = shapes[f"model.{k}"]
        shapes[f"adam.{k}.exp_avg_sq"] = shapes[f"model.{k}"]
    return shapes


def load_checkpoint(path: PathLike, max_bytes: int = MAX_CHECKPOINT_BYTES) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`."""
    r = ContainerReader(path, max_bytes, "splatpix GaINeR checkpoint", "a checkpoint")
    meta, out = r.load(lambda m: _validate(r, m), exact=True)
    try:
        rng = base64.b64decode(meta["rng_state"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise r.bad("invalid generator state") from e
    if not rng:
        raise r.bad("empty generator state")
    params = {k[len("model."):]: v for k, v in out.items() if k.startswith("model.")}
    moments = {k: (out[f"adam.{k}.exp_avg"], out[f"adam.{k}.exp_avg_sq"])
               for k in params if f"adam.{k}.exp_avg" in out}
    return Checkpoint(step=meta["step"], adam_step=meta["adam_step"], seconds=float(meta["seconds"]), params=params,
                      moments=moments, rng_state=torch.frombuffer(bytearray(rng), dtype=torch.uint8),
                      config=meta["config"], size=(meta["height"], meta["width"]), channels=meta["channels"],
                      digest=meta["digest"], history=meta.get("history", []))
