"""GaINeR: Gaussians as implicit neural representations of images (in progress).

``hashgrid`` holds the multi-resolution 2-D hash-grid encoder (Instant-NGP style).
``knn`` holds the K-nearest-Gaussians search (per-Gaussian radius; numba grid + PyTorch brute force).
"""

from .hashgrid import HashGrid, HashGridConfig, hashgrid, hashgrid_reference
from .knn import KnnIndex, knn, knn_bruteforce

__all__ = ["HashGrid", "HashGridConfig", "KnnIndex", "hashgrid", "hashgrid_reference", "knn", "knn_bruteforce"]
