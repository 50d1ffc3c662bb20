"""Applying deformations to a model: move each Gaussian's mean by the map and push its covariance forward.

Both model kinds are edited in the same frame, native pixels (:mod:`splatpix.edit.deform`). For Gaussian ``i``
with pixel mean ``mu`` and pixel covariance ``Sigma`` the edit map ``Phi`` gives

    mu' = Phi(mu),    Sigma' = J Sigma J^T,    J = d Phi / d x at mu   (autograd, :func:`~.deform.jacobian`),

the first-order (affine) approximation of the deformed density ``G(Phi^-1(y))`` around ``mu'``. Unit conversions:

* :class:`~splatpix.model.gaussians.Gaussians`: ``mu = (u W, v H)``, ``Sigma = covariance_native()`` (already
  native pixels); back with ``u' = x' / W``, ``v' = y' / H`` and
  :func:`~splatpix.model.gaussians.params_from_covariance` in the model's own parameterisation. Colours are
  unchanged (the renderer sums ``colour exp(-power)``, so a transformed
  covariance keeps both the brightness and the coverage of each Gaussian).
* :class:`~splatpix.gainer.field.GainerField`: ``Sigma_px = S Sigma_n S`` with ``S = diag(W, H)`` from the
  normalised covariance; back with ``Sigma_n' = S^-1 Sigma_px' S^-1``, its Cholesky factor ``[[l11, 0], [l21,
  l22]]`` and ``cov_params = (log l11, l21, log l22)``. Features stay attached to the Gaussian index: an unbaked
  field is baked on a copy first (features from the hash grid at the *original* means), never re-read at the new
  positions. In ``"relative"`` radius mode the KNN radii follow the new covariances.

With ``transform_covariance=False`` only the means move (GaINeR's public editing code). Gaussian order is kept,
inputs are never modified.

Edit map
--------
``deformations`` is one :class:`~.deform.Deformation`, an :class:`EditStep` ``(deformation, region)``, or a
sequence of them, applied in order. A step with a region is blended, ``x + w(x) (phi(x) - x)``, with the weights at
the step's *input* positions (each step edits the current image). The optional ``region`` argument blends the whole
composition, ``x + w(x) (Phi(x) - x)`` with ``w`` at the *original* positions: it selects an object, which then
moves as one. Predicate regions weigh Gaussians by identity (constant weights, evaluated on the original model).
The Jacobian of a blended map includes the ``(phi - x) grad(w)^T`` term, by autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import SplatpixError
from ..model.gaussians import Gaussians, params_from_covariance
from .deform import Deformation, map_and_jacobian
from .region import AllRegion, PredicateRegion, Region

__all__ = ["EditStep", "apply_edit", "edit_points", "gaussian_geometry", "gaussian_selection", "model_kind",
           "rebuild_model"]

CHUNK = 1 << 13
_MIN_REL_DET = 1e-12


@dataclass
class EditStep:
    """One step of an edit: ``deformation`` blended with ``region`` (``None``: applied everywhere)."""

    deformation: Deformation
    region: Region | None = None


Edits = Deformation | EditStep | Sequence[Deformation | EditStep]


def _steps(deformations: Edits) -> list[EditStep]:
    items = [deformations] if isinstance(deformations, Deformation | EditStep) else list(deformations)
    out = []
    for i, d in enumerate(items):
        if isinstance(d, Deformation):
            out.append(EditStep(d))
        elif isinstance(d, EditStep) and isinstance(d.deformation, Deformation):
            if d.region is not None and not isinstance(d.region, Region):
                raise SplatpixError(f"edit step {i}: region must be a Region, got {type(d.region).__name__}")
            out.append(d)
        else:
            raise SplatpixError(f"edit step {i} is a {type(d).__name__}, not a Deformation or an EditStep")
    return out


def model_kind(model: Any) -> str:
    """``"gaussians"`` or ``"gainer"``; :class:`SplatpixError` for anything else."""
    if isinstance(model, Gaussians):
        return "gaussians"
    from ..gainer.field import GainerField

    if isinstance(model, GainerField):
        return "gainer"
    raise SplatpixError(f"cannot edit a {type(model).__name__}; need a Gaussians model or a GainerField")


def _cov3_to_mat(c: Tensor) -> Tensor:
    return torch.stack((torch.stack((c[:, 0], c[:, 1]), -1), torch.stack((c[:, 1], c[:, 2]), -1)), -2)


def gaussian_geometry(model: Gaussians | Any) -> tuple[Tensor, Tensor, Tensor | None]:
    """Native-pixel means ``(N, 2)`` and covariances ``(N, 2, 2)`` (float64, detached) and the colours (``None``
    for a GaINeR field) of either model kind."""
    kind = model_kind(model)
    h, w = model.size
    with torch.no_grad():
        scale = torch.tensor((float(w), float(h)), dtype=torch.float64, device=model.means.device)
        means = model.means.detach().to(torch.float64) * scale
        if kind == "gaussians":
            return means, _cov3_to_mat(model.covariance_native().detach().to(torch.float64)), model.colours.detach()
        cov_n = model.covariance().detach().to(torch.float64)
        return means, cov_n * scale[None, :, None] * scale[None, None, :], None


def _cov3(cov: Tensor) -> Tensor:
    return torch.stack((cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]), 1)


def gaussian_selection(model: Gaussians | Any, region: Region | None) -> Tensor:
    """``(N,)`` float32 weight of each Gaussian in ``region`` (at its current mean; ``None``: all ones). Evaluate
    it on the *original* model: edits keep the Gaussian order, so it applies to the edited model too."""
    means, cov, colours = gaussian_geometry(model)
    if region is None or isinstance(region, AllRegion):
        return torch.ones(means.shape[0], dtype=torch.float32, device=means.device)
    with torch.no_grad():
        return region.gaussian_weights(means, _cov3(cov), colours, model.size).to(torch.float32).clamp(0, 1)


class _EditMap:
    """The pointwise edit map on chunks of the Gaussians (constant predicate weights are sliced per chunk)."""

    def __init__(self, steps: list[EditStep], region: Region | None, size: tuple[int, int], means: Tensor,
                 cov: Tensor, colours: Tensor | None) -> None:
        self.steps, self.region, self.size = steps, region, size

        def const(r: Region | None) -> Tensor | None:
            if isinstance(r, PredicateRegion):
                return r.gaussian_weights(means, _cov3(cov), colours, size).to(means.dtype)
            return None

        self.step_const = [const(s.region) for s in steps]
        self.region_const = const(region)

    @staticmethod
    def _blend(x: Tensor, y: Tensor, region: Region | None, c: Tensor | None, sl: slice, size) -> Tensor:
        if region is None or isinstance(region, AllRegion):
            return y
        w = c[sl] if c is not None else region.weights(x, size).to(x.dtype)
        return x + w[:, None] * (y - x)

    def __call__(self, x0: Tensor, sl: slice) -> Tensor:
        x = x0
        for step, c in zip(self.steps, self.step_const, strict=True):
            x = self._blend(x, step.deformation(x), step.region, c, sl, self.size)
        return self._blend(x0, x, self.region, self.region_const, sl, self.size)


def edit_points(points: Tensor, deformations: Edits, size: tuple[int, int], region: Region | None = None,
                with_jacobian: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """The edit map of :func:`apply_edit` on ``(P, 2)`` native-pixel points (float64): ``Phi(points)``, and its
    ``(P, 2, 2)`` Jacobians with ``with_jacobian``. Predicate regions are not allowed here (no Gaussians)."""
    steps = _steps(deformations)
    for r in [region, *(s.region for s in steps)]:
        if isinstance(r, PredicateRegion):
            raise SplatpixError("a predicate region selects Gaussians; use apply_edit on a model")
    p = points.detach().to(torch.float64)
    fn = _EditMap(steps, region, (int(size[0]), int(size[1])), p, p.new_zeros(p.shape[0], 2, 2), None)
    ys, js = [], []
    for s in range(0, p.shape[0], CHUNK):
        sl = slice(s, s + CHUNK)
        if with_jacobian:
            y, j = map_and_jacobian(lambda x, sl=sl: fn(x, sl), p[sl])
            js.append(j)
        else:
            with torch.no_grad():
                y = fn(p[sl], sl)
        ys.append(y)
    y = torch.cat(ys) if ys else p.clone()
    if with_jacobian:
        return y, (torch.cat(js) if js else p.new_zeros(0, 2, 2))
    return y


def _valid(cov: Tensor) -> Tensor:
    sxx, sxy, syy = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    det = sxx * syy - sxy * sxy
    tr = sxx + syy
    return torch.isfinite(det) & (sxx > 0) & (syy > 0) & (det > _MIN_REL_DET * tr * tr)


def apply_edit(model: Gaussians | Any, deformations: Edits, region: Region | None = None,
               transform_covariance: bool = True) -> Gaussians | Any:
    """A new model of the same kind with the edit applied (module docstring); the input is not modified.

    ``deformations``: a :class:`~.deform.Deformation`, an :class:`EditStep` or a sequence of them (in order);
    ``region``: blends the whole composition (weights at the original positions); ``transform_covariance``:
    push the covariances forward (``J Sigma J^T``) or keep them. Raises :class:`SplatpixError` when the edit makes
    Gaussians degenerate (non-finite, or a collapsed covariance where the map is singular)."""
    kind = model_kind(model)
    steps = _steps(deformations)
    if region is not None and not isinstance(region, Region):
        raise SplatpixError(f"region must be a Region, got {type(region).__name__}")
    size = model.size
    means, cov, colours = gaussian_geometry(model)
    fn = _EditMap(steps, region, size, means, cov, colours)
    new_means, new_cov = [], []
    for s in range(0, means.shape[0], CHUNK):
        sl = slice(s, s + CHUNK)
        if transform_covariance:
            y, j = map_and_jacobian(lambda x, sl=sl: fn(x, sl), means[sl])
            new_cov.append(j @ cov[sl] @ j.transpose(1, 2))
        else:
            with torch.no_grad():
                y = fn(means[sl], sl)
        new_means.append(y)
    m2 = torch.cat(new_means) if new_means else means.clone()
    c2 = (torch.cat(new_cov) if new_cov else cov.clone()) if transform_covariance else cov
    bad = ~torch.isfinite(m2).all(1)
    if transform_covariance:
        c2 = 0.5 * (c2 + c2.transpose(1, 2))
        bad |= _valid(cov) & ~_valid(c2)
    if bool(bad.any()):
        raise SplatpixError(f"the edit made {int(bad.sum())} of {means.shape[0]} Gaussians degenerate (non-finite "
                            "position or collapsed covariance): the deformation is singular or undefined there")
    h, w = size
    scale = m2.new_tensor((float(w), float(h)))
    uv = m2 / scale
    if kind == "gaussians":
        return _rebuild_gaussians(model, uv, c2 if transform_covariance else None)
    return _rebuild_gainer(model, uv, c2 / scale[None, :, None] / scale[None, None, :] if transform_covariance
                           else None)


def rebuild_model(model: Gaussians | Any, means_px: Tensor, cov_px: Tensor | None,
                  index: Tensor | None = None) -> Gaussians | Any:
    """A new model of ``model``'s kind with native-pixel means ``(N, 2)`` and covariances ``(N, 2, 2)`` (``None``:
    keep the covariances), everything else (colours, features, decoders) copied: the inverse of
    :func:`gaussian_geometry`. With ``index`` (``(M,)`` Gaussian indices) ``means_px``/``cov_px`` hold only those
    ``M`` Gaussians and the others keep their exact parameters. Gaussian order is kept; the input is not modified."""
    kind = model_kind(model)
    h, w = model.size
    m = means_px.detach().to(torch.float64)
    scale = m.new_tensor((float(w), float(h)))
    c = None if cov_px is None else cov_px.detach().to(torch.float64)
    if index is None:
        if kind == "gaussians":
            return _rebuild_gaussians(model, m / scale, c)
        params = model.cov_params.detach().clone() if c is None else _gainer_params(c / scale[None, :, None]
                                                                                    / scale[None, None, :])
        return model.with_gaussians(m / scale, params)  # baked features, both decoders (a separate mask's too)
    idx = index.to(device=model.means.device, dtype=torch.long)
    means = model.means.detach().clone()
    means[idx] = (m / scale).to(means)
    params = model.cov_params.detach().clone()
    if c is not None:
        if kind == "gaussians":
            params[idx] = params_from_covariance(_cov3(c), model.param).to(params)
        else:
            params[idx] = _gainer_params(c / scale[None, :, None] / scale[None, None, :]).to(params)
    if kind == "gaussians":
        return Gaussians(means, params, model.colours.detach().clone(), model.param, model.size, dict(model.meta))
    return model.with_gaussians(means, params)


def _rebuild_gaussians(g: Gaussians, uv: Tensor, cov_px: Tensor | None) -> Gaussians:
    dt = g.means.dtype
    if cov_px is None:
        params = g.cov_params.detach().clone()
    else:
        params = params_from_covariance(_cov3(cov_px), g.param).to(g.cov_params.dtype)
    return Gaussians(uv.to(dt), params, g.colours.detach().clone(), g.param, g.size, dict(g.meta))


def _gainer_params(cov_n: Tensor) -> Tensor:
    """``(log l11, l21, log l22)`` of the Cholesky factor of ``(N, 2, 2)`` normalised covariances."""
    l11 = torch.sqrt(cov_n[:, 0, 0])
    l21 = cov_n[:, 0, 1] / l11
    l22 = torch.sqrt((cov_n[:, 1, 1] - l21 * l21).clamp_min(0))
    out = torch.stack((torch.log(l11), l21, torch.log(l22)), 1)
    if not bool(torch.isfinite(out).all()):
        raise SplatpixError("the edit made some GaINeR covariances degenerate (their Cholesky factor is singular)")
    return out


def _rebuild_gainer(model: Any, uv: Tensor, cov_n: Tensor | None) -> Any:
    with torch.no_grad():
        # features: baked, or the grid at the *original* means
        params = model.cov_params.detach().clone() if cov_n is None else _gainer_params(cov_n)
        return model.with_gaussians(uv, params)

