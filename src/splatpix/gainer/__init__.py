"""GaINeR: Gaussians as implicit neural representations of images.

``hashgrid``: the multi-resolution 2-D hash-grid encoder (Instant-NGP style). ``knn``: the K-nearest-Gaussians
search (per-Gaussian radius; numba grid + PyTorch brute force). ``aggregate``: the Gaussian-weighted sum of the
neighbours' features. ``mlp``: the decoder MLP and the separate mask model's MLP. ``field``: the model
(:class:`GainerField`: KNN, Gaussian weights, hash-grid or baked features, decoder). ``train``: its training
(:func:`fit_gainer`); ``checkpoint``: resumable checkpoints; ``io``: baked model files and PLY export of the means.
"""

from .field import GainerConfig, GainerField
from .hashgrid import HashGrid, HashGridConfig, hashgrid, hashgrid_reference
from .io import export_ply, load_gainer, read_gainer_metadata, save_gainer
from .knn import KnnIndex, knn, knn_bruteforce
from .train import GainerResult, GainerTrainConfig, fit_gainer

__all__ = [
    "GainerConfig",
    "GainerField",
    "GainerResult",
    "GainerTrainConfig",
    "HashGrid",
    "HashGridConfig",
    "KnnIndex",
    "export_ply",
    "fit_gainer",
    "hashgrid",
    "hashgrid_reference",
    "knn",
    "knn_bruteforce",
    "load_gainer",
    "read_gainer_metadata",
    "save_gainer",
]
