"""Distances between cell populations, for evaluating predicted against observed snapshots.

:func:`wasserstein` (exact optimal transport, POT), :func:`mmd` (squared maximum mean discrepancy with RBF
kernels) and :func:`gaussian_w2` (closed-form Wasserstein-2 between Gaussians, a ground truth for tests).
All take plain arrays (cells x dimensions), e.g. ``adata.obsm["X_pca"]`` restricted to one time point.
"""

from ._mmd import mmd
from ._wasserstein import gaussian_w2, wasserstein

__all__ = ["gaussian_w2", "mmd", "wasserstein"]
