"""Quantisers of the GaussianImage codec, with straight-through estimators (STE) for quantisation-aware training.

GaussianImage (ECCV 2024) quantises the three attribute groups of its Cholesky model differently, and so do we:

* **Positions: fp16.** GaussianImage stores fp16 of the *pre-tanh* mean. We store fp16 of the *normalised*
  coordinate ``u = x / W`` (resp. ``v = y / H``) in ``[0, 1]``, which is what the model holds and what any
  output resolution needs. fp16 has 10 mantissa bits, so the spacing of representable values is at most
  ``2^-11`` (in ``[0.5, 1)``; finer towards 0): a step below 0.4 px at 768 px, a rounding error of at most
  ``2^-12`` (< 0.2 px at 768 px). :func:`quantize_positions` gives the 16-bit symbols (the fp16 bit pattern,
  ``np.float16 .view(np.uint16)``) and the dequantised tensor; :func:`fp16_ste` is the training form.
* **Covariance: learned uniform quantiser.** :class:`LearnedUniformQuantizer` maps each channel of the
  Cholesky parameters ``(l11, l21, l22)`` to ``bits``-bit symbols ``q = clamp(round((x - offset) / scale), 0,
  2^bits - 1)`` with a learned per-channel ``scale`` and ``offset``, initialised from the data's min/max
  (every value then lies inside the range, error <= scale / 2). Gradients are LSQ-style (Esser et al. 2020;
  LSQ+ for the offset): rounding is straight-through, so ``x`` gets gradient 1 inside the range and 0 where
  clamped; ``scale`` gets ``round(v) - v`` inside and the clamp level outside; ``offset`` gets 0 inside and 1
  outside. The scale is parameterised by its logarithm (always positive; Adam/Adan steps are then relative
  changes of about ``lr``, which keeps the step size stable); LSQ's gradient scaling is not used since
  Adam/Adan normalise each parameter's gradient anyway.
* **Colours: residual vector quantisation.** :class:`ResidualVQ` has ``stages`` codebooks of
  ``codebook_size`` codewords; stage ``s`` quantises the residual left by the stages before it (greedy nearest
  codeword). Codebooks are initialised by seeded k-means (k-means++ seeding, a few Lloyd iterations) on the
  colours, stage by stage on the residuals.

  *Codebook training: by gradient, not EMA.* The forward output is ``x_hat = q(x) + (x - sg(x))`` where
  ``q(x) = sum_s e_s[i_s]`` is a differentiable lookup: its value is exactly the dequantised colour, the
  input ``x`` gets the straight-through gradient, and the codewords get the render loss's gradient through
  the lookup. With only ``stages x codebook_size x C`` numbers (48 for RGB), the codewords are exactly what
  the decoder uses, so training them on the render loss itself optimises the real objective; an EMA update
  would instead move them to the centroids of the (straight-through-trained) continuous colours, a proxy of
  it (and EMA would need its own decay schedule). :meth:`ResidualVQ.loss` provides the VQ-VAE terms
  (van den Oord et al. 2017), both means over elements: a commitment term ``commitment * |x - sg(q(x))|^2``
  that keeps the continuous colours near their quantised values, so that their straight-through updates turn
  into assignment changes, and a codebook term ``codebook_weight * sum_s |sg(r_s) - e_s[i_s]|^2`` pulling each
  codeword to the mean of the residuals it serves. Defaults: ``commitment = 1``, ``codebook_weight = 0``. The
  codebook term is redundant here (the codewords already get the render loss's gradient, and it pulls them
  away from that optimum, towards the continuous colours); VQ-VAE's ``(0.25, 1)`` trained worse than ``(1, 0)``
  on small synthetic images, with a non-monotone PSNR curve.

The forward passes of all three are *exact*: the value a fake-quantised forward returns is bit-identical to
decoding the symbols that ``encode`` gives for the same input (the STE is written ``hard + (soft - sg(soft))``
which adds an exact zero). :class:`~.quantized.QuantizedGaussians` (numpy, :mod:`.quantized`, with the decoders'
compiled forms of the arithmetic) holds the symbols and side information the file stores; its
:meth:`~.quantized.QuantizedGaussians.dequantize` uses the same arithmetic, so the decoder reproduces what the
encoder evaluated.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import SplatpixError
from .quantized import (  # noqa: F401  (the decoders' numpy forms, re-exported)
    QuantizedGaussians,
    dequant_uniform_rows,
    dequantize_positions_np,
    rvq_lookup,
)

__all__ = [
    "LearnedUniformQuantizer",
    "QuantizedGaussians",
    "ResidualVQ",
    "dequantize_positions",
    "exact_ste",
    "fp16_ste",
    "kmeans",
    "quantize_positions",
    "round_ste",
]

_MIN_SCALE = 1e-6  # smallest initial quantiser step (a channel whose values are all equal)
_NEAREST_BLOCK = 1 << 22  # elements of the (rows, K, D) difference tensor per block in nearest-codeword search


# ------------------------------------------------------------------------------------------ helpers


def round_ste(x: Tensor) -> Tensor:
    """``round(x)`` in the forward pass, identity gradient (straight-through)."""
    return x + (torch.round(x) - x).detach()


def exact_ste(hard: Tensor, soft: Tensor) -> Tensor:
    """Value of ``hard`` (bit-exact), gradient of ``soft``."""
    return hard.detach() + (soft - soft.detach())


# --------------------------------------------------------------------------------------------- positions


def fp16_ste(x: Tensor) -> Tensor:
    """fp16 rounding of ``x`` (returned in ``x``'s dtype), identity gradient."""
    return exact_ste(x.detach().to(torch.float16).to(x.dtype), x)


def quantize_positions(means: Tensor) -> tuple[np.ndarray, Tensor]:
    """fp16 quantisation of normalised means.

    Returns ``(symbols, dequantised)``: ``symbols`` is a ``uint16`` array of the same shape holding the fp16
    bit patterns, ``dequantised`` the float32 tensor they decode to (no gradient; use :func:`fp16_ste` to
    train through the quantiser). Raises :class:`SplatpixError` for non-finite means or values that overflow
    fp16.
    """
    m = means.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(m).all()):
        raise SplatpixError("cannot quantise non-finite Gaussian positions")
    with np.errstate(over="ignore"):
        half = m.numpy().astype(np.float16)
    if not np.isfinite(half).all():
        raise SplatpixError("Gaussian positions overflow fp16 (|value| > 65504)")
    symbols = half.view(np.uint16).copy()
    return symbols, dequantize_positions(symbols).to(means.device)


def dequantize_positions(symbols: np.ndarray) -> Tensor:
    """Float32 tensor of the fp16 values whose bit patterns are ``symbols`` (``uint16``)."""
    return torch.from_numpy(dequantize_positions_np(symbols))


# ----------------------------------------------------------------------------------- uniform quantiser


def _dequant_uniform(q: Tensor, scale: Tensor, offset: Tensor) -> Tensor:
    """``q * scale + offset`` per channel; the single definition used by training and decoding."""
    return q * scale + offset


class LearnedUniformQuantizer(nn.Module):
    """Per-channel uniform quantiser with learned scale and offset (LSQ/LSQ+-style gradients).

    ``q = clamp(round((x - offset) / scale), 0, 2^bits - 1)``, ``x_hat = q * scale + offset``. Call
    :meth:`init_from` before use (sets ``offset = min``, ``scale = (max - min) / (2^bits - 1)`` per channel).
    """

    def __init__(self, channels: int = 3, bits: int = 6) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise SplatpixError(f"channels must be an integer >= 1, got {channels!r}")
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise SplatpixError(f"bits must be an integer in [1, 16], got {bits!r}")
        self.channels = channels
        self.bits = bits
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.offset = nn.Parameter(torch.zeros(channels))

    @property
    def levels(self) -> int:
        """Number of symbols, ``2^bits``."""
        return 1 << self.bits

    @property
    def scale(self) -> Tensor:
        """Per-channel step size ``exp(log_scale)`` (differentiable)."""
        return torch.exp(self.log_scale)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise SplatpixError(f"expected values of shape (N, {self.channels}), got {tuple(x.shape)}")

    @torch.no_grad()
    def init_from(self, x: Tensor) -> LearnedUniformQuantizer:
        """Set offset and scale from the per-channel min and max of ``x`` (``(N, channels)``)."""
        self._check(x)
        if x.shape[0] == 0:
            raise SplatpixError("cannot initialise a quantiser from no values")
        x = x.detach().to(self.offset.dtype)
        if not bool(torch.isfinite(x).all()):
            raise SplatpixError("cannot initialise a quantiser from non-finite values")
        lo = x.min(dim=0).values
        hi = x.max(dim=0).values
        scale = ((hi - lo) / (self.levels - 1)).clamp_min(_MIN_SCALE)
        self.log_scale.copy_(torch.log(scale))
        self.offset.copy_(lo)
        return self

    def _symbols(self, x: Tensor, scale: Tensor, offset: Tensor) -> Tensor:
        return torch.clamp(torch.round((x - offset) / scale), 0, self.levels - 1)

    def forward(self, x: Tensor) -> Tensor:
        """Fake quantisation: the exact dequantised value, with LSQ-style gradients to ``x``, scale, offset."""
        self._check(x)
        scale = self.scale
        offset = self.offset
        soft = _dequant_uniform(torch.clamp(round_ste((x - offset) / scale), 0, self.levels - 1), scale, offset)
        with torch.no_grad():
            s, o = scale.detach(), offset.detach()
            hard = _dequant_uniform(self._symbols(x.detach(), s, o), s, o)
        return exact_ste(hard, soft)

    @torch.no_grad()
    def encode(self, x: Tensor) -> np.ndarray:
        """``(N, channels)`` int64 symbols in ``[0, 2^bits)``."""
        self._check(x)
        scale, offset = self.scale.detach(), self.offset.detach()
        return self._symbols(x.detach().to(scale.dtype), scale, offset).cpu().numpy().astype(np.int64)

    @torch.no_grad()
    def decode(self, q: np.ndarray | Tensor) -> Tensor:
        """Dequantised ``(N, channels)`` float tensor of symbols ``q``."""
        scale, offset = self.scale.detach(), self.offset.detach()
        qt = torch.as_tensor(np.asarray(q) if not isinstance(q, Tensor) else q).to(scale)
        return _dequant_uniform(qt, scale, offset)

    def params(self) -> dict[str, list[float]]:
        """Side information to store: ``{"scale": [...], "offset": [...]}``, one float32 value per channel."""
        f32 = np.float32
        return {
            "scale": [float(f32(v)) for v in self.scale.detach().cpu().tolist()],
            "offset": [float(f32(v)) for v in self.offset.detach().cpu().tolist()],
        }


# -------------------------------------------------------------------------------------- vector quantiser


def _nearest(x: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest codeword (squared Euclidean; ties -> lowest index) for each row of ``x``."""
    rows = max(1, _NEAREST_BLOCK // max(1, codebook.shape[0] * codebook.shape[1]))  # bounded memory
    out = [torch.argmin(((x[i:i + rows, None, :] - codebook[None, :, :]) ** 2).sum(dim=2), dim=1)
           for i in range(0, x.shape[0], rows)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


@torch.no_grad()
def kmeans(x: Tensor, k: int, iters: int = 10, seed: int = 0) -> Tensor:
    """Seeded k-means: k-means++ seeding, then up to ``iters`` Lloyd iterations (stops early when stable).

    Returns ``(k, D)`` centroids (float32 rows of ``x``'s dtype). A cluster that empties keeps its previous
    centroid. With fewer distinct points than ``k`` some centroids coincide (harmless for quantisation).
    Deterministic for a given input and seed.
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise SplatpixError(f"k-means needs a non-empty (N, D) tensor, got {tuple(x.shape)}")
    x = x.detach()
    n = x.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    first = int(torch.randint(n, (1,), generator=gen))
    centres = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(dim=1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total > 0:
            idx = int(torch.multinomial((d2 / total).cpu().double(), 1, generator=gen))
        else:  # all points coincide with a centre already
            idx = int(torch.randint(n, (1,), generator=gen))
        centres.append(x[idx])
        d2 = torch.minimum(d2, ((x - x[idx]) ** 2).sum(dim=1))
    c = torch.stack(centres).clone()
    assign = _nearest(x, c)
    for _ in range(iters):
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        nonempty = counts > 0
        c[nonempty] = sums[nonempty] / counts[nonempty, None]
        new = _nearest(x, c)
        if torch.equal(new, assign):
            break
        assign = new
    return c


def _rvq_lookup(codebooks: Tensor, idx: Tensor) -> Tensor:
    """``sum_s codebooks[s, idx[:, s]]``, summed in stage order; the single definition used by training and
    decoding (differentiable w.r.t. ``codebooks``)."""
    out = codebooks[0][idx[:, 0]]
    for s in range(1, codebooks.shape[0]):
        out = out + codebooks[s][idx[:, s]]
    return out


class ResidualVQ(nn.Module):
    """Residual vector quantiser: ``stages`` codebooks of ``codebook_size`` codewords of dimension ``dim``.

    Initialise with :meth:`init_from` (seeded k-means per stage). ``forward`` returns the exact dequantised
    value with straight-through gradient to the input and true gradient to the codebooks; add :meth:`loss`
    to the training loss (see the module docs for the terms and weights).
    """

    def __init__(
        self,
        dim: int = 3,
        stages: int = 2,
        codebook_size: int = 8,
        *,
        kmeans_iters: int = 10,
        commitment: float = 1.0,
        codebook_weight: float = 0.0,
    ) -> None:
        super().__init__()
        for name, v, lo in (("dim", dim, 1), ("stages", stages, 1), ("codebook_size", codebook_size, 1),
                            ("kmeans_iters", kmeans_iters, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise SplatpixError(f"{name} must be an integer >= {lo}, got {v!r}")
        for name, w in (("commitment", commitment), ("codebook_weight", codebook_weight)):
            if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
                raise SplatpixError(f"{name} must be a finite number >= 0, got {w!r}")
        self.dim = dim
        self.stages = stages
        self.codebook_size = codebook_size
        self.kmeans_iters = kmeans_iters
        self.commitment = float(commitment)
        self.codebook_weight = float(codebook_weight)
        self.codebooks = nn.Parameter(torch.zeros(stages, codebook_size, dim))

    def _check(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise SplatpixError(f"expected vectors of shape (N, {self.dim}), got {tuple(x.shape)}")

    @torch.no_grad()
    def init_from(self, x: Tensor, seed: int = 0) -> ResidualVQ:
        """k-means initialisation: stage ``s`` clusters the residual left by stages ``0..s-1``."""
        self._check(x)
        x = x.detach().to(self.codebooks)
        if not bool(torch.isfinite(x).all()):
            raise SplatpixError("cannot initialise a vector quantiser from non-finite values")
        residual = x.clone()
        for s in range(self.stages):
            cb = kmeans(residual, self.codebook_size, self.kmeans_iters, seed=seed + s)
            self.codebooks[s].copy_(cb)
            residual = residual - cb[_nearest(residual, cb)]
        return self

    @torch.no_grad()
    def _indices(self, x: Tensor) -> Tensor:
        """Greedy residual assignment, ``(N, stages)`` int64."""
        cbs = self.codebooks.detach()
        residual = x.detach()
        idx = []
        for s in range(self.stages):
            i = _nearest(residual, cbs[s])
            idx.append(i)
            residual = residual - cbs[s][i]
        return torch.stack(idx, dim=1) if idx else torch.zeros(x.shape[0], 0, dtype=torch.long)

    def forward(self, x: Tensor) -> Tensor:
        """Dequantised ``x`` (exact value), straight-through gradient to ``x``, lookup gradient to codebooks."""
        self._check(x)
        q = _rvq_lookup(self.codebooks, self._indices(x))
        return q + (x - x.detach())

    def loss(self, x: Tensor) -> Tensor:
        """VQ-VAE terms: ``codebook_weight * sum_s mean|sg(r_s) - e_s[i_s]|^2 + commitment * mean|x - sg(q)|^2``."""
        self._check(x)
        idx = self._indices(x)
        residual = x.detach()
        cb_loss = x.new_zeros(())
        q_total = torch.zeros_like(residual)
        for s in range(self.stages):
            e = self.codebooks[s][idx[:, s]]
            cb_loss = cb_loss + torch.mean((residual - e) ** 2)
            residual = residual - e.detach()
            q_total = q_total + e.detach()
        commit = torch.mean((x - q_total) ** 2)
        return self.codebook_weight * cb_loss + self.commitment * commit

    @torch.no_grad()
    def encode(self, x: Tensor) -> np.ndarray:
        """``(N, stages)`` int64 codeword indices in ``[0, codebook_size)``."""
        self._check(x)
        return self._indices(x.to(self.codebooks)).cpu().numpy().astype(np.int64)

    @torch.no_grad()
    def decode(self, idx: np.ndarray | Tensor) -> Tensor:
        """``(N, dim)`` dequantised vectors of indices ``idx`` (``(N, stages)``)."""
        it = torch.as_tensor(np.asarray(idx) if not isinstance(idx, Tensor) else idx).long()
        return _rvq_lookup(self.codebooks.detach(), it.to(self.codebooks.device))


# ------------------------------------------------------------------------------------------ quantised model
