"""Branch-specific growth on the branching system (0.8 proliferating, -0.6 dying).

What decides whether per-branch rates are recoverable is the path between snapshots: a balanced OT
plan (pair masses interpolated geometrically, one growth rate for all pairs of a segment) explains the
change in branch composition by moving mass *across* branches. Plans that carry growth (unbalanced OT,
or OT weighted by a per-cell prior) keep mass within branches. The first test checks the paths (no
training); the second trains a model with a noisy per-cell prior (marked slow). The default
("weighted" plans, growth from the data alone) is checked in tests/test_ground_truth.py and
tests/test_growth_evidence.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from scam.core import PathConfig, SnapshotPath
from scam.datasets._synthetic import branching_growth


@pytest.fixture(scope="module")
def branching():
    return branching_growth(600, rng=0)


def _internal(tc):
    pooled = np.concatenate(tc.xs)
    return [(x - pooled.mean(0)) / np.sqrt(pooled.var(0).mean()) for x in tc.xs], tc.times / tc.times[-1]


def _cross_branch_mass(tc, path):
    """Fraction of each segment's plan mass pairing cells of different branches."""
    out = []
    for k, plan in enumerate(path.plans):
        p = np.diff(np.concatenate([[0.0], plan.cdf]))
        bi, bj = tc.info["branch"][k][plan.src], tc.info["branch"][k + 1][plan.tgt]
        out.append(float(p[bi != bj].sum() / p.sum()))
    return np.array(out)


def test_default_coupling_moves_mass_across_branches(branching):
    zs, u = _internal(branching)
    rng = np.random.default_rng(0)
    ot = SnapshotPath(zs, u, branching.masses, PathConfig(coupling="ot"), rng=rng)
    uot = SnapshotPath(zs, u, branching.masses, PathConfig(coupling="unbalanced", ot_reg=0.05, reg_m=0.1), rng=rng)
    prior = [branching.growth_rate(x, 0.0) * branching.times[-1] for x in branching.xs]
    weighted = SnapshotPath(zs, u, branching.masses, PathConfig(coupling="ot"), log_growth=prior, rng=rng)
    c_ot, c_uot, c_w = (_cross_branch_mass(branching, p) for p in (ot, uot, weighted))
    # the composition shift (branch 0: 50% -> 67% -> 80% -> 89% -> 94%) is made by transport
    assert c_ot[0] > 0.1 and c_ot.sum() > 0.3, c_ot
    # growth-carrying plans keep (almost) all mass inside its branch
    assert c_uot.max() < 0.05, c_uot
    # (at t = 0 the branches touch, so the first weighted plan still mixes a little)
    assert c_w[0] < 0.5 * c_ot[0] and c_w[1:].max() < 0.05, c_w
    assert c_uot.sum() < 0.25 * c_ot.sum() and c_w.sum() < 0.5 * c_ot.sum()


@pytest.mark.slow
def test_per_cell_prior_recovers_branch_rates():
    """With a noisy per-cell prior (what scam.pp.score_growth gives on real data) the learned growth
    rate of each branch is within 15% of the truth (0.8 / -0.6) at the interior time points."""
    import scam

    adata = scam.datasets.simulate("branching", n_cells=600, rng=0)
    truth = {"proliferating": 0.8, "dying": -0.6}
    rng = np.random.default_rng(1)
    rate = adata.obs["branch"].map(truth).to_numpy(dtype=float)
    adata.obs["growth_prior"] = rate + rng.normal(0.0, 0.25, adata.n_obs)  # noisy, like a gene score
    scam.tl.action_matching(adata, "time", growth="growth_prior", rng=0, progress=False)
    interior = adata.obs["time"].between(0.25, 1.75).to_numpy()
    got = adata.obs[interior].groupby("branch", observed=True)["action_matching_growth"].mean()
    for branch, true in truth.items():
        assert got[branch] == pytest.approx(true, rel=0.15), (branch, got[branch])
    # and the model's total mass follows the prior's population size at the last time point
    mass = adata.uns["action_matching"]["mass"]
    assert mass["model"][-1] == pytest.approx(mass["prior"][-1], rel=0.15)
