"""Hand-off to CellRank 2: scam's couplings drive a RealTimeKernel, GPCCA computes fate probabilities.

On the LARRY subset shipped with scam (real genes, cell types, days 2/4/6), with a short fit. Skipped
when the optional extra is not installed (``pip install -e ".[cellrank]"``; ``make test`` installs it).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import scam

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def larry_fit():
    adata = scam.datasets.load("larry_genes")
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=1000)
    sc.pp.pca(adata, n_comps=30, random_state=0)
    sc.pp.neighbors(adata, n_pcs=10, random_state=0)
    # time_info holds the days as categories ('2', '4', '6'), as RealTimeKernel wants them
    scam.tl.action_matching(adata, "time_info", n_dims=10, rng=0, progress=False, config={"n_steps": 400})
    return adata


def test_couplings_to_realtime_kernel_to_gpcca(larry_fit):
    cr = pytest.importorskip("cellrank")
    adata = larry_fit
    cpl = scam.tl.couplings(adata)
    assert list(cpl) == [("2", "4"), ("4", "6")]  # keys are the categories of obs['time_info']

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rtk = cr.kernels.RealTimeKernel(adata, time_key="time_info", couplings=cpl)
        rtk.compute_transition_matrix(self_transitions="all", conn_weight=0.2, threshold="auto")
        T = rtk.transition_matrix
        np.testing.assert_allclose(np.asarray(T.sum(axis=1)).ravel(), 1.0, atol=1e-6)

        g = cr.estimators.GPCCA(rtk)
        day, state = adata.obs["day"].to_numpy(), adata.obs["state_info"].astype(str).to_numpy()
        terminal = np.where((day == 6) & np.isin(state, ["Neutrophil", "Monocyte"]), state, None)
        g.set_terminal_states(pd.Series(pd.Categorical(terminal), index=adata.obs_names))
        g.compute_fate_probabilities()
    fp = g.fate_probabilities
    probs = pd.DataFrame(np.asarray(fp), index=adata.obs_names, columns=list(fp.names))
    assert set(probs.columns) == {"Neutrophil", "Monocyte"}
    # rows are distributions over the two fates (CellRank solves a linear system: up to solver tolerance)
    assert (probs.to_numpy() >= -1e-6).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    # meaning: day-4 cells annotated Neutrophil (Monocyte) mostly become day-6 Neutrophils (Monocytes)
    for lineage, other in (("Neutrophil", "Monocyte"), ("Monocyte", "Neutrophil")):
        sel = (day == 4) & (state == lineage)
        assert sel.sum() > 30
        assert probs.loc[sel, lineage].mean() > 0.75, probs.loc[sel].mean()
        assert probs.loc[sel, lineage].mean() > probs.loc[sel, other].mean() + 0.5
    # the day-2 progenitors are not all committed to one fate
    early = probs[day == 2]
    assert 0.1 < early["Neutrophil"].mean() < 0.9


def test_couplings_follow_the_fit(larry_fit):
    """Without CellRank: every day-2 and day-4 cell has descendants, rows carry descendant mass."""
    cpl = scam.tl.couplings(larry_fit)
    for (t1, t2), c in cpl.items():
        assert c.n_obs == int((larry_fit.obs["time_info"] == t1).sum())
        assert c.n_vars == int((larry_fit.obs["time_info"] == t2).sum())
        rows = np.asarray(c.X.sum(axis=1)).ravel()
        assert (rows > 0).all()
        np.testing.assert_allclose(rows.mean(), 1.0, rtol=0.05)


def test_fates_on_real_data_are_not_flat(larry_fit, caplog):
    """Differentiation changes the drift with time: with three time points the noise a time-homogeneous drift
    would imply cannot be checked and is not used (logged as information: the check exists for it, no warning);
    the descendants follow the flow instead of spreading over the whole next population."""
    adata = larry_fit
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="scam"):
        warnings.simplefilter("always")
        table = scam.tl.fate_probabilities(adata, source_time=4, target_time=6, groupby="state_info")
    assert "is not used" in caplog.text and "cannot be checked" in caplog.text
    assert not [w for w in caught if "not used" in str(w.message)]
    params = adata.uns["action_matching_fates"]["params"]
    assert params["sigma_source"] == "rejected" and params["sigma"] == 0.0 and params["chain"] == "flow"
    assert params["sigma_estimate"] > params["sigma_bound"] > 0
    day, state = adata.obs["day"].to_numpy(), adata.obs["state_info"].astype(str).to_numpy()
    for lineage in ("Neutrophil", "Monocyte"):
        sel = state[day == 4] == lineage
        assert table.loc[sel, lineage].mean() > 0.75, table.loc[sel].mean()
