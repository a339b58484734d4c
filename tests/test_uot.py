"""The exact unbalanced coupling (``coupling='uot'``): the LP against its closed form, the path's
masses, and a fitted model against the Fisher-Rao death profile it should learn."""

from __future__ import annotations

import numpy as np
import ot
import pytest

from scam.core import PathConfig, PotentialConfig, SnapshotPath, TrainConfig, fit
from scam.core.couplings import build_plan
from scam.core.growth import tv_unbalanced

SHIFT = np.array([1.0, 0.0])


def dying_cluster(n=400, far=8.0, rng=0):
    """t=0: a cluster at the origin (A) and an equally large one at (0, far) (D); t=1: A moved by SHIFT.

    D has no counterpart at t=1: it dies (relative masses 1 -> 1/2).
    """
    rng = np.random.default_rng(rng)
    a = 0.3 * rng.standard_normal((n, 2))
    d = 0.3 * rng.standard_normal((n, 2)) + [0.0, far]
    b = 0.3 * rng.standard_normal((n, 2)) + SHIFT
    return np.concatenate([a, d]), b


def test_tv_unbalanced_matches_brute_force_objective():
    """The dummy-cell LP attains the TV-relaxed optimum: no feasible plan of a tiny problem does better."""
    rng = np.random.default_rng(0)
    x0, x1 = rng.standard_normal((4, 2)), rng.standard_normal((3, 2)) + [2.0, 0.0]
    a, b = np.full(4, 0.25), np.full(3, 1 / 3)
    cost = ot.dist(x0, x1)
    thr = float(np.median(cost))
    aug = tv_unbalanced(a, b, cost, thr)
    plan, dead, born = aug[:4, :3], aug[:4, 3], aug[4, :3]
    np.testing.assert_allclose(plan.sum(1) + dead, a, atol=1e-12)
    np.testing.assert_allclose(plan.sum(0) + born, b, atol=1e-12)

    def objective(p):
        return (p * cost).sum() + thr / 2 * (np.abs(a - p.sum(1)).sum() + np.abs(b - p.sum(0)).sum())

    best = objective(plan)
    for _ in range(3000):  # random feasible sub-plans never beat the LP
        p = rng.random((4, 3)) * (rng.random((4, 3)) < 0.5)
        p *= min(1.0, *(a / np.maximum(p.sum(1), 1e-12)), *(b / np.maximum(p.sum(0), 1e-12)))
        assert objective(p) >= best - 1e-12
    # a pair is transported only if its cost is below the threshold
    assert np.all(cost[plan > 1e-12] <= thr + 1e-9)


def test_tv_unbalanced_equal_masses_matches_the_dummy_cell_lp():
    """Equal masses take the truncated-cost EMD: same optimum as the LP with one dummy cell a side."""
    rng = np.random.default_rng(3)
    x0, x1 = rng.standard_normal((40, 2)), rng.standard_normal((50, 2)) * 1.5 + [1.0, 0.0]
    a, b = np.full(40, 1 / 40), np.full(50, 1 / 50)
    cost = ot.dist(x0, x1)
    thr = float(np.quantile(cost, 0.2))
    aug = tv_unbalanced(a, b, cost, thr)
    lp = np.zeros((41, 51))
    lp[:40, :50] = cost
    lp[:40, 50] = lp[40, :50] = thr / 2
    ref = ot.emd(np.append(a, 1.0), np.append(b, 1.0), lp)
    np.testing.assert_allclose(aug.sum(1), np.append(a, 1.0), atol=1e-12)  # a feasible augmented plan
    np.testing.assert_allclose(aug.sum(0), np.append(b, 1.0), atol=1e-12)
    np.testing.assert_allclose((aug * lp).sum(), (ref * lp).sum(), rtol=1e-10)
    assert 0.05 < aug[:40, 50].sum() < 0.95  # the threshold binds: some mass dies, some moves
    assert np.all(cost[aug[:40, :50] > 0] <= thr)


def test_uot_plan_destroys_the_far_cluster():
    """Cells with no counterpart within the threshold die; the rest move one to one."""
    x0, x1 = dying_cluster(100)
    plan = build_plan(x0, x1, 1.0, 0.5, PathConfig(coupling="uot", uot_threshold=3.0), rng=np.random.default_rng(0))
    pairs, dead, born = plan.kind == 0, plan.kind == 1, plan.kind == 2
    p = np.diff(np.r_[0.0, plan.cdf])
    np.testing.assert_allclose(p[dead].sum(), 0.5, atol=1e-9)  # all of D (mass 1/2) dies
    assert set(plan.src[dead]) == set(range(100, 200))
    np.testing.assert_allclose(p[pairs].sum(), 0.5, atol=1e-9)  # all of A is carried over
    assert np.all(plan.src[pairs] < 100)
    assert p[born].sum() < 1e-9  # nothing to create: masses 1 -> 1/2
    np.testing.assert_allclose(plan.total_mass, 1.0)


def test_uot_large_threshold_is_balanced_ot():
    rng = np.random.default_rng(1)
    x0, x1 = rng.standard_normal((60, 2)), rng.standard_normal((60, 2)) + 1
    plan = build_plan(x0, x1, 1.0, 1.0, PathConfig(coupling="uot", uot_threshold=1e6), rng=np.random.default_rng(0))
    assert np.all(plan.kind == 0)
    exact = ot.emd2(np.full(60, 1 / 60), np.full(60, 1 / 60), ot.dist(x0, x1))
    p = np.diff(np.r_[0.0, plan.cdf])
    np.testing.assert_allclose((p * ((x0[plan.src] - x1[plan.tgt]) ** 2).sum(1)).sum(), exact, rtol=1e-9)


def test_uot_path_masses_follow_fisher_rao_profile():
    """Mass estimator of the path: snapshot masses at the ends, 1/2 + 1/2 (1 - u)^2 in between."""
    x0, x1 = dying_cluster(200)
    rng = np.random.default_rng(0)
    path = SnapshotPath([x0, x1], np.array([0.0, 1.0]), np.array([1.0, 0.5]), PathConfig(coupling="uot"), rng=rng)
    for u in (1e-9, 0.25, 0.5, 0.75, 1 - 1e-9):
        x, w, *_ = path.sample_path(np.full(40000, u), rng)
        x, w = x.numpy(), w.numpy()
        assert abs(w.mean() - (0.5 + 0.5 * (1 - u) ** 2)) < 0.02, (u, w.mean())
        in_d = x[:, 1] > 4  # dying cells stay where they are
        np.testing.assert_allclose(x[in_d, 1].mean(), 8.0, atol=0.1)


def test_uot_needs_growth():
    x0, x1 = dying_cluster(20)
    with pytest.raises(ValueError, match="growth_weight"):
        fit([x0, x1], [0.0, 1.0], config=TrainConfig.from_flat(coupling="uot", n_steps=5), progress=False)


@pytest.mark.slow
def test_uot_model_learns_the_death_profile():
    """Pushed with its weights, the dying cluster keeps (1 - t)^2 of its mass: share 0.2 at t = 1/2."""
    x0, x1 = dying_cluster(400)
    model = fit(
        [x0, x1], [0.0, 1.0], masses=[1.0, 0.5],
        network=PotentialConfig(dim=2, hidden=64, n_layers=3),
        config=TrainConfig.from_flat(n_steps=1500, growth_weight=1.0, coupling="uot"), rng=0, progress=False,
    )
    for t, share in ((0.25, 0.5625 / 1.5625), (0.5, 0.2)):
        pos, w = model.push(x0, 0.0, t, return_weights=True)
        dying = np.arange(len(x0)) >= 400
        assert abs(w[dying].sum() - share) < 0.05, (t, w[dying].sum(), share)
        # the surviving cluster moves by t * SHIFT
        np.testing.assert_allclose(pos[~dying].mean(0) - x0[~dying].mean(0), t * SHIFT, atol=0.1)
