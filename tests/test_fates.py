"""Fate probabilities: the core math on hand-built cases, the ground-truth generator, the lineage metric,
and (slow) scam's default fates against known fates on a noisy double well and a deterministic branching."""

from __future__ import annotations

import numpy as np
import ot
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

import scam
from scam.core import fates as F


def test_kernel_coupling_matches_sinkhorn_by_hand():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(5, 2)) + 0.5
    w = np.array([1.0, 2.0, 1.0, 1.0, 0.5, 1.5])
    cov = 0.8 * np.eye(2)
    p = F.kernel_coupling(a, w, b, cov, n_iter=2000, tol=1e-10).toarray()
    plan = ot.sinkhorn(w / w.sum(), np.full(5, 0.2), ot.dist(a, b) / 2, reg=0.8, numItermax=100_000, stopThr=1e-12)
    np.testing.assert_allclose(p, plan / plan.sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # row masses times the rows give the column marginals (uniform)
    np.testing.assert_allclose((w / w.sum()) @ p, 0.2, atol=1e-6)


def test_kernel_coupling_invariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(50, 3))
    cov = np.diag([0.5, 0.2, 0.1])
    base = F.kernel_coupling(a, np.ones(40), b, cov).toarray()
    shifted = F.kernel_coupling(a + 3.0, np.ones(40), b + 3.0, cov).toarray()
    np.testing.assert_allclose(shifted, base, atol=1e-10)
    perm = rng.permutation(50)
    permuted = F.kernel_coupling(a, np.ones(40), b[perm], cov).toarray()
    np.testing.assert_allclose(permuted, base[:, perm], atol=1e-10)
    # a rotation of the whole picture (with the covariance) changes nothing
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = F.kernel_coupling(a @ q.T, np.ones(40), b @ q.T, q @ cov @ q.T).toarray()
    np.testing.assert_allclose(rotated, base, atol=1e-8)


def test_every_cell_reaches_every_reachable_group():
    """Two overlapping groups at the end: with a spread comparable to the gap, every start cell has
    descendants in both; with a tiny spread, cells far inside one group stay there."""
    rng = np.random.default_rng(2)
    start = rng.normal(size=(200, 2)) * 0.5
    end = np.r_[rng.normal(size=(150, 2)) * 0.5 + [1, 0], rng.normal(size=(150, 2)) * 0.5 - [1, 0]]
    onehot = np.repeat(np.eye(2), 150, axis=0)
    wide = F.absorption([F.kernel_coupling(start, np.ones(200), end, 0.5 * np.eye(2))], onehot)
    np.testing.assert_allclose(wide.sum(axis=1), 1.0)
    assert (wide > 0.01).all()
    assert np.corrcoef(wide[:, 0], start[:, 0])[0, 1] > 0.8  # graded along the axis between the groups
    narrow = F.absorption([F.kernel_coupling(start, np.ones(200), end, 1e-4 * np.eye(2))], onehot)
    assert np.mean((narrow[:, 0] < 0.01) | (narrow[:, 0] > 0.99)) > 0.9


def test_absorption_by_hand():
    p1 = sp.csr_matrix([[0.5, 0.5], [0.0, 1.0]])
    p2 = sp.csr_matrix([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    onehot = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(F.absorption([p1, p2], onehot), [[0.5, 0.5], [0.0, 1.0]])
    # a proliferating intermediate cell (mass 3) counts three times
    np.testing.assert_allclose(F.absorption([p1, p2], onehot, [np.array([3.0, 1.0])]), [[0.75, 0.25], [0.0, 1.0]])


def test_diffusion_from_potential_on_brownian_motion():
    """Pure diffusion from N(0, I): the probability-flow potential is s_t = -sigma^2 / 2 log rho_t."""
    rng = np.random.default_rng(3)
    sigma2, times = 0.5, np.array([0.0, 1.0, 2.0])
    var = 1.0 + sigma2 * times
    xs = [rng.normal(size=(3000, 2)) * np.sqrt(v) for v in var]

    def potential(x, t):
        v = 1.0 + sigma2 * t
        return -sigma2 / 2 * (-np.sum(x**2, axis=1) / (2 * v) - np.log(v))

    est, rec = F.diffusion_from_potential(potential, xs, times, rng=rng)
    # midpoints of the two gaps, geometric-mean slope: measured 0.56-0.59 for 0.5 (seeds 0-2)
    assert est == pytest.approx(sigma2, rel=0.25), rec
    assert rec["noise_times"] == "gap midpoints" and rec["n_pairs"] == 1
    # two snapshots: the potential at the snapshot times
    est2, rec2 = F.diffusion_from_potential(potential, xs[:2], times[:2], rng=rng)
    assert est2 == pytest.approx(sigma2, rel=0.25) and rec2["noise_times"] == "snapshot times", rec2
    # a small first snapshot limits the classifier, not the cells where the potential is compared
    small = [xs[0][:400], xs[1], xs[2]]
    est3, rec3 = F.diffusion_from_potential(potential, small, times, rng=rng)
    assert est3 == pytest.approx(sigma2, rel=0.4) and rec3["r"] < -0.5, rec3
    assert rec["r"] < -0.5
    # a potential that does not change has no noise to explain
    est0, _ = F.diffusion_from_potential(lambda x, t: np.sum(x**2, axis=1), xs, times, rng=rng)
    assert est0 == 0.0


def test_diffusion_bound_by_hand():
    """sigma^2 h d <= tr Cov(next population), h the chain's step: the tightest gap sets the bound."""
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(4000, 2)), rng.normal(size=(4000, 2)) * 2.0, rng.normal(size=(4000, 2)) * 3.0]
    times = np.array([0.0, 1.0, 3.0])
    # gap 1: tr Cov = 8, h = 1/4 -> 8 / (2 / 4) = 16; gap 2: tr Cov = 18, h = 2/4 -> 18 / (2 / 2) = 18
    assert F.diffusion_bound(xs, times, n_steps=4) == pytest.approx(16.0, rel=0.05)
    assert F.diffusion_bound(xs, times, n_steps=1) == pytest.approx(4.0, rel=0.05)


def test_descendant_noise_keeps_a_consistent_estimate_and_rejects_an_impossible_one():
    rng = np.random.default_rng(3)
    sigma2, times = 0.5, np.array([0.0, 1.0, 2.0, 3.0])
    xs = [rng.normal(size=(3000, 2)) * np.sqrt(1.0 + sigma2 * t) for t in times]

    def potential(x, t, scale=1.0):
        v = 1.0 + sigma2 * t
        return -scale * sigma2 / 2 * (-np.sum(x**2, axis=1) / (2 * v) - np.log(v))

    est, rec = F.descendant_noise(potential, xs, times, rng=rng)
    assert rec["sigma_source"] == "estimated" and est > 0 and rec["sigma"] == pytest.approx(np.sqrt(est))
    assert rec["sigma_bound"] ** 2 == pytest.approx(F.diffusion_bound(xs, times), rel=1e-9)
    # a potential that changes far more than the density explains implies a noise no population allows
    est, rec = F.descendant_noise(lambda x, t: potential(x, t, scale=1e3), xs, times, rng=rng)
    assert rec["sigma_source"] == "rejected" and est == 0.0 and rec["sigma"] == 0.0
    assert rec["sigma_estimate"] > rec["sigma_bound"]
    # three time points: one pair of gaps, the static drift the estimate rests on cannot be checked
    est, rec = F.descendant_noise(potential, xs[:3], times[:3], rng=rng)
    assert rec["n_pairs"] == 1 and rec["sigma_estimate"] > 0
    assert rec["sigma_source"] == "rejected" and est == 0.0 and "cannot be checked" in rec["sigma_check"]


def test_flow_fates_follow_the_flow_and_are_defined_far_from_every_group():
    """Without noise, descendants follow the flow and land on the observed cells within the push residual: a
    cell pushed between two groups is graded, and a cell far from both is still scored (log-space
    tails), with the nearer group ahead."""
    gen = np.random.default_rng(0)
    x0 = np.c_[np.linspace(-3, 3, 61), np.zeros(61)]
    x1 = np.r_[gen.normal([-2, 2], 0.3, size=(400, 2)), gen.normal([2, 2], 0.3, size=(400, 2))]
    onehot = np.r_[np.tile([1.0, 0.0], (400, 1)), np.tile([0.0, 1.0], (400, 1))]

    def trajectory(x, grid):  # moves every cell up by 2: cells with x < 0 land in the left group
        pos = np.stack([x + [0.0, 2.0 * (g - grid[0]) / (grid[-1] - grid[0])] for g in grid])
        return pos, np.zeros(pos.shape[:2])

    steps = F.flow_chain(trajectory, [x0, x1], np.array([0.0, 1.0]), rng=np.random.default_rng(1))
    p = F.flow_absorption(steps, [x0, x1], onehot)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.isfinite(p)) and np.all((p[:, 0] > 0) & (p[:, 1] > 0))  # none exactly certain or undefined
    assert np.all(np.diff(p[:, 0]) <= 1e-12)  # the further right the start, the less left
    np.testing.assert_allclose(p[30], [0.5, 0.5], atol=0.05)  # the symmetric middle cell
    assert p[0, 0] > 0.999 and p[-1, 1] > 0.999  # far out: the nearer group, not 0.5
    coupling = F.flow_coupling(steps[0], x1)
    np.testing.assert_allclose(np.asarray(coupling.sum(axis=1)).ravel(), 1.0, atol=1e-12)
    assert coupling[0, :400].sum() > 0.999  # the leftmost cell's descendants are in the left group


def test_double_well_generator():
    adata = scam.datasets.simulate("double_well", n_cells=200, rng=0, n_continuations=400, times=(0.0, 0.5, 1.0))
    fate = np.asarray(adata.uns["simulation"]["truth"]["fate"])
    x0 = adata.obsm["X_pca"][adata.obs["time"].to_numpy() == 0.0]
    assert fate.shape == (200,) and ((fate >= 0) & (fate <= 1)).all()
    assert np.mean((fate > 0.05) & (fate < 0.95)) > 0.5  # graded: noise decides near the saddle
    assert np.corrcoef(fate, x0[:, 0])[0, 1] > 0.8  # cells right of the saddle mostly go right
    right = adata.obs["branch"].astype(str).to_numpy() == "right"
    np.testing.assert_array_equal(right, adata.obsm["X_pca"][:, 0] > 0)
    again = scam.datasets.simulate("double_well", n_cells=200, rng=0, n_continuations=400, times=(0.0, 0.5, 1.0))
    np.testing.assert_array_equal(again.obsm["X_pca"], adata.obsm["X_pca"])


def test_fate_calibration_known_answers():
    q = np.linspace(0.05, 0.95, 50)
    perfect = scam.metrics.fate_calibration(q, q)
    assert perfect["pearson"] == pytest.approx(1.0) and perfect["ece"] == pytest.approx(0.0, abs=1e-12)
    assert perfect["brier_ratio"] == pytest.approx(1.0)
    certain = scam.metrics.fate_calibration((q > 0.5).astype(float), q)
    assert certain["certain"] == 1.0 and certain["brier_ratio"] > 1.5 and certain["ece"] > 0.2
    with pytest.raises(ValueError, match="same length"):
        scam.metrics.fate_calibration(q, q[:-1])


def _clones():
    """8 early cells, each in its own clone with 4 late sisters; early cell i has i // 2 Neu sisters of 4
    (clonal bias 0, 0, .25, .25, .5, .5, .75, .75) plus a ninth early cell with one sister."""
    rows, labels, early = [], [], []
    for i in range(8):
        rows.append(i)
        labels.append("undiff")
        early.append(True)
        for s in range(4):
            rows.append(i)
            labels.append("Neu" if s < i // 2 else "Mo")
            early.append(False)
    rows += [8, 8]
    labels += ["undiff", "Neu"]
    early += [True, False]
    clones = sp.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), rows)), shape=(len(rows), 9))
    return clones, np.array(early), np.array(labels)


def test_lineage_agreement_known_answers():
    clones, early, labels = _clones()
    bias, n = scam.metrics.clonal_fate_bias(clones, early, labels, fate="Neu", others="Mo")
    np.testing.assert_allclose(bias, [0, 0, .25, .25, .5, .5, .75, .75, 1.0])
    np.testing.assert_array_equal(n, [4] * 8 + [1])
    perfect = scam.metrics.lineage_agreement(bias, clones, early, labels, fate="Neu", others="Mo", min_sisters=2)
    assert perfect["pearson"] == pytest.approx(1.0) and perfect["auroc"] == pytest.approx(1.0)
    assert perfect["n_scored"] == 8 and perfect["n_excluded"] == 1  # the cell with one sister is left out
    reverse = scam.metrics.lineage_agreement(1 - bias, clones, early, labels, fate="Neu", others="Mo")
    assert reverse["pearson"] == pytest.approx(-1.0) and reverse["auroc"] == pytest.approx(0.0)
    # shuffled predictions on many clones: no agreement
    rng = np.random.default_rng(0)
    big = sp.block_diag([clones] * 50).tocsr()
    e, lab = np.tile(early, 50), np.tile(labels, 50)
    b, _ = scam.metrics.clonal_fate_bias(big, e, lab, fate="Neu", others="Mo")
    shuffled = scam.metrics.lineage_agreement(rng.permutation(b), big, e, lab, fate="Neu", others="Mo")
    assert abs(shuffled["pearson"]) < 0.15 and abs(shuffled["auroc"] - 0.5) < 0.1
    with pytest.raises(ValueError, match="early cells"):
        scam.metrics.lineage_agreement(bias[:3], clones, early, labels, fate="Neu", others="Mo")


def test_fate_method_is_checked_before_any_work():
    adata = scam.datasets.simulate("branching", n_cells=50, rng=0)
    with pytest.raises(ValueError, match="method"):
        scam.tl.fate_probabilities(adata, source_time=0.0, target_time=2.0, groupby="branch", method="nope")
    with pytest.raises(ValueError, match="sigma"):
        scam.tl.fate_probabilities(adata, source_time=0.0, target_time=2.0, groupby="branch", sigma=-1.0)


@pytest.fixture(scope="module")
def double_well_fit():
    adata = scam.datasets.simulate("double_well", n_cells=800, rng=0, n_continuations=1000)
    scam.tl.action_matching(adata, "time", use_rep="X_pca", rng=0, progress=False)
    return adata


@pytest.mark.slow
def test_double_well_fates_against_truth(double_well_fit):
    """Defaults (a deterministic fit; the spread is estimated) against the fate of every start cell."""
    adata = double_well_fit
    table = scam.tl.fate_probabilities(adata, source_time=0.0, target_time=2.0, groupby="branch")
    params = adata.uns["action_matching_fates"]["params"]
    assert params["method"] == "descendants" and params["sigma_source"] == "estimated" and params["sigma"] > 0
    score = scam.metrics.fate_calibration(table["right"].to_numpy(), adata.uns["simulation"]["truth"]["fate"])
    assert score["pearson"] >= 0.9, score
    assert score["brier_ratio"] <= 1.2, score
    assert score["certain"] == 0.0, score


@pytest.mark.slow
def test_double_well_fates_calibrated(double_well_fit):
    """Expected calibration error (10 bins) <= 0.05 with the estimated noise (measured 0.017-0.040 over
    seeds 0-3 and 800 / 1,000 cells a snapshot; the noise estimate 0.68-0.84 against the true 0.77)."""
    adata = double_well_fit
    table = scam.tl.fate_probabilities(adata, source_time=0.0, target_time=2.0, groupby="branch")
    params = adata.uns["action_matching_fates"]["params"]
    assert params["noise_times"] == "gap midpoints"
    assert params["sigma"] == pytest.approx(np.sqrt(2 * 0.3), rel=0.25), params
    score = scam.metrics.fate_calibration(table["right"].to_numpy(), adata.uns["simulation"]["truth"]["fate"])
    assert score["ece"] <= 0.05, score


@pytest.mark.slow
def test_deterministic_branching_fates():
    adata = scam.datasets.simulate("branching", n_cells=400, rng=0)
    scam.tl.action_matching(adata, "time", use_rep="X_pca", rng=0, progress=False)
    table = scam.tl.fate_probabilities(adata, source_time=0.0, target_time=2.0, groupby="branch")
    truth = adata.obs.loc[table.index, "branch"].astype(str).to_numpy() == "proliferating"
    assert roc_auc_score(truth, table["proliferating"]) >= 0.95
    assert isinstance(table, pd.DataFrame)


def test_push_residual_averages_independent_subsample_plans(monkeypatch):
    """The residual covariance (the fates' kernel width) from more cells than one plan takes: the mean over
    independent subsample plans, whose spread over draws is smaller than one plan's; with few enough
    cells, one plan on every cell (no draw at all)."""
    monkeypatch.setattr(F, "MAX_OT_CELLS", 150)
    gen = np.random.default_rng(0)
    pushed = gen.normal(size=(900, 2))
    observed = gen.normal(size=(900, 2)) + gen.normal(scale=0.3, size=(900, 2))
    weights = np.ones(len(pushed))

    def spread(draws):
        monkeypatch.setattr(F, "RESIDUAL_DRAWS", draws)
        traces = [np.trace(F.push_residual(pushed, weights, observed, rng=np.random.default_rng(s))) for s in range(12)]
        return np.std(traces), np.mean(traces)

    (sd1, m1), (sd4, m4) = spread(1), spread(4)
    assert sd4 < 0.7 * sd1  # four independent plans: about half the spread
    assert abs(m4 - m1) < 3 * sd1  # the same quantity
    small = pushed[:150], weights[:150], observed[:150]
    a = F.push_residual(*small, rng=np.random.default_rng(1))
    np.testing.assert_allclose(a, F.push_residual(*small, rng=np.random.default_rng(2)), rtol=1e-12)


def _student_samples(gen, n, scale, nu):
    """``n`` draws of a centred multivariate t (scale matrix ``scale``, ``nu`` degrees of freedom; Gaussian
    for ``nu = inf``): a Gaussian divided by the square root of an independent chi2 / nu."""
    z = gen.multivariate_normal(np.zeros(len(scale)), scale, size=n)
    return z if not np.isfinite(nu) else z / np.sqrt(gen.chisquare(nu, size=n) / nu)[:, None]


@pytest.mark.parametrize("nu", [3.0, 5.0, 13.0, np.inf])
def test_student_fit_recovers_the_tails_and_scale_of_the_residuals(nu):
    """The kernel's t by maximum likelihood: the degrees of freedom within one step of the grid, the scale
    matrix within 6%; Gaussian residuals get a Gaussian (or a t so light it is one: nu >= 34) whose
    scale is their covariance."""
    gen = np.random.default_rng(3)
    scale = np.array([[1.0, 0.4], [0.4, 0.5]])
    r = _student_samples(gen, 20_000, scale, nu)
    p = gen.uniform(0.5, 1.5, size=len(r))  # plan masses: any positive weights
    got_scale, got_nu = F.student_fit(r, p)
    grid = list(F.DOF_GRID)
    if np.isfinite(nu):
        assert abs(grid.index(got_nu) - grid.index(nu)) <= 1
        np.testing.assert_allclose(got_scale, scale, atol=0.06 * scale.max())
    else:
        assert got_nu >= 34.0
        np.testing.assert_allclose(got_scale, (r * (p / p.sum())[:, None]).T @ r, rtol=0.1)


def test_student_fit_of_no_residual_is_a_gaussian_of_zero_width():
    scale, nu = F.student_fit(np.zeros((50, 2)), np.ones(50))
    assert nu == np.inf
    np.testing.assert_array_equal(scale, 0.0)


def test_flow_kernel_follows_the_fitted_tails():
    """The flow chain's kernel is the fitted t: at m standard scales from the pushed point its log value is
    -(nu + d) / 2 log(1 + m^2 / nu) (Gaussian: -m^2 / 2), so far cells keep more weight under heavy tails."""
    images = np.zeros((1, 2))
    cells = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 6.0]])
    step = {"images": images, "cov": np.eye(2), "dof": 3.0}
    logk, nbr = F._kernel_log(step, cells)
    dist = np.linalg.norm(cells[nbr[0]], axis=1)
    np.testing.assert_allclose(logk[0], -2.5 * np.log1p(dist**2 / 3.0), rtol=1e-12)
    gauss, _ = F._kernel_log({**step, "dof": np.inf}, cells)
    np.testing.assert_allclose(gauss[0], -0.5 * dist**2, rtol=1e-12)
    assert logk[0, -1] - logk[0, 0] > gauss[0, -1] - gauss[0, 0]  # the far cell relatively heavier
