"""Compositing an edited model (or only its selected Gaussians) over a background.

The result has the model's colour channels (RGB, or grey; an RGBA model gives RGB), in ``[0, 1]``. ``B`` is the
background (an image resampled to the output size, or a flat colour), ``s_i`` in ``[0, 1]`` the selection weight
of Gaussian ``i`` (:func:`~.apply.gaussian_selection` on the original model; all ones by default) and
``G_i(x) = exp(-1/2 d^T Sigma_i^-1 d)`` the Gaussian's weight at pixel ``x``.

GaussianImage models (summed, not alpha-blended, so the rendered colour acts as a premultiplied colour):

    O(x) = clamp(sum_i s_i c_i G_i(x), 0, 1),    A(x) = clamp(sum_i s_i G_i(x), 0, 1)     (coverage)
    out  = clamp(O + (1 - A) B, 0, 1)                                                    ("over", premultiplied)

RGBA models use their own alpha instead: ``rgb = clamp(sum_{s_i > 0} c_i G_i)``, ``alpha = clamp(sum_i s_i a_i
G_i)``, ``out = alpha rgb + (1 - alpha) B``.

GaINeR fields (the MLP decodes a straight colour ``C(x)`` from the selected Gaussians, ``s_i > 0``; at a pixel where
no Gaussian is accepted the MLP only sees the zero feature, so that colour is meaningless):

    A(x) = clamp(sum_{k accepted} s_{i_k} G_{i_k}(x), 0, 1)   (the K nearest accepted neighbours; 0 if none)
    out  = A C + (1 - A) B,        RGBA: alpha = A C_alpha,  out = alpha C_rgb + (1 - alpha) B.

Every pixel no Gaussian reaches has ``A = 0`` (or ``alpha = 0``) and shows the background.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import SplatpixError
from ..model.gaussians import Gaussians
from .apply import model_kind

__all__ = ["colour_and_alpha", "composite", "parse_colour", "prepare_background", "render_model",
           "resolve_background"]

Window = tuple[float, float, float, float]
_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
_CHUNK = 1 << 16


def parse_colour(text: str) -> tuple[float, float, float]:
    """``#rrggbb`` or ``#rgb`` -> RGB in ``[0, 1]``."""
    m = _HEX.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise SplatpixError(f"invalid colour {text!r}; use #rrggbb")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c + c for c in h)
    return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def _colour_channels(model: Any) -> int:
    c = int(model.channels)
    return 3 if c == 4 else c


def _size(model: Any, height: int | None, width: int | None) -> tuple[int, int]:
    h = model.size[0] if height is None else int(height)
    w = model.size[1] if width is None else int(width)
    if h <= 0 or w <= 0:
        raise SplatpixError(f"output size must be positive, got {w}x{h}")
    return h, w


def prepare_background(background: Tensor | str | tuple[float, ...] | list[float], channels: int, height: int,
                       width: int, device: torch.device | str = "cpu") -> Tensor:
    """``(channels, height, width)`` float32 background from an image ``(C, h, w)`` (resampled bilinearly with
    antialiasing when the size differs; grey <-> RGB converted, an alpha channel dropped), a ``#rrggbb`` colour or
    a tuple of 1 or 3 numbers in ``[0, 1]``."""
    if isinstance(background, str):
        col = torch.tensor(parse_colour(background), dtype=torch.float32)
    elif isinstance(background, tuple | list):
        try:
            col = torch.tensor([float(t) for t in background], dtype=torch.float32)
        except (TypeError, ValueError):
            raise SplatpixError(f"invalid background colour {background!r}") from None
        if col.numel() not in (1, 3) or not bool(((col >= 0) & (col <= 1)).all()):
            raise SplatpixError(f"a background colour needs 1 or 3 values in [0, 1], got {background!r}")
    elif isinstance(background, Tensor):
        img = background.detach().to(torch.float32)
        if img.dim() != 3 or img.shape[0] not in (1, 2, 3, 4):
            raise SplatpixError(f"a background image must be (C, H, W), got {tuple(img.shape)}")
        img = img[:3] if img.shape[0] >= 3 else img[:1]
        if tuple(img.shape[1:]) != (height, width):
            img = F.interpolate(img[None], size=(height, width), mode="bilinear", align_corners=False,
                                antialias=True)[0]
        img = img.clamp(0, 1)
        if img.shape[0] == 3 and channels == 1:
            img = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2])[None]
        elif img.shape[0] == 1 and channels == 3:
            img = img.expand(3, -1, -1)
        return img.contiguous().to(device)
    else:
        raise SplatpixError(f"invalid background {type(background).__name__}; use an image, a colour or #rrggbb")
    if col.numel() == 3 and channels == 1:
        col = (0.299 * col[0] + 0.587 * col[1] + 0.114 * col[2]).reshape(1)
    elif col.numel() == 1 and channels == 3:
        col = col.expand(3)
    return col.reshape(channels, 1, 1).expand(channels, height, width).contiguous().to(device)


# ------------------------------------------------------------------------------------------------ GaussianImage


def _render_gaussians(g: Gaussians, colours: Tensor, height: int, width: int, window: Window | None) -> Tensor:
    from ..render import render

    if colours.shape[0] == 0:
        return torch.zeros(colours.shape[1], height, width, dtype=torch.float32, device=g.means.device)
    sub = Gaussians(g.means, g.cov_params, colours, g.param, g.size)
    with torch.no_grad():
        return render(sub, height, width, window=window).to(torch.float32)


def _gaussians_colour_alpha(g: Gaussians, sel: Tensor, height: int, width: int, window: Window | None
                            ) -> tuple[Tensor, Tensor, bool]:
    keep = sel > 0
    sub = Gaussians(g.means[keep], g.cov_params[keep], g.colours[keep], g.param, g.size)
    s = sel[keep].to(g.colours.dtype)[:, None]
    if g.channels == 4:
        rgb = _render_gaussians(sub, sub.colours[:, :3], height, width, window).clamp(0, 1)
        alpha = _render_gaussians(sub, sub.colours[:, 3:] * s, height, width, window).clamp(0, 1)
        return rgb, alpha, False
    both = _render_gaussians(sub, torch.cat((sub.colours * s, s), 1), height, width, window)
    return both[:-1].clamp(0, 1), both[-1:].clamp(0, 1), True


# ------------------------------------------------------------------------------------------------ GaINeR


def _gainer_subset(field: Any, keep: Tensor) -> Any:
    if bool(keep.all()):
        return field
    with torch.no_grad():
        return field.with_gaussians(field.means.detach()[keep], field.cov_params.detach()[keep],
                                    field.gaussian_features().detach()[keep])


def _pixel_grid(height: int, width: int, window: Window | None, device: torch.device) -> Tensor:
    u0, v0, u1, v1 = (0.0, 0.0, 1.0, 1.0) if window is None else window
    us = (u0 + (torch.arange(width, dtype=torch.float64) + 0.5) * ((u1 - u0) / width)).to(torch.float32)
    vs = (v0 + (torch.arange(height, dtype=torch.float64) + 0.5) * ((v1 - v0) / height)).to(torch.float32)
    return torch.stack(torch.meshgrid(vs, us, indexing="ij")[::-1], -1).reshape(-1, 2).to(device)


@torch.no_grad()
def gainer_coverage(field: Any, height: int, width: int, window: Window | None = None,
                    selection: Tensor | None = None) -> Tensor:
    """``(1, H, W)`` coverage ``clamp(sum_k s_{i_k} G_{i_k}(x), 0, 1)`` over each pixel's accepted KNN neighbours
    (module docstring); 0 where none is accepted."""
    grid = _pixel_grid(height, width, window, field.means.device)
    means = field.means.detach()
    l11, l21, l22 = (t.detach() for t in field.cholesky())
    sel = torch.ones(field.n, device=means.device) if selection is None else selection.to(means.device)
    out = torch.empty(grid.shape[0], dtype=torch.float32, device=means.device)
    for s in range(0, grid.shape[0], _CHUNK):
        q = grid[s:s + _CHUNK]
        idx, _ = field.neighbours(q)
        valid = idx >= 0
        ic = idx.clamp(min=0)
        d0 = q[:, None, 0] - means[ic, 0]
        d1 = q[:, None, 1] - means[ic, 1]
        z1 = d0 / l11[ic]
        z2 = (d1 - l21[ic] * z1) / l22[ic]
        w = torch.exp(-0.5 * (z1 * z1 + z2 * z2)) * valid.to(z1.dtype) * sel[ic]
        out[s:s + _CHUNK] = w.sum(1).clamp(0, 1).to(torch.float32)
    return out.reshape(1, height, width)


def _gainer_colour_alpha(field: Any, sel: Tensor, height: int, width: int, window: Window | None
                         ) -> tuple[Tensor, Tensor, bool]:
    keep = sel > 0
    channels = _colour_channels(field)
    if not bool(keep.any()):
        z = torch.zeros(1, height, width, device=field.means.device)
        return z.expand(channels, -1, -1), z, False
    sub = _gainer_subset(field, keep)
    colour = sub.render(height, width, window=window).clamp(0, 1).to(torch.float32)
    cover = gainer_coverage(sub, height, width, window, sel[keep])
    if field.channels == 4:
        return colour[:3], colour[3:] * cover, False
    return colour, cover, False


# ------------------------------------------------------------------------------------------------ public


def colour_and_alpha(model: Gaussians | Any, height: int | None = None, width: int | None = None,
                     selection: Tensor | None = None, window: Window | None = None) -> tuple[Tensor, Tensor, bool]:
    """``(colour (C, H, W), alpha (1, H, W), premultiplied)`` of the model's (selected) Gaussians, by the formulas
    of the module docstring; ``premultiplied`` says whether ``colour`` already carries the alpha."""
    kind = model_kind(model)
    h, w = _size(model, height, width)
    sel = torch.ones(model.n, device=model.means.device) if selection is None else selection.detach()
    if sel.shape != (model.n,):
        raise SplatpixError(f"selection must have one weight per Gaussian ({model.n}), got {tuple(sel.shape)}")
    sel = sel.to(device=model.means.device, dtype=torch.float32).clamp(0, 1)
    if kind == "gaussians":
        return _gaussians_colour_alpha(model, sel, h, w, window)
    return _gainer_colour_alpha(model, sel, h, w, window)


def composite(model: Gaussians | Any, background: Tensor | str | tuple[float, ...], selection: Tensor | None = None,
              height: int | None = None, width: int | None = None, window: Window | None = None) -> Tensor:
    """``(C, H, W)`` render of ``model`` (only its ``selection``-weighted Gaussians when given) over
    ``background`` (an image, ``#rrggbb`` or a tuple of values), at ``height x width`` (default the native size)
    of the normalised ``window``; formulas in the module docstring."""
    h, w = _size(model, height, width)
    colour, alpha, premultiplied = colour_and_alpha(model, h, w, selection, window)
    bg = prepare_background(background, colour.shape[0], h, w, colour.device)
    out = colour + (1 - alpha) * bg if premultiplied else alpha * colour + (1 - alpha) * bg
    return out.clamp(0, 1)


def render_model(model: Gaussians | Any, height: int | None = None, width: int | None = None,
                 window: Window | None = None) -> Tensor:
    """The model over black (:func:`composite`): its plain render wherever it has coverage, never garbage."""
    return composite(model, (0.0,) * 3, None, height, width, window)


def resolve_background(spec: str | Tensor | tuple[float, ...] | None, original: Gaussians | Any, height: int,
                       width: int, base_dir: str | os.PathLike[str] | None = None,
                       window: Window | None = None) -> Tensor | tuple[float, ...]:
    """A background for :func:`composite` from ``"original"`` (the unedited model's render, over black), a
    ``#rrggbb`` colour, an image path (relative to ``base_dir`` when given) or an image tensor; ``None`` is black."""
    if spec is None:
        return (0.0, 0.0, 0.0)
    if isinstance(spec, Tensor | tuple | list):
        return spec
    if not isinstance(spec, str):
        raise SplatpixError(f"invalid background {spec!r}; use original, an image path or #rrggbb")
    text = spec.strip()
    if text == "original":
        return render_model(original, height, width, window)
    if text.startswith("#"):
        parse_colour(text)
        return text
    from ..io import load_image

    path = text if base_dir is None or os.path.isabs(text) else os.path.join(os.fspath(base_dir), text)
    return load_image(path)
