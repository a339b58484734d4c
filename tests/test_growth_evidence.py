"""Growth read off snapshots (scam.core.growth): none for pure transport, per-branch for branches.

Path-level checks, no training: the evidence test against the affine null, the growth factors of the
'weighted' coupling, and the inheritance of rates by gaps where the data say nothing. The fitted
rates are checked by tests/test_ground_truth.py and benchmarks/ground_truth.py.
"""

from __future__ import annotations

import numpy as np
import ot
import pytest

from scam.core import PathConfig, SnapshotPath
from scam.core.growth import (
    EVIDENCE_CELLS,
    GRID,
    MIN_EXCESS,
    PLATEAU,
    _affine_push,
    _Destroyed,
    _emd,
    factor_agreement,
    growth_evidence,
    growth_factors,
    median_sq_displacement,
    placed_growth,
)
from scam.core.growth_plans import cell_rates
from scam.datasets._synthetic import branching_growth, gaussian_geodesic, mixture_growth, ornstein_uhlenbeck


def standardised(xs):
    pooled = np.concatenate(xs)
    return [(x - pooled.mean(0)) / np.sqrt(pooled.var(0).mean()) for x in xs]


@pytest.mark.parametrize(
    "xs",
    [
        pytest.param(gaussian_geodesic(1000, rng=0).xs, id="geodesic"),
        pytest.param(ornstein_uhlenbeck(1000, times=(0.0, 1.0), sigma=0.5, mean0=2.0, std0=0.5, rng=0).xs, id="ou"),
    ],
)
def test_pure_transport_shows_no_growth(xs):
    """Unbalanced OT destroys several % of a deforming Gaussian's mass (its tail travels far), and so
    does the affine null: no excess, no growth, and the 'weighted' plan is the balanced OT plan."""
    z = standardised(xs)
    gap = growth_evidence(z[0], z[1], rng=np.random.default_rng(0))
    assert len(gap.destroyed) == len(gap.null) == len(GRID)
    assert gap.destroyed[0] > 0.05  # the statistic alone would call this growth
    assert abs(gap.excess) < MIN_EXCESS and gap.threshold is None, gap
    ends = np.array([0.0, 1.0])
    path = SnapshotPath(z, ends, np.ones(2), PathConfig(coupling="weighted"), rng=np.random.default_rng(0))
    balanced = SnapshotPath(z, ends, np.ones(2), PathConfig(coupling="ot"), rng=np.random.default_rng(0))
    assert not path.changes_mass
    np.testing.assert_allclose(path.plans[0].cdf[-1], 1.0)
    assert path.plans[0].n_pairs == balanced.plans[0].n_pairs
    np.testing.assert_allclose(path.plans[0].log_ra, 0.0, atol=1e-9)


@pytest.mark.parametrize("case", ["transport", "branching", "more_mass", "far_apart"])
def test_skipped_thresholds_cannot_change_the_outcome(case):
    """The evidence stops trying thresholds once the destroyed mass is below what could matter; on the
    same draws, the whole grid gives the same excess (when it is evidence) and the same threshold, and the
    destroyed mass never rises with the threshold (the bound the skipping relies on)."""
    tc = branching_growth(1000, rng=0) if case == "branching" else gaussian_geodesic(1000, rng=0)
    z = standardised(tc.xs)
    x0, x1 = (z[2], z[3]) if case == "branching" else (z[0], z[1])
    if case == "far_apart":  # a tight cloud that moves far: nothing destroyed from a low threshold on
        x0, x1 = 0.2 * x0, 0.2 * x1 + 5.0
    m1 = 1.5 if case == "more_mass" else 1.0
    gap = growth_evidence(x0, x1, 1.0, m1, rng=np.random.default_rng(3))
    rng = np.random.default_rng(3)  # the same draws as growth_evidence
    n = min(EVIDENCE_CELLS, len(x0) // 2, len(x1))
    perm = rng.permutation(len(x0))
    half_a, half_b = x0[perm[:n]], x0[perm[n : 2 * n]]
    target = x1[rng.choice(len(x1), n, replace=False)]
    real_at = _Destroyed(half_a, target, 1.0, m1)
    null_at = _Destroyed(half_a, _affine_push(x0, x1, half_b), 1.0, m1)
    real = np.array([real_at(c) for c in GRID])
    null = np.array([null_at(c) for c in GRID])
    assert np.all(np.diff(real) <= 1e-9) and np.all(np.diff(null) <= 1e-9)
    done = ~np.isnan(gap.destroyed)
    np.testing.assert_allclose(np.array(gap.destroyed)[done], real[done], atol=1e-12)
    done_null = ~np.isnan(gap.null)
    np.testing.assert_allclose(np.array(gap.null)[done_null], null[done_null], atol=1e-12)
    full_excess = float(np.max(real - null))
    assert gap.excess == pytest.approx(full_excess, abs=1e-12)
    if full_excess > MIN_EXCESS:
        assert gap.threshold == GRID[int(np.argmax(real - null >= PLATEAU * full_excess))]
    else:
        assert gap.threshold is None
    if case == "branching":
        assert gap.threshold is not None and not done.all()  # growth found, and some plans skipped
    if case == "transport":
        assert gap.threshold is None
    if case == "far_apart":  # nothing destroyed at the lowest threshold: only the null's highest is solved
        assert np.all(np.array(gap.destroyed) == 0) and np.isnan(gap.null[:-1]).all() and gap.threshold is None


@pytest.fixture(scope="module")
def branching():
    tc = branching_growth(1000, rng=0)
    return tc, standardised(tc.xs)


def test_branches_show_growth_and_get_their_own_rates(branching):
    """Later gaps of the branching system: the dying branch's mass cannot move without crossing to the
    other branch, so the excess over the null is growth; each branch's factor matches its own mass
    change in the data (equal totals: relative rates) within 0.1 in log, whether the thresholds' unit
    is measured again on every cell or taken from the evidence test (its half of the source cells:
    within 15% of every cell's)."""
    tc, z = branching
    rng = np.random.default_rng(0)
    for k in (2, 3):
        gap = growth_evidence(z[k], z[k + 1], rng=rng)
        assert gap.excess > MIN_EXCESS and gap.threshold is not None, gap
        cost = ot.dist(z[k], z[k + 1])
        n0, n1 = cost.shape
        whole = median_sq_displacement(_emd(np.full(n0, 1 / n0), np.full(n1, 1 / n1), cost), cost)
        assert abs(np.log(gap.scale / whole)) < np.log(1.15), (gap.scale, whole)
        f = growth_factors(z[k], z[k + 1], 1.0, 1.0, cost, gap.threshold, rng=rng)
        given, _ = placed_growth(z[k], z[k + 1], 1.0, 1.0, cost, gap.threshold, rng=rng, scale=gap.scale)
        b0, b1 = tc.info["branch"][k], tc.info["branch"][k + 1]
        for factors in (f, given):
            for b in (0, 1):
                observed = np.mean(b1 == b) / np.mean(b0 == b)  # the branch's mass ratio (equal totals)
                mean = factors[b0 == b].mean()
                assert abs(np.log(mean / observed)) < 0.1, (k, b, mean, observed)
            np.testing.assert_allclose(factors.mean(), 1.0, atol=0.05)  # total mass kept (equal totals)


def test_weighted_path_inherits_rates_where_the_data_say_nothing(branching):
    """At t = 0 the branches touch (no evidence in the first gap); the first gap inherits the rates its
    targets have in the next one, so the branches already grow and die at different rates there."""
    tc, z = branching
    u = tc.times / tc.times[-1]
    path = SnapshotPath(z, u, np.ones(len(z)), PathConfig(coupling="weighted"), rng=np.random.default_rng(0))
    assert path.growth[0].threshold is None and any(g.threshold is not None for g in path.growth[1:])
    rates = cell_rates(path.plans[0], len(z[0]), u[1] - u[0], "target")
    b1 = tc.info["branch"][1]
    assert rates[b1 == 0].mean() - rates[b1 == 1].mean() > 0.5 * (0.8 + 0.6) * tc.times[-1]


def test_growth_factors_between_unequal_masses_keep_the_total():
    """Counts proportional to the population of a two-state mixture with a linear growth field:
    the factors follow the states' own growth and add up to the new total mass."""
    tc = mixture_growth(1500, times=(0.0, 0.5), rng=0)
    gen = np.random.default_rng(0)
    share = tc.masses / tc.masses.max()
    keep = [gen.choice(len(x), int(round(m * len(x))), replace=False) for x, m in zip(tc.xs, share)]
    xs = [x[k] for x, k in zip(tc.xs, keep)]
    comp = [c[k] for c, k in zip(tc.info["component"], keep)]
    z = standardised(xs)
    m1 = len(xs[1]) / len(xs[0])
    gap = growth_evidence(z[0], z[1], 1.0, m1, rng=gen)
    assert gap.threshold is not None
    f = growth_factors(z[0], z[1], 1.0, m1, ot.dist(z[0], z[1]), gap.threshold, rng=gen)
    np.testing.assert_allclose(f.mean(), m1, rtol=0.02)
    for c in (0, 1):
        observed = np.sum(comp[1] == c) / np.sum(comp[0] == c)
        assert abs(np.log(f[comp[0] == c].mean() / observed)) < 0.1, (c, f[comp[0] == c].mean(), observed)


def test_growth_seen_but_not_placed_is_reported_not_silenced(branching):
    """A gap of the branching system shows growth; with every source cell it is placed on the branches
    (a growth network is fitted), with 40 source cells (a single state) it cannot be: every rate is 0,
    the fit says so in its label and in a warning naming the gap and the fix."""
    from scam.core import PotentialConfig, TrainConfig, fit

    tc, _ = branching
    xs, times = [tc.xs[2], tc.xs[3]], tc.times[2:4]
    cfg = TrainConfig.from_flat(growth_weight=1.0, n_steps=5, eval_every=5)
    net = PotentialConfig(dim=xs[0].shape[1], hidden=16, n_layers=2)
    placed = fit(xs, times, config=cfg, network=net, rng=0, progress=False)
    assert placed.info["growth"] == "network" and placed.growth_net is not None
    small = [xs[0][np.random.default_rng(0).choice(len(xs[0]), 40, replace=False)], xs[1]]
    match = r"show growth between time points .* could not be placed.*score_growth"
    with pytest.warns(UserWarning, match=match) as rec:
        unplaced = fit(small, times, config=cfg, network=net, rng=0, progress=False)
    assert [w.filename for w in rec if "could not be placed" in str(w.message)] == [__file__]  # the caller's line
    assert unplaced.info["growth_evidence"][0]["threshold"] is not None
    assert unplaced.info["growth"] == "none (evidence not placed)" and unplaced.growth_net is None


def test_growth_map_of_separate_lineages_does_not_depend_on_the_clustering():
    """Three well-separated states whose shares change with a growth field: every clustering into
    states finds the same compartments, so the growth maps of independent clusterings agree."""
    tc = mixture_growth(1500, times=(0.0, 1.0), means0=((-8.0, 0.0), (0.0, 0.0), (8.0, 0.0)),
                        growth_slope=(0.08, 0.0), rng=0)
    z = standardised(tc.xs)
    gap = growth_evidence(z[0], z[1], rng=np.random.default_rng(0))
    assert gap.threshold is not None, gap
    cost = ot.dist(z[0], z[1])
    agreement = factor_agreement(z[0], z[1], 1.0, 1.0, cost, gap.threshold, rng=np.random.default_rng(0))
    assert 0.8 < agreement <= 1.0 + 1e-12, agreement
    # a single state (too few cells to split): every clustering gives every cell one factor, they agree
    few = factor_agreement(z[0][:60], z[1][:60], 1.0, 1.0, cost[:60, :60], gap.threshold,
                           rng=np.random.default_rng(0))
    assert few == 1.0
