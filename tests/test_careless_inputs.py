"""Careless inputs get a clear error before any work (AnnData untouched) or a correct run, never a raw one.

Two cases that used to escape as raw errors: time points with very few cells (fewer cells than modelled
dimensions made the Gaussian map of the path correction overflow: ``LinAlgError: Eigenvalues did not
converge`` or a NaN loss) and an absurd ``batch_size`` (``MemoryError`` while drawing the first batch).
"""

from __future__ import annotations

import copy

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import scam
from scam.core import OptimConfig, TrainConfig, validate_snapshots
from scam.core.noise import denoised_gaussian_map, gaussian_map

torch.set_num_threads(1)

TINY = dict(config={"n_steps": 20}, network={"hidden": 16}, progress=False, rng=0)


def _few_cells(n_per_day: int, n_days: int = 3, dim: int = 5, seed: int = 0) -> ad.AnnData:
    """``n_per_day`` cells on each of ``n_days`` days, drifting along every axis, in ``dim`` dimensions."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(n_per_day, dim)) + day for day in range(n_days)]).astype(np.float32)
    obs = pd.DataFrame({"day": np.repeat(np.arange(n_days, dtype=float), n_per_day)},
                       index=[f"cell{i}" for i in range(len(x))])
    return ad.AnnData(obs=obs, obsm={"X_pca": x})


def _state(adata: ad.AnnData):
    return (adata.obs.copy(), {k: v.copy() for k, v in adata.obsm.items()}, copy.deepcopy(dict(adata.uns)))


def _assert_untouched(adata: ad.AnnData, before) -> None:
    obs, obsm, uns = before
    pd.testing.assert_frame_equal(adata.obs, obs)
    assert set(adata.obsm) == set(obsm)
    for k, v in obsm.items():
        np.testing.assert_array_equal(adata.obsm[k], v)
    assert set(adata.uns) == set(uns)


# ----------------------------------------------------------------------------- few cells per time point

def _sample_cov(n: int, d: int, rng) -> np.ndarray:
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 10.0, size=d)
    x -= x.mean(axis=0)
    return x.T @ x / n


@pytest.mark.parametrize(("n", "d"), [(2, 5), (3, 5), (5, 10), (12, 30), (2, 50)])
def test_gaussian_map_of_singular_covariances_is_finite(n, d):
    # fewer cells than dimensions: singular sample covariances whose rounding noise used to overflow the
    # inverse square root (then eigh raised LinAlgError, or the loss became NaN)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        c0, c1 = _sample_cov(n, d, rng), _sample_cov(n, d, rng)
        for g in (gaussian_map(c0, c1), denoised_gaussian_map(c0, c1, n, n)):
            assert np.all(np.isfinite(g))
            assert np.abs(g).max() < 1e6


def test_gaussian_map_unchanged_on_full_rank_covariances():
    # the floor only binds where rounding noise broke the bound: regular covariances give the exact map
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) @ np.diag([1.0, 2.0, 0.5, 3.0])
    c0, c1 = np.cov(a.T), np.cov(b.T)
    g = gaussian_map(c0, c1)
    np.testing.assert_allclose(g @ c0 @ g, c1, rtol=1e-6, atol=1e-9)  # the OT map pushes c0 onto c1
    np.testing.assert_allclose(g, g.T, atol=1e-10)


def test_one_cell_per_time_point_is_a_clear_error():
    adata = _few_cells(1)
    before = _state(adata)
    with pytest.raises(ValueError, match=r"has 1 cell\(s\); every time point needs at least 2"):
        scam.tl.action_matching(adata, "day", **TINY)
    _assert_untouched(adata, before)
    with pytest.raises(ValueError, match="every time point needs at least 2"):
        validate_snapshots([np.zeros((1, 3)), np.ones((4, 3))], [0.0, 1.0])


@pytest.mark.slow
@pytest.mark.parametrize(("n", "dim", "seed"), [(2, 5, 0), (3, 5, 2), (12, 30, 0)])
def test_few_cells_per_time_point_fit(n, dim, seed):
    # 2 cells a day raised LinAlgError, 3 cells with this seed too, 12 cells in 30 dims gave a NaN loss
    adata = _few_cells(n, dim=dim, seed=seed)
    scam.tl.action_matching(adata, "day", **TINY)
    assert np.isfinite(adata.obsm["action_matching_velocity"]).all()
    assert np.isfinite(adata.obs["action_matching_potential"]).all()


@pytest.mark.slow
def test_two_cells_per_time_point_holdout():
    df = scam.tl.evaluate_holdout(_few_cells(2), "day", fit_kwargs={"config": {"n_steps": 20}}, rng=0)
    assert set(df["method"]) == {"previous", "ot_interpolation", "scam"}
    assert np.isfinite(df["value"]).all()


# ----------------------------------------------------------------------------- absurd batch sizes

def test_huge_batch_size_is_a_clear_error_before_any_work():
    adata = scam.datasets.simulate("gaussian", n_cells=50, rng=0)
    before = _state(adata)
    with pytest.raises(ValueError, match=r"batch_size must be <= 2\*\*20"):
        scam.tl.action_matching(adata, "time", config={"batch_size": 10**9}, progress=False)
    _assert_untouched(adata, before)


def test_batch_size_bound():
    assert OptimConfig(batch_size=2**20).batch_size == 2**20
    with pytest.raises(ValueError, match="tens of GB"):
        OptimConfig(batch_size=2**20 + 1)
    with pytest.raises(ValueError, match=r"batch_size must be <= 2\*\*20"):
        TrainConfig.from_flat(batch_size=10**9)
    with pytest.raises(ValueError, match="must be >= 1"):
        OptimConfig(batch_size=0)
