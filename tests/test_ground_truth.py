"""At a test-sized budget, the defaults recover known dynamics (benchmarks/ground_truth.py, the
same rows at the full budget; ``--budget test`` runs these settings and shows the same pass/fail).

Only ``adata``, the time key and ``growth`` are passed (plus the smaller network and step budget):
pure transport gives a velocity within 5% and no growth; branches growing and dying at known rates,
and a smooth growth field on two cell states, are recovered from cell counts.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import scam
from scam.datasets._synthetic import branching_growth, gaussian_geodesic, mixture_growth

pytestmark = pytest.mark.slow

BUDGET = dict(network={"hidden": 64}, config={"n_steps": 800, "batch_size": 256}, progress=False, rng=0)


def as_adata(tc, **obs) -> ad.AnnData:
    x = np.concatenate(tc.xs).astype(np.float32)
    times = np.concatenate([np.full(len(v), t) for v, t in zip(tc.xs, tc.times)])
    adata = ad.AnnData(X=x.copy(), obs=pd.DataFrame({"time": times, **obs}, index=[f"c{i}" for i in range(len(x))]))
    adata.obsm["X_pca"] = x
    return adata


def interior_times(tc):
    grid = np.linspace(tc.times[0], tc.times[-1], 4 * (len(tc.times) - 1) + 1)
    return [t for t in grid if not np.any(np.isclose(t, tc.times))]


@pytest.mark.parametrize("config", [{}, {"growth_model": "potential"}], ids=["default", "paper_potential"])
def test_pure_transport_geodesic(config):
    """2-D anisotropic W2 geodesic (3000 cells per end), growth='learn' (the default): the default's
    velocity error <= 5%, mean |growth| <= 0.05, mass flat within 2%. The paper's single potential on
    the same data invents growth (the reason it is not the default)."""
    tc = gaussian_geodesic(3000, rng=0)
    adata = as_adata(tc)
    scam.tl.action_matching(adata, "time", **{**BUDGET, "config": {**BUDGET["config"], **config}})
    model = scam.tl.get_model(adata)
    err = scam.metrics.velocity_error(model.velocity, tc, interior_times(tc), n_cells=1000, rng=1)
    growth = float(np.mean(np.abs(adata.obs["action_matching_growth"])))
    mass = np.max(np.abs(adata.uns["action_matching"]["mass"]["model"] - 1))
    if not config:
        assert err <= 0.05 and growth <= 0.05 and mass <= 0.02, (err, growth, mass)
        assert adata.uns["action_matching"]["params"]["growth_fit"] == "none (no evidence)"
    else:
        assert growth > 0.3 and err > 0.1, (err, growth)


def branch_rates(adata, tc, interior=(0.5, 1.0, 1.5)):
    table = scam.metrics.growth_by_group(adata.obs["action_matching_growth"], adata.obs["branch"], adata.obs["time"])
    return table.loc[list(interior), list(tc.info["branch_names"])].to_numpy().mean(axis=0)


@pytest.fixture(scope="module")
def branching():
    tc = branching_growth(3000, rng=0).proportional_counts(0)
    names = np.asarray(tc.info["branch_names"])
    return tc, as_adata(tc, branch=names[np.concatenate(tc.info["branch"])])


def test_branch_rates_from_counts(branching):
    """Branches at +0.8 and -0.6 per time unit, cell counts proportional to the population,
    growth='counts': each branch's mean rate at the interior times within 15%."""
    tc, adata = branching
    adata = adata.copy()
    scam.tl.action_matching(adata, "time", growth="counts", **BUDGET)
    est = branch_rates(adata, tc)
    np.testing.assert_allclose(est, tc.info["rates"], rtol=0.15)


def test_relative_branch_rates_with_equal_totals(branching):
    """The same cells with growth='learn' (equal totals): rates relative to the population average
    (truth: rate - d log M / dt) within 15%."""
    tc, adata = branching
    adata = adata.copy()
    scam.tl.action_matching(adata, "time", growth="learn", **BUDGET)
    rates = tc.info["rates"]
    interior = np.array([0.5, 1.0, 1.5])
    mass = 0.5 * np.exp(np.outer(interior, rates))
    truth = (rates[None, :] - ((mass * rates).sum(1) / mass.sum(1))[:, None]).mean(axis=0)
    np.testing.assert_allclose(branch_rates(adata, tc), truth, rtol=0.15)


def test_smooth_growth_field_on_two_states():
    """g(x) = 0.3 x_1 on two cell states (counts proportional to the population): correlation >= 0.9
    between the learned and the true rate over the observed cells."""
    tc = mixture_growth(3000, times=(0.0, 0.5, 1.0), rng=0).proportional_counts(0)
    adata = as_adata(tc)
    scam.tl.action_matching(adata, "time", growth="counts", **BUDGET)
    est = adata.obs["action_matching_growth"].to_numpy()
    true = tc.growth_rate(adata.obsm["X_pca"].astype(float), 0.0)
    assert np.corrcoef(est, true)[0, 1] >= 0.9
