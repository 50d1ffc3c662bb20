"""GaINeR's decoder: the MLP from aggregated features to colours, and the separate mask model's MLP (RGBA).

The MLPs are ``D -> hidden -> ... -> out`` with ReLU between layers and a sigmoid on the output. With a separate
mask model (``alpha_model="separate"``) the aggregated features are the colour model's ``D`` columns followed by
the mask model's ``D``: the colour MLP gives the first 3 channels and the mask MLP the alpha channel. The field
(:class:`~splatpix.gainer.field.GainerField`) owns the modules as ``mlp`` and ``mask_mlp`` (their names are the keys
of the model files' tensors).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GAINER_GEO_FEATURES", "MLP_ARCHS", "decode", "make_mlp", "seeded_mlps"]

MLP_ARCHS = ("plain", "gainer")
GAINER_GEO_FEATURES = 15


def make_mlp(in_dim: int, hidden: int, layers: int, out_dim: int, arch: str = "plain") -> nn.Sequential:
    """``"plain"``: ``layers`` hidden layers of width ``hidden`` (ReLU), then a linear output of ``out_dim``.

    ``"gainer"`` (``layers`` is not used): the decoder of GaINeR's code, a nerfacto-style field without its
    view-direction input: a base MLP ``D -> hidden (ReLU) -> 15`` whose 15 outputs (the "geometry features"; the
    density output of the 3-D field is dropped, and they get no activation) feed a head
    ``15 -> hidden (ReLU) -> hidden (ReLU) -> out_dim``. GaINeR's head also takes a 16-d spherical-harmonic code
    of the pixel's ray direction, a fixed per-pixel code that does not move with the Gaussians under edits; it is
    left out here (a 2-D field has no rays)."""
    if arch == "gainer":
        g = GAINER_GEO_FEATURES
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, g), nn.Linear(g, hidden),
                             nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


def seeded_mlps(in_dim: int, hidden: int, layers: int, colour_outputs: int, separate_mask: bool,
                seed: int, arch: str = "plain") -> tuple[nn.Sequential, nn.Sequential | None]:
    """The colour MLP and (with a separate mask model) the mask MLP, initialised from ``seed``; the global torch
    generator, which PyTorch's default initialisation draws from, is restored afterwards."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(seed))
        colour = make_mlp(in_dim, hidden, layers, colour_outputs, arch)
        mask = make_mlp(in_dim, hidden, layers, 1, arch) if separate_mask else None
    finally:
        torch.random.set_rng_state(gen_state)
    return colour, mask


def decode(mlp: nn.Module, mask_mlp: nn.Module | None, agg: Tensor, feature_dim: int) -> Tensor:
    """``(P, C)`` colours in ``[0, 1]`` from ``(P, D)`` aggregated features (``(P, 2 D)`` with a mask model)."""
    if mask_mlp is None:
        return torch.sigmoid(mlp(agg))
    return torch.sigmoid(torch.cat((mlp(agg[:, :feature_dim]), mask_mlp(agg[:, feature_dim:])), 1))
