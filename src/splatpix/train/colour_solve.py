"""Closed-form-quality colours for fixed geometry: damped least squares solved by conjugate gradients.

The renderer sums Gaussians with their colours as weights, so for fixed means and covariances the
*unclamped* render is linear in the colours: per channel ``out_c = A x_c`` with ``A`` the ``(H W, N)`` matrix of
Gaussian weights ``A[p, i] = exp(-power_i(p))`` (zero outside the 3-sigma support). :func:`solve_colours`
minimises, for every channel independently,

    f(x) = ||A x - b||^2 + lam ||x - c0||^2,

(``b`` the target channel, ``c0`` the current colours) by conjugate gradients on the normal equations
``(A^T A + lam I) x = A^T b + lam c0`` ("CGNR"), started at ``x = c0``:

* ``A p`` is a forward render (:func:`splatpix.render.rasterize`) and ``A^T r`` is the backward of the render
  w.r.t. the colours (the numba backward kernel, or autograd on the reference backend), so one CG iteration
  costs one forward and one backward render and no ``A`` is ever formed;
* ``lam = damping`` or, by default, ``1e-4`` times an estimate of the mean diagonal of ``A^T A``: the diagonal is
  ``sum_p A[p, i]^2 ~ pi sqrt(det Sigma_i)`` (the integral of ``exp(-d^T Sigma^-1 d)``, ignoring the image border
  and the support cut-off). This small ridge keeps the system positive definite when Gaussians overlap heavily or
  leave the image (a Gaussian that touches no pixel keeps its colour ``c0``) and barely biases the solution;
* it runs at most ``iters`` iterations (default 20) and stops early once the relative residual of the normal
  equations ``||r_k|| / ||r_0||`` of every channel is below ``tol``;
* the output clamp to ``[0, 1]`` used by training is ignored: the solve minimises the unclamped error. Because
  the targets lie in ``[0, 1]`` clamping can only lower each pixel's error, so the clamped MSE after the solve is
  at most the unclamped MSE after it, which is at most the unclamped MSE before it (but the clamped MSE before the
  solve may have been lower when the old render was far outside ``[0, 1]``).

CG decreases ``f`` monotonically in exact arithmetic, hence ``||A x - b||^2 <= f(x) <= f(c0) = ||A c0 - b||^2``:
the unclamped MSE never increases. In float32 the iteration tracks the image residual ``A x - b`` as it goes
(``A p`` is computed anyway); the returned iterate is the one with the smallest tracked ``f``, and a final render
checks it against ``c0``, so the guarantee also holds numerically (if rounding made it worse, ``c0`` is returned).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import SplatpixError
from ..model.gaussians import Gaussians, conic_from_covariance, project
from ..render import BACKENDS, rasterize

__all__ = ["LinearRender", "solve_colours"]


class LinearRender:
    """The render as a linear map of the colours for fixed geometry: :meth:`forward` ``x -> A x`` and
    :meth:`adjoint` ``img -> A^T img`` (``x``: ``(N, C)``, images ``(C, H, W)``).

    The projection and conics are computed once. ``adjoint`` is the backward of the rasteriser w.r.t. its colour
    input; :meth:`normal` computes ``A x`` and ``A^T A x`` with one forward and one backward.
    """

    def __init__(self, g: Gaussians, height: int | None = None, width: int | None = None, backend: str = "auto"):
        if backend not in BACKENDS:
            raise SplatpixError(f"unknown render backend {backend!r}; use one of {', '.join(BACKENDS)}")
        h0, w0 = g.size
        self.height = h0 if height is None else int(height)
        self.width = w0 if width is None else int(width)
        self.backend = backend
        with torch.no_grad():
            means_px, cov_px = project(g.detach(), self.height, self.width)
            conic, valid = conic_from_covariance(cov_px)
        self.means_px = means_px.contiguous()
        self.conic = conic.contiguous()
        self.valid = valid
        self.cov_px = cov_px
        self.n = g.n
        self.dtype = g.colours.dtype
        self.device = g.colours.device

    def forward(self, x: Tensor) -> Tensor:
        """``A x`` -> ``(C, H, W)`` (the unclamped render with colours ``x``)."""
        with torch.no_grad():
            return rasterize(self.means_px, self.conic, x.to(self.dtype).contiguous(), self.height, self.width,
                             backend=self.backend)

    def _forward_backward(self, x: Tensor, grad_out: Tensor | None) -> tuple[Tensor, Tensor]:
        xv = x.detach().to(self.dtype).contiguous().requires_grad_(True)
        with torch.enable_grad():
            out = rasterize(self.means_px, self.conic, xv, self.height, self.width, backend=self.backend)
            go = out.detach() if grad_out is None else grad_out.to(out.dtype)
            (gx,) = torch.autograd.grad(out, xv, grad_outputs=go.contiguous())
        return out.detach(), gx

    def adjoint(self, img: Tensor) -> Tensor:
        """``A^T img`` -> ``(N, C)``: per Gaussian, the sum over pixels of its weight times ``img``."""
        c = img.shape[0]
        return self._forward_backward(torch.zeros(self.n, c, dtype=self.dtype, device=self.device), img)[1]

    def normal(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(A x, A^T A x)`` with one forward and one backward render."""
        return self._forward_backward(x, None)

    def mean_diagonal(self) -> float:
        """Estimate of the mean of ``diag(A^T A)``: ``pi sqrt(det Sigma_i)`` per visible Gaussian (pixel units)."""
        c = self.cov_px.double()
        det = (c[:, 0] * c[:, 2] - c[:, 1] * c[:, 1]).clamp_min(0)
        d = math.pi * torch.sqrt(det)
        d = d[self.valid & torch.isfinite(d)]
        return float(d.mean()) if d.numel() else 1.0


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-channel dot products of ``(N, C)`` or ``(C, H, W)`` float64 arrays -> ``(C,)``."""
    if a.ndim == 2:
        return np.einsum("nc,nc->c", a, b)
    return np.einsum("cp,cp->c", a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def solve_colours(
    g: Gaussians,
    image: Tensor,
    iters: int = 20,
    damping: float | None = None,
    *,
    rel_damping: float = 1e-4,
    tol: float = 1e-3,
    backend: str = "auto",
) -> Tensor:
    """Colours ``(N, C)`` minimising ``||A x - image||^2 + lam ||x - g.colours||^2`` for ``g``'s fixed geometry.

    ``image``: ``(C, H, W)`` at the model's native size (``C`` = ``g.channels``). ``lam = damping`` or, when
    ``None``, ``rel_damping`` times the mean-diagonal estimate of ``A^T A`` (see the module docs). At most
    ``iters`` CG iterations, early stop when every channel's relative normal-equation residual is below ``tol``.
    The result (detached, ``g.colours``' dtype and device) never has a larger unclamped squared error than
    ``g.colours``.

    The CG vectors live in float64 numpy arrays (only the two renders per iteration are torch calls): on CPU,
    torch's OpenMP pool pays a large wake-up cost for every small op that follows a numba parallel kernel.
    """
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 0:
        raise SplatpixError(f"colour solve iterations must be an integer >= 0, got {iters!r}")
    if damping is not None and not (math.isfinite(damping) and damping >= 0):
        raise SplatpixError(f"colour solve damping must be a finite number >= 0, got {damping!r}")
    h0, w0 = g.size
    if image.ndim != 3 or tuple(image.shape) != (g.channels, h0, w0):
        raise SplatpixError(f"image must have shape {(g.channels, h0, w0)} for this model, got {tuple(image.shape)}")
    c0_t = g.colours.detach()
    if g.n == 0 or iters == 0:
        return c0_t.clone()
    op = LinearRender(g, backend=backend)
    dev, dt = c0_t.device, c0_t.dtype

    def t(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a).to(device=dev, dtype=dt)

    b = _np(image)
    c0 = _np(c0_t)
    lam = rel_damping * op.mean_diagonal() if damping is None else float(damping)

    x = c0.copy()
    e = _np(op.forward(t(x))) - b  # image residual A x - b
    err0 = _dot(e, e)  # ||A c0 - b||^2 per channel
    # normal-equation residual r = A^T b + lam c0 - (A^T A + lam I) x, which is -A^T e at x = c0
    r = -_np(op.adjoint(t(e)))
    p = r.copy()
    rr = _dot(r, r)
    rr0 = rr.copy()
    f = err0.copy()  # f(c0) = ||A c0 - b||^2
    best_x, best_f = x.copy(), err0.copy()
    for _ in range(iters):
        if bool((rr <= (tol * tol) * rr0).all()) or not np.isfinite(rr).all():
            break
        ap_t, atap_t = op.normal(t(p))
        ap, q = _np(ap_t), _np(atap_t) + lam * p
        pq = _dot(p, q)
        alpha = np.where(pq > 0, rr / np.maximum(pq, 1e-300), 0.0)
        # f(x + a p) - f(x) = 2 a (<A p, e> + lam <p, x - c0>) + a^2 (||A p||^2 + lam ||p||^2)
        f = f + alpha * (2 * (_dot(ap, e) + lam * _dot(p, x - c0))) + alpha * alpha * pq
        x = x + alpha[None, :] * p
        e = e + alpha[:, None, None] * ap
        r = r - alpha[None, :] * q
        rr_new = _dot(r, r)
        beta = np.where(rr > 0, rr_new / np.maximum(rr, 1e-300), 0.0)
        p = r + beta[None, :] * p
        rr = rr_new
        improved = f < best_f
        best_x[:, improved] = x[:, improved]
        best_f = np.where(improved, f, best_f)
    # final check with a true render: keep c0 in any channel where rounding made the error larger
    e_best = _np(op.forward(t(best_x))) - b
    err = _dot(e_best, e_best)
    worse = ~(err <= err0) | ~np.isfinite(best_x).all(0)
    best_x[:, worse] = c0[:, worse]
    return t(best_x)
