"""Distances between cell populations, for evaluating predicted against observed snapshots.

:func:`wasserstein` (exact optimal transport, POT), :func:`mmd` (squared maximum mean discrepancy with RBF
kernels) and :func:`gaussian_w2` (closed-form Wasserstein-2 between Gaussians, a ground truth for tests).
All take plain arrays (cells x dimensions), e.g. ``adata.obsm["X_pca"]`` restricted to one time point.
Against ground truth: :func:`velocity_error` (a fitted field vs a closed-form one) and
:func:`growth_by_group` (mean growth rate per branch or cell type and time point). Fates:
:func:`fate_calibration` (predicted against known fate probabilities: Pearson, calibration error, Brier
score) and :func:`lineage_agreement` (predicted fate biases against the fates of clonal sisters, from a
clone matrix).
"""

from ._fates import clonal_fate_bias, fate_calibration, lineage_agreement
from ._mmd import mmd
from ._truth import growth_by_group, velocity_error
from ._wasserstein import gaussian_w2, wasserstein

__all__ = [
    "clonal_fate_bias", "fate_calibration", "gaussian_w2", "growth_by_group", "lineage_agreement", "mmd",
    "velocity_error", "wasserstein",
]
