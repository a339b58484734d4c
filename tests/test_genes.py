"""Gene-level API: gene_trends, driver_genes, velocity_genes (scam.tl) and scam.pl.gene_trends, against ground truth."""

from __future__ import annotations

import copy as _copy

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

import scam

FAST = dict(network={"hidden": 32}, config={"n_steps": 200, "eval_every": 50}, progress=False)
DRIFT = np.array([1.5, 0.0])  # known constant velocity of the hand-built paths
OBS_TIMES = [0.0, 1.0, 2.0]
N_CELLS = 800


# ============================================================================ fixtures
@pytest.fixture(scope="module")
def linear():
    """Cells x_t ~ N(DRIFT t, I) at times 0, 1, 2; genes g_j = A_j . x + b_j (exactly linear); a fake
    fit entry (no training) and hand-built paths x(t) = x0 + DRIFT t recorded at 9 times."""
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(N_CELLS, 2)) + DRIFT * t for t in OBS_TIMES]
    x = np.concatenate(xs)
    t = np.repeat(OBS_TIMES, N_CELLS)
    a_mat = rng.normal(size=(4, 2))
    b_vec = rng.normal(size=4)
    adata = ad.AnnData(
        X=x @ a_mat.T + b_vec,
        obs=pd.DataFrame({"time": t}, index=[f"c{i}" for i in range(len(t))]),
        obsm={"X_pca": x},
    )
    adata.var_names = [f"g{i}" for i in range(4)]
    adata.var["highly_variable"] = [True, True, True, False]
    adata.layers["sparse"] = sp.csr_matrix(adata.X)
    adata.obs["half"] = pd.Categorical(np.where(x[:, 1] > 0, "up", "down"))
    adata.uns["action_matching"] = {
        "model": {}, "params": {"use_rep": "X_pca", "n_dims": 2, "time_key": "time"}, "times": np.array(OBS_TIMES),
    }
    times = np.linspace(0.0, 2.0, 9)
    x0 = xs[0]
    adata.uns["action_matching_simulation"] = {
        "times": times,
        "positions": np.stack([x0 + DRIFT * s for s in times]),
        "log_weights": np.zeros((len(times), N_CELLS)),
        "cells": np.arange(N_CELLS),
    }
    return adata, a_mat, b_vec


def _weights(logw):
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def _expected(sim, a_mat, b_vec, logw=None, sel=None):
    """a . E_w[x(t)] + b from the stored paths, weights exp(log_weights) normalised per time."""
    pos, lw = np.asarray(sim["positions"], float), np.asarray(sim["log_weights"] if logw is None else logw, float)
    if sel is not None:
        pos, lw = pos[:, sel], lw[:, sel]
    ex = np.einsum("tp,tpd->td", _weights(lw), pos)
    return ex @ a_mat.T + b_vec


# ============================================================================ gene_trends (no training)
def test_gene_trends_linear_genes_follow_mean_path(linear):
    adata, a_mat, b_vec = linear
    adata = adata.copy()
    scam.tl.gene_trends(adata, genes=["g0", "g1", "g2", "g3"])
    entry = adata.uns["action_matching_gene_trends"]
    sim = adata.uns["action_matching_simulation"]
    n_t = len(sim["times"])
    assert entry["mean"].shape == (n_t, 4) and list(entry["genes"]) == ["g0", "g1", "g2", "g3"]
    np.testing.assert_array_equal(entry["times"], sim["times"])
    # ground truth: genes are linear in x, so the mean trend is a . E[x(t)] + b (kernel smoothing bias < 0.05;
    # the trends move by ~6 units over the time course)
    np.testing.assert_allclose(entry["mean"], _expected(sim, a_mat, b_vec), atol=0.05)
    # the per-path expression is exactly the stored kernel over the stored neighbours, and the mean its average
    x = adata.X
    rebuilt = np.einsum("tpk,tpkg->tpg", entry["kernel"].astype(float), x[entry["neighbors"]])
    np.testing.assert_allclose(entry["expression"], rebuilt, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.einsum("tp,tpg->tg", entry["weights"], rebuilt), entry["mean"], atol=1e-5)
    np.testing.assert_allclose(entry["kernel"].sum(axis=2), 1.0, atol=1e-6)
    # neighbours come only from the bracketing observed time points
    t_cells = adata.obs["time"].to_numpy()
    for i, t in enumerate(sim["times"]):
        used = np.unique(t_cells[entry["neighbors"][i]])
        allowed = [t] if t in OBS_TIMES else [np.floor(t), np.ceil(t)]
        assert set(used) <= set(allowed), (t, used)
    assert entry["params"]["neighbor_times"] == "bracketing" and entry["params"]["n_neighbors"] == 30


def test_gene_trends_respects_weights(linear):
    """Log-weights that favour the upper half of the paths pull the mean trend to the upper half's genes."""
    adata, a_mat, b_vec = linear
    adata = adata.copy()
    sim = adata.uns["action_matching_simulation"]
    x0 = np.asarray(sim["positions"])[0]
    up = x0[:, 1] > 0
    sim["log_weights"] = np.outer(sim["times"], 4.0 * up)  # at t = 2: weight ratio e^8
    scam.tl.gene_trends(adata, genes=["g0", "g1", "g2", "g3"], key_added="weighted")
    mean = adata.uns["weighted"]["mean"]
    expected = _expected(sim, a_mat, b_vec)
    unweighted = _expected(sim, a_mat, b_vec, logw=np.zeros_like(sim["log_weights"]))
    np.testing.assert_allclose(mean, expected, atol=0.08)
    # the weights matter: at the last time the weighted and unweighted truths differ by far more than the tolerance
    assert np.abs(expected[-1] - unweighted[-1]).max() > 0.5
    assert np.abs(mean[-1] - unweighted[-1]).max() > 0.4
    np.testing.assert_allclose(adata.uns["weighted"]["weights"][-1][up].sum(), 1.0, atol=1e-3)


def test_gene_trends_groups_sparse_layer_and_default_genes(linear, tmp_path):
    adata, a_mat, b_vec = linear
    adata = adata.copy()
    sim = adata.uns["action_matching_simulation"]
    sim["log_weights"] = np.outer(sim["times"], 0.5 * (np.asarray(sim["positions"])[0, :, 0] > 0))
    out = scam.tl.gene_trends(adata, layer="sparse", groups="half", copy=True)  # default genes: highly variable
    assert "action_matching_gene_trends" not in adata.uns
    entry = out.uns["action_matching_gene_trends"]
    assert list(entry["genes"]) == ["g0", "g1", "g2"]
    dense = scam.tl.gene_trends(adata, genes=["g0", "g1", "g2"], copy=True).uns["action_matching_gene_trends"]
    np.testing.assert_allclose(entry["mean"], dense["mean"], rtol=1e-10, atol=1e-10)  # sparse == dense
    names = list(entry["group_names"])
    assert names == ["down", "up"] and entry["group_means"].shape == (2, len(sim["times"]), 3)
    labels = adata.obs["half"].to_numpy()[sim["cells"]]
    w = _weights(np.asarray(sim["log_weights"]))
    mixed = np.zeros_like(entry["mean"])
    for j, g in enumerate(names):
        sel = labels == g
        # each group follows its own weighted mean path (ground truth, kernel tolerance)
        np.testing.assert_allclose(entry["group_means"][j], _expected(sim, a_mat[:3], b_vec[:3], sel=sel), atol=0.1)
        mixed += w[:, sel].sum(axis=1, keepdims=True) * entry["group_means"][j]
    # exact identity: the overall mean is the mass-weighted mixture of the group means
    np.testing.assert_allclose(mixed, entry["mean"], atol=1e-10)
    out.write_h5ad(tmp_path / "trends.h5ad")  # everything written survives an h5ad round trip
    back = ad.read_h5ad(tmp_path / "trends.h5ad").uns["action_matching_gene_trends"]
    np.testing.assert_array_equal(back["group_means"], entry["group_means"])
    assert back["params"]["groups"] == "half"


def test_gene_trends_errors_before_work(linear):
    adata, _, _ = linear
    adata = adata.copy()
    before = set(adata.uns.keys())
    with pytest.raises(KeyError, match=r"not in `adata.var_names`: \['nope', 'zilch'\]"):
        scam.tl.gene_trends(adata, genes=["g0", "nope", "zilch"])
    with pytest.raises(KeyError, match="Run `scam.tl.simulate` first."):
        scam.tl.gene_trends(adata, genes=["g0"], simulation_key="missing")
    with pytest.raises(KeyError, match="layers"):
        scam.tl.gene_trends(adata, genes=["g0"], layer="counts")
    with pytest.raises(KeyError, match="groups"):
        scam.tl.gene_trends(adata, genes=["g0"], groups="fate")
    with pytest.raises(ValueError, match="n_neighbors"):
        scam.tl.gene_trends(adata, genes=["g0"], n_neighbors=0)
    with pytest.raises(ValueError, match="bandwidth"):
        scam.tl.gene_trends(adata, genes=["g0"], bandwidth=-1.0)
    with pytest.raises(KeyError, match="Run `scam.tl.action_matching` first"):
        scam.tl.gene_trends(adata, genes=["g0"], key="other")
    no_hvg = adata.copy()
    del no_hvg.var["highly_variable"]
    with pytest.raises(ValueError, match="pass `genes=`"):
        scam.tl.gene_trends(no_hvg)
    assert set(adata.uns.keys()) == before


# ============================================================================ gene_trends (a real fit)
@pytest.mark.slow
def test_gene_trends_after_fit_and_simulate():
    """Gaussian geodesic fitted and simulated; linear genes' trends match a . E[x(t)] + b of the simulated
    paths, and the true marginal means."""
    adata, truth = scam.datasets.simulate("gaussian", n_cells=400, rng=0, times=(0.0, 0.5, 1.0), return_truth=True)
    rng = np.random.default_rng(1)
    a_mat, b_vec = rng.normal(size=(3, 2)), rng.normal(size=3)
    x = adata.obsm["X_pca"]
    adata = ad.AnnData(X=x @ a_mat.T + b_vec, obs=adata.obs, obsm={"X_pca": x})
    adata.var_names = ["a", "b", "c"]
    scam.tl.action_matching(adata, "time", growth=None, rng=0, **FAST)
    scam.tl.simulate(adata)
    scam.tl.gene_trends(adata, genes=["a", "b", "c"])
    entry = adata.uns["action_matching_gene_trends"]
    sim = adata.uns["action_matching_simulation"]
    np.testing.assert_allclose(entry["mean"], _expected(sim, a_mat, b_vec), atol=0.1)
    true_means = np.stack([truth.marginal(t)[0] for t in entry["times"]]) @ a_mat.T + b_vec
    np.testing.assert_allclose(entry["mean"], true_means, atol=0.35)


# ============================================================================ driver_genes
@pytest.fixture(scope="module")
def fates():
    """200 source cells with fate probabilities A and B = 1 - A, 50 other cells; planted genes and noise."""
    rng = np.random.default_rng(3)
    n_src, n_other, n_noise = 200, 50, 400
    p = rng.beta(2, 2, size=n_src)
    noise = rng.normal(size=(n_src + n_other, n_noise)) * rng.uniform(0.5, 3, size=n_noise) + 5.0
    planted = np.r_[3.0 * p + 1.0, rng.normal(size=n_other)]
    anti = np.r_[-p + 0.1 * rng.normal(size=n_src), rng.normal(size=n_other)]
    const = np.full(n_src + n_other, 2.0)
    x = np.c_[planted, anti, const, noise]
    adata = ad.AnnData(X=x, obs=pd.DataFrame(index=[f"c{i}" for i in range(n_src + n_other)]))
    adata.var_names = ["planted", "anti", "const"] + [f"noise{i}" for i in range(n_noise)]
    table = pd.DataFrame(np.nan, index=adata.obs_names, columns=["A", "B"])
    table.iloc[:n_src, 0], table.iloc[:n_src, 1] = p, 1 - p
    adata.obsm["action_matching_fates"] = table
    adata.uns["action_matching_fates"] = {"groups": np.array(["A", "B"])}
    return adata, n_src


def test_driver_genes_recovers_planted_and_matches_scipy(fates):
    adata, n_src = fates
    before = _copy.deepcopy(dict(adata.uns))
    df = scam.tl.driver_genes(adata)
    assert set(adata.uns.keys()) == set(before.keys())
    assert list(df.columns) == [f"{lin}_{s}" for lin in "AB" for s in ("corr", "pval", "qval", "ci_low", "ci_high")]
    assert df.index[0] == "planted" and df.index[-1] == "const"  # sorted by A_corr, NaN last
    assert abs(df.loc["planted", "A_corr"] - 1.0) < 1e-10 and df.loc["planted", "A_qval"] < 1e-6
    assert abs(df.loc["planted", "B_corr"] + 1.0) < 1e-10
    assert df.loc["anti", "A_corr"] < -0.8 and df.loc["anti", "A_qval"] < 1e-6
    np.testing.assert_allclose(df["A_corr"].dropna(), -df["B_corr"].dropna(), atol=1e-12)
    # constant gene: no correlation, excluded from the q-values
    assert df.loc["const"].isna().all()
    # exact statistics against scipy on the source cells
    x = adata.X[:n_src]
    f = adata.obsm["action_matching_fates"]["A"].to_numpy()[:n_src]
    genes = [g for g in adata.var_names if g != "const"]
    for g in genes[:60]:
        res = stats.pearsonr(x[:, adata.var_names.get_loc(g)], f)
        lo, hi = res.confidence_interval(0.95)
        assert abs(df.loc[g, "A_corr"] - res.statistic) < 1e-12
        assert abs(df.loc[g, "A_pval"] - res.pvalue) < 1e-8, g
        assert abs(df.loc[g, "A_ci_low"] - lo) < 1e-10 and abs(df.loc[g, "A_ci_high"] - hi) < 1e-10
    pvals = df.loc[genes, "A_pval"].to_numpy()
    np.testing.assert_allclose(df.loc[genes, "A_qval"], stats.false_discovery_control(pvals), rtol=1e-12)
    # pure noise: uniform p-values, q-values almost never significant
    noise = df.loc[[g for g in genes if g.startswith("noise")]]
    assert stats.kstest(noise["A_pval"], "uniform").pvalue > 1e-3
    assert (noise["A_qval"] > 0.05).mean() > 0.95


def test_driver_genes_spearman_sparse_layer_and_cells(fates):
    adata, n_src = fates
    adata = adata.copy()
    adata.layers["counts"] = sp.csr_matrix(adata.X)
    genes = ["planted", "anti", "noise0", "noise1", "noise2"]
    dense = scam.tl.driver_genes(adata, genes=genes)
    sparse = scam.tl.driver_genes(adata, genes=genes, layer="counts")
    pd.testing.assert_frame_equal(dense, sparse, rtol=1e-12, atol=1e-12)
    sp_df = scam.tl.driver_genes(adata, genes=genes, method="spearman")
    f = adata.obsm["action_matching_fates"]["A"].to_numpy()[:n_src]
    for g in genes:
        res = stats.spearmanr(adata[:n_src, g].X.ravel(), f)
        assert abs(sp_df.loc[g, "A_corr"] - res.statistic) < 1e-12
        assert abs(sp_df.loc[g, "A_pval"] - res.pvalue) < 1e-8
    sub = adata.obs_names[: n_src // 2]
    part = scam.tl.driver_genes(adata, genes=["noise0"], cells=sub)
    ref = stats.pearsonr(adata[sub, "noise0"].X.ravel(), adata.obsm["action_matching_fates"].loc[sub, "A"])
    assert abs(part.loc["noise0", "A_pval"] - ref.pvalue) < 1e-8


def test_driver_genes_errors(fates):
    adata, _ = fates
    with pytest.raises(KeyError, match="Run `scam.tl.fate_probabilities` first"):
        scam.tl.driver_genes(adata, key="fates")
    with pytest.raises(KeyError, match="nope"):
        scam.tl.driver_genes(adata, genes=["planted", "nope"])
    with pytest.raises(ValueError, match="method"):
        scam.tl.driver_genes(adata, method="kendall")
    with pytest.raises(ValueError, match="no fate probabilities"):
        scam.tl.driver_genes(adata, cells=adata.obs_names[-3:])


# ============================================================================ velocity_genes
@pytest.fixture(scope="module")
def pca_fit():
    """Genes = a random linear image of a 2-D Gaussian geodesic plus noise; scanpy PCA on 30 of 40 genes
    (mask_var), balanced fit on the first 2 PCs."""
    sc = pytest.importorskip("scanpy")
    adata = scam.datasets.simulate("gaussian", n_cells=200, rng=0, times=(0.0, 0.5, 1.0))
    rng = np.random.default_rng(2)
    latent = adata.obsm["X_pca"]
    x = latent @ rng.normal(size=(2, 40)) + 0.05 * rng.normal(size=(adata.n_obs, 40))
    genes = ad.AnnData(X=x.astype(np.float32), obs=adata.obs.copy())
    genes.var_names = [f"gene{i}" for i in range(40)]
    genes.var["highly_variable"] = np.arange(40) < 30
    sc.pp.pca(genes, n_comps=5, mask_var="highly_variable")
    scam.tl.action_matching(genes, "time", use_rep="X_pca", n_dims=2, growth=None, rng=0, **FAST)
    return genes


def test_velocity_genes_is_pcs_times_velocity(pca_fit):
    adata = pca_fit.copy()
    scam.tl.velocity_genes(adata)
    out = adata.layers["velocity_genes"]
    assert out.dtype == np.float32 and out.shape == (adata.n_obs, adata.n_vars)
    model = scam.tl.get_model(adata)
    x = adata.obsm["X_pca"][:, :2].astype(float)
    t = adata.obs["time"].to_numpy(float)
    v = model.velocity(x, t)
    expected = v @ np.asarray(adata.varm["PCs"])[:, :2].T
    hv = adata.var["highly_variable"].to_numpy()
    np.testing.assert_allclose(out[:, hv], expected[:, hv], rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert np.isnan(out[:, ~hv]).all()  # genes outside the PCA are unknown
    # consistent with the velocity the fit stored in obsm
    np.testing.assert_allclose(v, adata.obsm["action_matching_velocity"], rtol=1e-5, atol=1e-6)
    copied = scam.tl.velocity_genes(pca_fit, layer_added="vg", copy=True)
    assert "vg" not in pca_fit.layers and np.array_equal(copied.layers["vg"], out, equal_nan=True)


def test_velocity_genes_refuses_non_pca(pca_fit):
    adata = pca_fit.copy()
    adata.obsm["X_other"] = adata.obsm["X_pca"].copy()
    entry = dict(adata.uns["action_matching"])
    entry["params"] = {**entry["params"], "use_rep": "X_other"}
    adata.uns["other"] = entry
    with pytest.raises(ValueError, match="only be recovered from scanpy's PCA.*use_rep='X_other'"):
        scam.tl.velocity_genes(adata, key="other")
    del adata.varm["PCs"]
    with pytest.raises(ValueError, match=r"varm\['PCs'\]` is missing"):
        scam.tl.velocity_genes(adata)
    assert "velocity_genes" not in adata.layers


# ============================================================================ scam.pl.gene_trends
def test_pl_gene_trends_draws_stored_means(linear):
    adata, _, _ = linear
    adata = adata.copy()
    scam.tl.gene_trends(adata, genes=["g0", "g1"], groups="half")
    entry = adata.uns["action_matching_gene_trends"]
    fig = scam.pl.gene_trends(adata, genes=["g1", "g0"], return_fig=True, show=False, lw=3.0)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["g1", "g0"] and lines[0].get_linewidth() == 3.0
    np.testing.assert_allclose(lines[0].get_ydata(), entry["mean"][:, 1])
    np.testing.assert_allclose(lines[0].get_xdata(), entry["times"])
    fig = scam.pl.gene_trends(adata, genes=["g0", "g1"], groups=["up"], return_fig=True, show=False)
    assert len(fig.axes) == 2
    up = fig.axes[1].get_lines()[0]
    np.testing.assert_allclose(up.get_ydata(), entry["group_means"][list(entry["group_names"]).index("up"), :, 1])
    _, ax = plt.subplots()
    assert scam.pl.gene_trends(adata, genes="g0", ax=ax, show=False) is None and len(ax.get_lines()) == 1
    with pytest.raises(KeyError, match="g3"):
        scam.pl.gene_trends(adata, genes=["g3"])
    with pytest.raises(KeyError, match="Run `scam.tl.gene_trends` first"):
        scam.pl.gene_trends(adata, genes=["g0"], key="none")
    scam.tl.gene_trends(adata, genes=["g0"], key_added="nogroups")
    with pytest.raises(ValueError, match="groups="):
        scam.pl.gene_trends(adata, genes=["g0"], key="nogroups", groups=True)
    plt.close("all")
