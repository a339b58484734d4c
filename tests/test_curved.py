"""Curved paths through several snapshots: populations that turn, and straight truth that stays straight."""

from __future__ import annotations

import numpy as np
import pytest

from scam.core import PathChoice, PathConfig, SnapshotPath, TrainConfig, fit
from scam.core.curved import Curved, curved_choice
from scam.datasets import rotating_blob
from scam.metrics import wasserstein


def _constant_velocity(n=800, n_snap=4, rng=0):
    gen = np.random.default_rng(rng)
    cov = np.array([[1.0, 0.4], [0.4, 0.5]])
    root = np.linalg.cholesky(cov)
    return [t * np.array([1.5, 0.6]) + gen.standard_normal((n, 2)) @ root.T for t in range(n_snap)], np.arange(n_snap)


def _path(xs, times, family="curved", rng=0):
    times = np.asarray(times, float)
    u = (times - times[0]) / (times[-1] - times[0])
    choice = PathChoice.every_gap(family, len(xs) - 1, "test")
    return SnapshotPath(xs, u, np.ones(len(xs)), PathConfig(coupling="ot"), choice=choice,
                        rng=np.random.default_rng(rng)), u


def test_curved_velocity_is_the_derivative_of_its_points():
    tc = rotating_blob(600, degrees=45.0, rng=1)
    path, _ = _path([x / 2 for x in tc.xs], tc.times)
    assert all(isinstance(i, Curved) for i in path.interpolants)
    u, h = np.linspace(0.02, 0.98, 400), 1e-3
    x_lo, _, _, _ = path.sample_path(u - h, np.random.default_rng(3))
    x_hi, _, _, _ = path.sample_path(u + h, np.random.default_rng(3))
    _, _, v, _ = path.sample_path(u, np.random.default_rng(3))
    fd = (x_hi - x_lo).double().numpy() / (2 * h)
    v = v.double().numpy()
    err = np.linalg.norm(fd - v, axis=1) / np.linalg.norm(v, axis=1)
    assert np.quantile(err, 0.95) < 1e-2


def test_curved_path_follows_the_circle_and_straight_truth_stays_straight():
    """Without training: the curved path's points inside a gap of the rotation lie on the truth's marginal
    far better than the chords; on a Gaussian moving at constant velocity the bend is negligible."""
    tc = rotating_blob(1000, degrees=60.0, rng=2)
    curved, u = _path(tc.xs, tc.times)
    straight, _ = _path(tc.xs, tc.times, "straight")
    t_mid = 1.5  # between the second and third snapshot
    u_mid = np.full(3000, (t_mid - tc.times[0]) / (tc.times[-1] - tc.times[0]))
    truth = tc.info["marginal_sample"](t_mid, 3000, 7)
    w_curved = wasserstein(curved.sample_path(u_mid, np.random.default_rng(0))[0].numpy(), truth, p=1)
    w_straight = wasserstein(straight.sample_path(u_mid, np.random.default_rng(0))[0].numpy(), truth, p=1)
    assert w_curved < 0.5 * w_straight, (w_curved, w_straight)
    xs, times = _constant_velocity()
    bent, _ = _path(xs, times)
    line, _ = _path(xs, times, "straight")
    uu = np.linspace(0.05, 0.95, 3000)
    _, _, v_bent, _ = bent.sample_path(uu, np.random.default_rng(1))
    _, _, v_line, _ = line.sample_path(uu, np.random.default_rng(1))
    rel = np.linalg.norm((v_bent - v_line).mean(0).numpy()) / np.linalg.norm(v_line.mean(0).numpy())
    assert rel < 0.05


def test_the_rule_bends_a_rotation_and_keeps_a_constant_velocity_straight():
    tc = rotating_blob(600, degrees=45.0, rng=3)
    xs = [x / 2 for x in tc.xs]
    bent = curved_choice(xs, tc.times / tc.times[-1], np.random.default_rng(0))
    assert bent.gaps == ["curved"] * 4, bent.reason
    xs, times = _constant_velocity(600, 5)
    kept = curved_choice(xs, times / times[-1], np.random.default_rng(0))
    assert kept.gaps == ["straight"] * 4, kept.reason
    assert curved_choice(xs[:3], times[:3] / 2, np.random.default_rng(0)).gaps == ["straight"] * 2


def test_the_default_path_bends_where_inner_days_validate_it():
    """path='support' (the default) bends the straight gaps by the same rule, keeps straight truth straight,
    and says why in the reason."""
    from scam.core.path_choice import resolve_path

    config = TrainConfig.from_flat(coupling="ot")
    assert config.path.path == "support"
    tc = rotating_blob(600, degrees=45.0, rng=3)
    xs = [x / 2 for x in tc.xs]
    bent = resolve_path(config, xs, tc.times / tc.times[-1], changes_mass=False, rng=np.random.default_rng(0))
    assert bent.gaps == ["curved"] * 4 and "curvature" in bent.reason, bent.reason
    xs, times = _constant_velocity(600, 5)
    kept = resolve_path(config, xs, times / times[-1], changes_mass=False, rng=np.random.default_rng(0))
    assert kept.gaps == ["straight"] * 4 and "no bending" in kept.reason, kept.reason


@pytest.mark.slow
def test_curved_fit_learns_the_turning_velocity():
    """Ground truth: a blob turning 45 degrees per time unit over 5 snapshots; velocity error against the true
    (gradient) field <= 0.05 with path='curved', where the straight path is far off."""
    tc = rotating_blob(1000, degrees=45.0, rng=0)
    errors = {}
    for family in ("curved", "straight"):
        config = TrainConfig.from_flat(path=family, growth_weight=0.0, coupling="ot")
        model = fit(tc.xs, tc.times, config=config, rng=0, progress=False, threads=1)
        num = den = 0.0
        for t in np.linspace(0.25, 3.75, 8):
            x = tc.info["marginal_sample"](t, 1000, int(100 * t))
            diff = model.velocity(x, t) - tc.velocity(x, t)
            num, den = num + np.sum(diff**2), den + np.sum(tc.velocity(x, t) ** 2)
        errors[family] = np.sqrt(num / den)
    assert errors["curved"] <= 0.05 and errors["straight"] > 0.1, errors


def test_validation_w1_merges_repeated_points_into_weights():
    """Repeated path points (the same pair drawn again) weigh as one point: the same W1, and no stalled solver."""
    import ot

    from scam.core.path_choice import _w1

    gen = np.random.default_rng(0)
    distinct, target = gen.standard_normal((30, 3)), gen.standard_normal((40, 3))
    points = distinct[gen.integers(0, 30, 3000)]  # 3,000 draws of 30 points
    merged = _w1(points, target)
    full = ot.emd2(np.full(3000, 1 / 3000), np.full(40, 1 / 40), ot.dist(points, target, metric="euclidean"),
                   numItermax=10_000_000)
    np.testing.assert_allclose(merged, full, rtol=1e-9)


def test_a_validated_curve_replaces_routes_where_it_beats_them_on_inner_days():
    """A blob turning 60 degrees per time unit with its middle snapshot missing: the 120-degree chord of the
    middle gap leaves the data, so the support check routes it through the graph; the curve, validated on the
    inner time points against both the straight and the graph path, bends it instead, and the reason says why.
    Without validated curvature (a constant velocity) a routed gap keeps its routes."""
    from scam.core.path_choice import resolve_path

    tc = rotating_blob(800, degrees=60.0, rng=2)
    keep = [0, 1, 3, 4]
    xs, times = [tc.xs[k] / 2 for k in keep], tc.times[keep] / tc.times[-1]
    bent = curved_choice(xs, times, np.random.default_rng(0), base=["straight", "graph", "straight"])
    assert bent.gaps == ["curved"] * 3 and "routed gaps bend instead" in bent.reason, bent.reason
    choice = resolve_path(TrainConfig.from_flat(coupling="ot"), xs, times, changes_mass=False,
                          rng=np.random.default_rng(0))
    assert choice.off_support[1] > 0.5 and choice.gaps == ["curved"] * 3, choice.reason
    xs, times = _constant_velocity(600, 5)
    base = ["straight", "graph", "straight", "straight"]
    kept = curved_choice(xs, times / times[-1], np.random.default_rng(0), base=base)
    assert kept.gaps == base and "no bending" in kept.reason, kept.reason
