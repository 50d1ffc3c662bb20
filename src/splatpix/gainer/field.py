"""The GaINeR field: Gaussian-weighted K-nearest-neighbour features decoded by an MLP.

For a query point ``x`` in normalised image coordinates (``u = x / W``, ``v = y / H``, pixel centres at ``j + 0.5``):

1. the ``K`` nearest Gaussian means ``mu_i`` within the acceptance radius (:func:`splatpix.gainer.knn.knn`):
   ``radius_mode="relative"``: ``||x - mu_i|| <= radius_scale * sigma_max_i`` (``sigma_max_i`` the square root of
   the largest eigenvalue of ``Sigma_i``), ``radius_mode="absolute"``: ``||x - mu_i|| <= radius``;
2. weights ``w_i = exp(-1/2 d^T Sigma_i^-1 d)``, ``d = x - mu_i``, computed in torch from the returned indices, so
   they are differentiable w.r.t. the covariance parameters (and the means when they are trainable);
3. per-Gaussian features ``f_i``: the hash grid evaluated at ``mu_i`` (training), or the baked ``(N, D)`` tensor
   after :meth:`GainerField.bake` (which stores the features and drops the grid, GaINeR's inference mode);
4. aggregation ``"sum"``: ``f(x) = sum_i w_i f_i`` (unnormalised, as GaINeR's public code), or ``"mean"``:
   ``f(x) = sum_i w_i f_i / sum_i w_i`` (the weighted average of the paper);
5. an MLP ``D -> hidden -> ... -> C`` (ReLU, sigmoid output), ``C`` = 1, 3 or 4 channels (:mod:`.mlp`).

RGBA (``channels=4``) has two forms (``alpha_model``): ``"head"``, one MLP with 4 outputs on one hash grid's features,
or ``"separate"``, a mask model sharing the same means, covariances and neighbour lists but with its own hash grid
(its own per-Gaussian features, baked alongside the colour features as the last ``D`` columns) and its own MLP
``D -> hidden -> ... -> 1``; colour is the first model's 3 outputs and alpha the mask model's. GaINeR's code trains
a whole second model on the mask (starting from the same means) and merges the renders in a separate script.

A query with no accepted neighbour gets the zero feature vector (so it shows the MLP's response to zero: a
constant "background" colour); GaINeR's code instead pads missing neighbours with Gaussian 0. In ``"mean"`` mode
the denominator is floored at ``1e-12``, so all-but-vanishing weights also give (near) zero features.

Covariances are full 2x2 in normalised coordinates, ``Sigma = L L^T`` with the Cholesky factor
``L = [[exp(a), 0], [c, exp(b)]]`` stored as ``cov_params = (a, c, b)`` (log-diagonal + off-diagonal), so every
parameter value gives a valid covariance. GaINeR's code uses a diagonal covariance (``c = 0``).

The KNN index (:class:`~splatpix.gainer.knn_rings.RingIndex`, a ring search over a grid of the means; exact, as
:class:`~splatpix.gainer.knn.KnnIndex`, and much faster when trained radii spread widely) is cached and rebuilt
only when the means or the radii changed (in ``"relative"`` mode the radii follow the covariances, so during
training on the general path, when the covariances move, it is rebuilt each step; with baked, unedited models it
is built once).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import is_int, is_number
from ..errors import SplatpixError
from .aggregate import aggregate
from .fused import aggregate_forward, covariance_terms
from .hashgrid import HashGrid, HashGridConfig
from .knn import MAX_K, knn
from .knn_rings import RingIndex
from .mlp import MLP_ARCHS, decode, seeded_mlps

__all__ = ["AGGREGATIONS", "ALPHA_MODELS", "RADIUS_MODES", "GainerConfig", "GainerField", "initial_cov_params",
           "random_means"]

RADIUS_MODES = ("relative", "absolute")
AGGREGATIONS = ("sum", "mean")
ALPHA_MODELS = ("head", "separate")
CHANNELS = (1, 3, 4)
MAX_GAUSSIANS = 1 << 26
MAX_HIDDEN = 4096
MAX_LAYERS = 16
MAX_RADIUS_SCALE = 1000.0  # sigmas (relative radius)
MAX_RADIUS = 16.0  # normalised units (the image is the unit square)
DEFAULT_RENDER_CHUNK = 1 << 16
_MEAN_EPS = 1e-12


@dataclass
class GainerConfig:
    """Shape of a GaINeR field.

    ``radius_scale`` (relative mode) defaults to 3: a 3-sigma cut-off. GaINeR's code uses ``sqrt(0.1)`` with an
    initial variance of ``1e-4`` (sigma = 0.01, i.e. 7 px on a 768-px side), which holds ~16 neighbours only at
    its 500k Gaussians; here the initial sigma is the mean spacing ``1 / sqrt(N)`` (see
    :func:`initial_cov_params`), and ``3 sigma`` then holds ``9 pi ~ 28`` Gaussians on average at any ``N``, so
    ``K = 8 .. 16`` neighbour lists are full and the cut-off weight is ``exp(-4.5) ~ 0.011``.
    ``radius`` is the absolute radius (normalised units) used when ``radius_mode="absolute"``.
    ``alpha_model`` (RGBA only, module docstring) defaults to ``"separate"``, which trains better colour and alpha
    than ``"head"`` for more time and a larger file (docs/results.md, ``benchmarks/gainer/gainer_alpha.py``).
    ``mlp_layers`` is the number of hidden layers of width ``mlp_hidden`` (``mlp_arch="plain"``);
    ``mlp_arch="gainer"`` is the decoder of GaINeR's code (:func:`.mlp.make_mlp`).
    """

    n_gaussians: int = 20_000
    k: int = 16
    radius_mode: str = "relative"
    radius_scale: float = 3.0
    radius: float = 0.02
    aggregation: str = "sum"
    hashgrid: HashGridConfig = field(default_factory=HashGridConfig)
    mlp_hidden: int = 64
    mlp_layers: int = 2
    channels: int = 3
    trainable_means: bool = False
    alpha_model: str = "separate"
    mlp_arch: str = "plain"

    def __post_init__(self) -> None:
        def bad(msg: str) -> SplatpixError:
            return SplatpixError(f"invalid GaINeR config: {msg}")

        if isinstance(self.hashgrid, dict):
            try:
                self.hashgrid = HashGridConfig(**self.hashgrid)
            except TypeError as e:
                raise bad(f"hashgrid: {e}") from e
        if not is_int(self.n_gaussians) or not 1 <= self.n_gaussians <= MAX_GAUSSIANS:
            raise bad(f"n_gaussians must be an integer in [1, {MAX_GAUSSIANS}], got {self.n_gaussians!r}")
        if not is_int(self.k) or not 1 <= self.k <= MAX_K:
            raise bad(f"k must be an integer in [1, {MAX_K}], got {self.k!r}")
        if self.radius_mode not in RADIUS_MODES:
            raise bad(f"unknown radius_mode {self.radius_mode!r}; use one of {', '.join(RADIUS_MODES)}")
        if not is_number(self.radius_scale) or not 0 < self.radius_scale <= MAX_RADIUS_SCALE:
            raise bad(f"radius_scale must be a number in (0, {MAX_RADIUS_SCALE:g}], got {self.radius_scale!r}")
        if not is_number(self.radius) or not 0 < self.radius <= MAX_RADIUS:
            raise bad(f"radius must be a number in (0, {MAX_RADIUS:g}] (normalised units), got {self.radius!r}")
        self.radius_scale, self.radius = float(self.radius_scale), float(self.radius)
        if self.aggregation not in AGGREGATIONS:
            raise bad(f"unknown aggregation {self.aggregation!r}; use one of {', '.join(AGGREGATIONS)}")
        if not isinstance(self.hashgrid, HashGridConfig):
            raise bad(f"hashgrid must be a HashGridConfig, got {type(self.hashgrid).__name__}")
        if not is_int(self.mlp_hidden) or not 1 <= self.mlp_hidden <= MAX_HIDDEN:
            raise bad(f"mlp_hidden must be an integer in [1, {MAX_HIDDEN}], got {self.mlp_hidden!r}")
        if not is_int(self.mlp_layers) or not 0 <= self.mlp_layers <= MAX_LAYERS:
            raise bad(f"mlp_layers must be an integer in [0, {MAX_LAYERS}], got {self.mlp_layers!r}")
        if not is_int(self.channels) or self.channels not in CHANNELS:
            raise bad(f"channels must be one of {CHANNELS}, got {self.channels!r}")
        if not isinstance(self.trainable_means, bool):
            raise bad(f"trainable_means must be True or False, got {self.trainable_means!r}")
        if self.alpha_model not in ALPHA_MODELS:
            raise bad(f"unknown alpha_model {self.alpha_model!r}; use one of {', '.join(ALPHA_MODELS)}")
        if self.mlp_arch not in MLP_ARCHS:
            raise bad(f"unknown mlp_arch {self.mlp_arch!r}; use one of {', '.join(MLP_ARCHS)}")

    @property
    def feature_dim(self) -> int:
        """D, the length of a Gaussian's feature vector (the hash grid's output)."""
        return self.hashgrid.output_dim

    @property
    def separate_mask(self) -> bool:
        """RGBA with a separate mask model (its own hash grid and MLP)."""
        return self.channels == 4 and self.alpha_model == "separate"

    @property
    def baked_dim(self) -> int:
        """Columns of the baked features: D, or 2 D with a separate mask model (colour features, then mask)."""
        return 2 * self.feature_dim if self.separate_mask else self.feature_dim

    @property
    def colour_outputs(self) -> int:
        """Outputs of the colour MLP: ``channels``, or 3 with a separate mask model."""
        return 3 if self.separate_mask else self.channels

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``GainerConfig(**d)`` rebuilds it)."""
        return asdict(self)


def random_means(n: int, seed: int = 0) -> Tensor:
    """``(n, 2)`` float32 means uniform in ``[0, 1)^2`` from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.rand((int(n), 2), generator=gen, dtype=torch.float32)


def initial_cov_params(n: int, sigma: float | None = None) -> Tensor:
    """``(n, 3)`` isotropic Cholesky parameters ``(log sigma, 0, log sigma)``; ``sigma`` defaults to the mean
    spacing of ``n`` uniform points in the unit square, ``1 / sqrt(n)``."""
    s = 1.0 / math.sqrt(max(int(n), 1)) if sigma is None else float(sigma)
    if not (math.isfinite(s) and s > 0):
        raise SplatpixError(f"initial sigma must be a finite number > 0, got {sigma!r}")
    out = torch.zeros((int(n), 3), dtype=torch.float32)
    out[:, 0] = math.log(s)
    out[:, 2] = math.log(s)
    return out


class GainerField(nn.Module):
    """A GaINeR image field (module docstring for the maths).

    ``means`` ``(N, 2)`` (normalised; an ``nn.Parameter`` that requires grad only with ``trainable_means``),
    ``cov_params`` ``(N, 3)`` (``(a, c, b)``, :func:`cholesky`), ``grid`` (a :class:`HashGrid`, ``None`` once baked),
    ``baked_features`` (a buffer, ``None`` until baked), ``mlp`` (``nn.Sequential``). ``size = (H, W)`` is the native
    size, the default of :meth:`render`. ``means=None`` draws uniform random means with ``seed``; ``cov_params=None``
    uses :func:`initial_cov_params`. The hash table and the MLP are initialised from ``seed`` too.
    """

    def __init__(
        self,
        cfg: GainerConfig,
        means: Tensor | None = None,
        cov_params: Tensor | None = None,
        *,
        size: tuple[int, int] = (512, 512),
        seed: int = 0,
        baked_features: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(cfg, GainerConfig):
            raise SplatpixError(f"config must be a GainerConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        n = cfg.n_gaussians
        h, w = size
        if not (is_int(h) and is_int(w) and h > 0 and w > 0):
            raise SplatpixError(f"field size must be two positive integers (H, W), got {size!r}")
        self.size = (int(h), int(w))
        m = random_means(n, seed) if means is None else means.detach().to(torch.float32).clone()
        c = initial_cov_params(n) if cov_params is None else cov_params.detach().to(torch.float32).clone()
        if tuple(m.shape) != (n, 2):
            raise SplatpixError(f"means must have shape ({n}, 2), got {tuple(m.shape)}")
        if tuple(c.shape) != (n, 3):
            raise SplatpixError(f"cov_params must have shape ({n}, 3), got {tuple(c.shape)}")
        if not (bool(torch.isfinite(m).all()) and bool(torch.isfinite(c).all())):
            raise SplatpixError("means and cov_params must be finite")
        self.means = nn.Parameter(m.contiguous(), requires_grad=cfg.trainable_means)
        self.cov_params = nn.Parameter(c.contiguous())
        self.mlp, self.mask_mlp = seeded_mlps(cfg.feature_dim, cfg.mlp_hidden, cfg.mlp_layers, cfg.colour_outputs,
                                              cfg.separate_mask, seed, cfg.mlp_arch)
        if baked_features is None:
            self.grid: HashGrid | None = HashGrid(cfg.hashgrid, seed=seed)
            self.mask_grid: HashGrid | None = HashGrid(cfg.hashgrid, seed=seed + 1) if cfg.separate_mask else None
            self.register_buffer("baked_features", None)
        else:
            f = baked_features.detach().to(torch.float32).clone().contiguous()
            if tuple(f.shape) != (n, cfg.baked_dim):
                raise SplatpixError(f"baked features must have shape ({n}, {cfg.baked_dim}), got {tuple(f.shape)}")
            self.grid = None
            self.mask_grid = None
            self.register_buffer("baked_features", f)
        self._index: RingIndex | None = None
        self.backend = "auto"  # aggregation backend: "auto" | "numba" | "reference" (splatpix.gainer.aggregate)
        self.meta: dict[str, Any] = {}  # a loaded file's metadata

    # ------------------------------------------------------------------------------------------ properties

    @property
    def n(self) -> int:
        return int(self.means.shape[0])

    @property
    def channels(self) -> int:
        return self.cfg.channels

    @property
    def baked(self) -> bool:
        return self.grid is None

    def cholesky(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(l11, l21, l22)`` of ``L = [[l11, 0], [l21, l22]]``, ``Sigma = L L^T`` (differentiable)."""
        p = self.cov_params
        return torch.exp(p[:, 0]), p[:, 1], torch.exp(p[:, 2])

    def covariance(self) -> Tensor:
        """``(N, 2, 2)`` covariances in normalised coordinates."""
        l11, l21, l22 = self.cholesky()
        s00 = l11 * l11
        s01 = l11 * l21
        s11 = l21 * l21 + l22 * l22
        return torch.stack((torch.stack((s00, s01), -1), torch.stack((s01, s11), -1)), -2)

    def sigma_max(self) -> Tensor:
        """``(N,)`` square root of each covariance's largest eigenvalue (detached)."""
        with torch.no_grad():
            l11, l21, l22 = self.cholesky()
            s00, s01, s11 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
            half_tr = 0.5 * (s00 + s11)
            disc = torch.sqrt((0.5 * (s00 - s11)) ** 2 + s01 * s01)
            return torch.sqrt(half_tr + disc)

    def knn_radius(self) -> Tensor:
        """``(N,)`` acceptance radius of each Gaussian (detached, float32)."""
        if self.cfg.radius_mode == "absolute":
            return torch.full((self.n,), float(self.cfg.radius), dtype=torch.float32, device=self.means.device)
        return (self.cfg.radius_scale * self.sigma_max()).to(torch.float32)

    def gaussian_features(self) -> Tensor:
        """``(N, D)`` per-Gaussian features (``(N, 2 D)`` with a separate mask model: colour, then mask): the baked
        tensor, or the hash grid(s) at the means (differentiable)."""
        if self.grid is None:
            return self.baked_features
        if self.mask_grid is not None:
            return torch.cat((self.grid(self.means), self.mask_grid(self.means)), 1)
        return self.grid(self.means)

    def decode(self, agg: Tensor) -> Tensor:
        """``(P, C)`` colours in ``[0, 1]`` from ``(P, baked_dim)`` aggregated features (:func:`.mlp.decode`)."""
        return decode(self.mlp, self.mask_mlp, agg, self.cfg.feature_dim)

    # ------------------------------------------------------------------------------------------ baking

    @torch.no_grad()
    def bake(self) -> GainerField:
        """Store the per-Gaussian features (the grid at the current means) and drop the hash grid; returns self.
        Baking a baked field does nothing."""
        if self.grid is None:
            return self
        feats = self.gaussian_features().detach().to(torch.float32).contiguous()
        self.grid = None
        self.mask_grid = None
        self.baked_features = feats
        return self

    @torch.no_grad()
    def with_gaussians(self, means: Tensor, cov_params: Tensor, features: Tensor | None = None) -> GainerField:
        """A new baked field with other Gaussians (``(M, 2)`` means, ``(M, 3)`` covariance parameters and ``(M,
        baked_dim)`` features, by default this field's features, which requires ``M = N``) and copies of this field's
        decoder MLP(s), on this field's device; edits and subsets are built this way, so the decoder is never lost."""
        feats = self.gaussian_features().detach() if features is None else features.detach()
        m = int(means.shape[0])
        new = GainerField(replace(self.cfg, n_gaussians=m), means.detach().to(torch.float32).cpu(),
                          cov_params.detach().to(torch.float32).cpu(), size=self.size,
                          baked_features=feats.to(torch.float32).cpu())
        new.mlp.load_state_dict(self.mlp.state_dict())
        if self.mask_mlp is not None:
            new.mask_mlp.load_state_dict(self.mask_mlp.state_dict())
        new = new.to(self.means.device)
        new.backend = self.backend
        new.meta = dict(self.meta)
        return new

    # ------------------------------------------------------------------------------------------ evaluation

    def neighbours(self, queries: Tensor) -> tuple[Tensor, Tensor]:
        """``(idx, dist2)`` of :func:`knn` for ``(P, 2)`` queries, with the cached index (rebuilt when stale)."""
        means = self.means.detach().to(torch.float32)
        radius = self.knn_radius()
        q = queries.detach().to(torch.float32)
        on_cpu = q.device.type == "cpu" and means.device.type == "cpu"
        if on_cpu and self._index is None:
            self._index = RingIndex(means, radius)
        return knn(q, means, radius, self.cfg.k, index=self._index if on_cpu else None)

    def features(self, queries: Tensor, gaussian_features: Tensor | None = None) -> Tensor:
        """``(P, baked_dim)`` aggregated features at ``(P, 2)`` queries (zero where no Gaussian is accepted)."""
        if queries.dim() != 2 or queries.shape[1] != 2:
            raise SplatpixError(f"queries must have shape (P, 2), got {tuple(queries.shape)}")
        feats = self.gaussian_features() if gaussian_features is None else gaussian_features
        idx, _ = self.neighbours(queries)
        valid = idx >= 0
        ic = idx.clamp(min=0)
        q = queries.to(self.means.dtype)
        geo = torch.cat((self.means, self.cov_params), 1)[ic]  # (P, K, 5): one gather (and one scatter back)
        d0 = q[:, None, 0] - geo[..., 0]
        d1 = q[:, None, 1] - geo[..., 1]
        z1 = d0 * torch.exp(-geo[..., 2])  # L^-1 d by forward substitution
        z2 = (d1 - geo[..., 3] * z1) * torch.exp(-geo[..., 4])
        w = torch.exp(-0.5 * (z1 * z1 + z2 * z2)) * valid.to(z1.dtype)  # (P, K)
        agg = aggregate(w, idx, feats, self.backend)  # (P, D)
        if self.cfg.aggregation == "mean":
            agg = agg / w.sum(1, keepdim=True).clamp_min(_MEAN_EPS)
        return agg

    def forward(self, queries: Tensor) -> Tensor:
        """``(P, C)`` colours in ``[0, 1]`` at ``(P, 2)`` normalised query points."""
        return self.decode(self.features(queries))

    @torch.no_grad()
    def render(
        self,
        height: int | None = None,
        width: int | None = None,
        window: tuple[float, float, float, float] | None = None,
        *,
        chunk: int = DEFAULT_RENDER_CHUNK,
    ) -> Tensor:
        """``(C, H, W)`` image of the window ``(u0, v0, u1, v1)`` (default the whole image) on an ``H x W`` grid
        (default the native size): pixel ``(i, j)`` samples ``(u0 + (j + 0.5) (u1 - u0) / W,
        v0 + (i + 0.5) (v1 - v0) / H)``. Evaluated ``chunk`` pixels at a time, without gradients."""
        h = self.size[0] if height is None else height
        w = self.size[1] if width is None else width
        if not (is_int(h) and is_int(w) and h > 0 and w > 0):
            raise SplatpixError(f"render size must be positive integers, got {height!r} x {width!r}")
        u0, v0, u1, v1 = (0.0, 0.0, 1.0, 1.0) if window is None else window
        if not all(is_number(t) for t in (u0, v0, u1, v1)) or not (u1 > u0 and v1 > v0):
            raise SplatpixError(f"render window must be finite (u0, v0, u1, v1) with u1 > u0, v1 > v0, got {window!r}")
        dev = self.means.device
        us = (u0 + (torch.arange(w, dtype=torch.float64) + 0.5) * ((u1 - u0) / w)).to(torch.float32)
        vs = (v0 + (torch.arange(h, dtype=torch.float64) + 0.5) * ((v1 - v0) / h)).to(torch.float32)
        grid = torch.stack(torch.meshgrid(vs, us, indexing="ij")[::-1], -1).reshape(-1, 2).to(dev)
        feats = self.gaussian_features()
        chunk = max(1, int(chunk))
        out = torch.empty((h * w, self.channels), dtype=torch.float32, device=dev)
        fast = (dev.type == "cpu" and self.backend != "reference" and feats.dtype == torch.float32
                and self.means.dtype == torch.float32)
        if fast:  # once per render: the index (rebuilt if stale), the kernels' arrays
            means = self.means.detach()
            radius = self.knn_radius()
            if self._index is None:
                self._index = RingIndex(means, radius)
            elif self._index.is_stale(means, radius):
                self._index.rebuild(means, radius)
            arrays = (means.numpy(), feats.detach().numpy(), covariance_terms(self.cov_params))
        for s in range(0, h * w, chunk):
            q = grid[s : s + chunk]
            if fast:  # the ring-search KNN and the fused forward kernel (weights and aggregation in one pass)
                idx, _ = self._index.query(q, self.cfg.k)
                agg = aggregate_forward(q, idx, arrays[0], None, arrays[1], self.cfg.aggregation == "mean",
                                        geo=arrays[2])
            else:
                agg = self.features(q, feats)
            out[s : s + chunk] = self.decode(agg).to(torch.float32)
        return out.T.reshape(self.channels, h, w).contiguous()

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"n={self.n}, k={c.k}, radius={c.radius_mode}, aggregation={c.aggregation!r}, "
                f"channels={c.channels}, baked={self.baked}")
