"""Named presets: the one place that says which schedule each entry point runs.

The Python API (:func:`splatpix.encode`, :meth:`splatpix.gainer.GainerTrainConfig.preset`), the CLI and the RD
harness (``splatpix eval rd``) all read these tables, so the same call gives the same file everywhere. Plain data
only: the config classes that read them validate the values, and this module imports nothing of splatpix.

Which preset each measured number used is stated beside the number (README, docs/results.md).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CODEC_PRESETS", "DEFAULT_CODEC_METHOD", "DEFAULT_CODEC_PRESET", "DEFAULT_FIT_PRESET",
           "DEFAULT_GAINER_PRESET", "DEMO_FIT", "FIT_COMMAND", "FIT_PRESETS", "GAINER_PRESETS", "RD_BPP_POINTS",
           "RD_N_POINTS", "STRUCTURE_RECIPE", "preset_gaussians"]

CODEC_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # the CPU schedule every codec number of docs/results.md used: Adam, the learning rate halved at half-way
    "cpu": {
        "fit": {"steps": 2000, "optimizer": "adam", "lr": 1e-2, "lr_decay_at": 0.5},
        "qat": {"steps": 1000, "optimizer": "adam", "lr": 1e-3},
    },
    # GaussianImage's published schedule: 50 000 fitting steps (Adan 1e-3, halved every 20 000) and 50 000 QAT steps
    "gaussianimage-paper": {
        "fit": {"steps": 50_000, "optimizer": "adan", "lr": 1e-3, "lr_decay_every": 20_000},
        "qat": {"steps": 50_000, "optimizer": "adan", "lr": 1e-3},
    },
}
"""Codec schedules: the fit (:class:`~splatpix.train.FitConfig` fields; ``lr_decay_at`` halves the rate at that
fraction of the steps, whatever their number) and the quantisation-aware fine-tuning
(:class:`~splatpix.codec.qat.QATConfig` fields). A method's own fit defaults (e.g. ``sga``'s initialisation) and the
caller's overrides apply on top (:func:`splatpix.codec.api.encode_configs`)."""

DEFAULT_CODEC_PRESET = "cpu"
DEFAULT_CODEC_METHOD = "gaussianimage"
"""The codec method of ``splatpix encode`` and :func:`splatpix.encode` when none is named."""

STRUCTURE_RECIPE: dict[str, Any] = {"init": "structure", "colour_solve_init": True, "lr_cov_scale": 10.0,
                                    "lr_means_ref_n": 1000, "relocate_every": 250, "relocate_fraction": 0.05}
"""The best measured fitting recipe (docs/results.md, "Fitting: the structure-guided fit"): structure-guided
initialisation, the closed-form colour solve, a covariance learning rate 10x the others', above 1000 Gaussians a
means' rate proportional to their spacing, and error-guided placement of 5 % of the Gaussians every 250 steps of the
first half. Method ``sga``'s fit defaults and the fit presets below."""

FIT_PRESETS: dict[str, dict[str, Any]] = {
    # the recipe with Adam 1e-2 halved at half-way (the codec's CPU schedule); N from the image's pixels
    "fast": {**STRUCTURE_RECIPE, "optimizer": "adam", "lr": 1e-2, "lr_decay_at": 0.5, "steps": 500,
             "pixels_per_gaussian": 64},
    "balanced": {**STRUCTURE_RECIPE, "optimizer": "adam", "lr": 1e-2, "lr_decay_at": 0.5, "steps": 2000,
                 "pixels_per_gaussian": 32},
    "quality": {**STRUCTURE_RECIPE, "optimizer": "adam", "lr": 1e-2, "lr_decay_at": 0.5, "steps": 6000,
                "pixels_per_gaussian": 12},
    # GaussianImage's representation setting: random init, Adan 1e-3 halved every 20 000 steps, 50 000 steps, N = 70k
    "gaussianimage-paper": {"init": "random", "optimizer": "adan", "lr": 1e-3, "lr_decay_every": 20_000,
                            "steps": 50_000, "n_gaussians": 70_000},
}
"""``splatpix fit`` presets (``--preset``): :class:`~splatpix.train.FitConfig` fields, ``lr_decay_at`` (halve the rate
at that fraction of the steps) and either ``n_gaussians`` or ``pixels_per_gaussian`` (N from the image size,
:func:`preset_gaussians`) for when ``-n`` is not given. The command line's options override any of them."""

DEFAULT_FIT_PRESET = "balanced"

FIT_COMMAND: dict[str, Any] = {"n_gaussians": 10_000, "steps": 10_000}
"""GaussianImage's plain fit of N = 10 000 for 10 000 steps (:class:`~splatpix.train.FitConfig`'s defaults otherwise):
what ``splatpix fit`` ran before the presets; the Python API's ``FitConfig()`` still is it."""


def preset_gaussians(preset: str, height: int, width: int) -> int:
    """The N of ``preset`` for an image of ``height x width`` pixels: its ``n_gaussians``, or one Gaussian per
    ``pixels_per_gaussian`` pixels, within ``[100, 300 000]``."""
    p = FIT_PRESETS[preset]
    if "n_gaussians" in p:
        return int(p["n_gaussians"])
    return int(min(300_000, max(100, round(height * width / p["pixels_per_gaussian"]))))

DEMO_FIT: dict[str, Any] = {"n_gaussians": 4000, "steps": 1500}
"""``splatpix demo``: a short fit of the bundled sample image (the ``balanced`` preset's recipe at this size)."""

GAINER_PRESETS: dict[str, dict[str, Any]] = {
    # the default: GaINeR's means, table and resolutions with K 8 (the paper's ablation: as good as 16) and the plain
    # MLP 32 -> 64 -> 64 -> 3, full-image steps, Adam 3e-2, 160 steps (a few minutes on 2 CPU cores)
    "balanced": {"model": {"n_gaussians": 500_000, "k": 8,
                           "hashgrid": {"log2_table_size": 21, "max_resolution": 8192}},
                 "steps": 160, "lr": 3e-2, "lr_cov": 1e-3, "batch": 0},
    # GaINeR's model (500k frozen random means, K 16, 16 levels x 2 features, 16..8192, table 2^21, the decoder of
    # its code) on a CPU schedule: full-image steps, Adam 3e-2 (x0.33 at 50/75/90 %), 500 steps
    "paper-cpu": {"model": {"n_gaussians": 500_000, "k": 16, "mlp_arch": "gainer",
                            "hashgrid": {"log2_table_size": 21, "max_resolution": 8192}},
                  "steps": 500, "lr": 3e-2, "lr_cov": 1e-3, "batch": 0},
    # GaINeR's configuration: the model above, 30k full-image steps, lr 1e-3
    "paper": {"model": {"n_gaussians": 500_000, "k": 16, "mlp_arch": "gainer",
                        "hashgrid": {"log2_table_size": 21, "max_resolution": 8192}},
              "steps": 30_000, "lr": 1e-3, "lr_cov": 1e-3, "batch": 0},
    # small and fast (formerly "cpu"): 20k Gaussians, K 8, table 2^16, 2000 steps of 2^13-pixel batches
    "small": {"model": {"n_gaussians": 20_000, "k": 8, "hashgrid": {"log2_table_size": 16}},
              "steps": 2000, "lr": 1e-2, "batch": 1 << 13},
}
"""GaINeR training presets (:meth:`splatpix.gainer.GainerTrainConfig.preset`): fields of ``GainerTrainConfig``, with
``model`` (and its ``hashgrid``) as nested fields of ``GainerConfig`` / ``HashGridConfig``. The measurements behind
them: docs/results.md, "GaINeR"."""

DEFAULT_GAINER_PRESET = "balanced"
"""The preset of ``splatpix fit --model gainer`` when none is named."""

RD_N_POINTS: tuple[int, ...] = (800, 1000, 3000, 5000, 7000, 9000)
"""The RD harness's default points of the Gaussian codecs: GaussianImage's numbers of Gaussians on Kodak."""
RD_BPP_POINTS: tuple[float, ...] = (0.118, 0.147, 0.432, 0.717, 1.001, 1.286)
"""The classical codecs' default target rates: GaussianImage's Kodak points (56 bits per Gaussian + 1728 bits of
side information over 768x512 pixels)."""
