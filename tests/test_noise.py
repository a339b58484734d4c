"""The matching-noise correction of exact plans (scam/core/noise.py) against closed-form truths."""

import numpy as np
import ot
import pytest
import torch

from scam.core.noise import (
    MomentCorrection,
    denoised_mean_shifts,
    gaussian_map,
    matching_noise,
    snapshot_moments,
    wiener_factor,
)
from scam.core.paths import PathConfig, SnapshotPath


def _drift(n, d, seed=0, speed=0.5):
    rng = np.random.default_rng(seed)
    c = np.zeros(d)
    c[0] = speed
    return rng.standard_normal((n, d)), rng.standard_normal((n, d)) + c, c


def test_gaussian_map_pushes_one_covariance_to_the_other():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    s0, s1 = a @ a.T + np.eye(4), b @ b.T + np.eye(4)
    m = gaussian_map(s0, s1)
    np.testing.assert_allclose(m, m.T, atol=1e-10)  # the OT map is the gradient of a convex function
    np.testing.assert_allclose(m @ s0 @ m.T, s1, rtol=1e-8, atol=1e-8)


def test_snapshot_moments_match_numpy_in_chunks():
    x = np.random.default_rng(1).standard_normal((1003, 3)).astype(np.float32)
    mean, cov, n = snapshot_moments(x, chunk=100)
    assert n == 1003
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(cov, np.cov(x.T.astype(np.float64), bias=True), atol=1e-8)


def test_matching_noise_predicts_the_error_of_a_real_plan():
    """The null measured on subsamples of 500/1000 cells, extrapolated to 1600, against the pair error
    of an exact plan between two independent samples of 1600 cells (truth: the identity map)."""
    rng = np.random.default_rng(2)
    d, n = 20, 1600
    pool = rng.standard_normal((4000, d))
    noise = matching_noise(pool, n, rng=np.random.default_rng(3))
    xa, xb = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    plan = ot.emd(np.full(n, 1 / n), np.full(n, 1 / n), ot.dist(xa, xb), numItermax=10_000_000)
    ii, jj = np.nonzero(plan)
    real = np.sum(plan[ii, jj] * np.sum((xb[jj] - xa[ii]) ** 2, axis=1))
    assert np.trace(noise) == pytest.approx(real, rel=0.08)
    assert np.all(np.linalg.eigvalsh(noise) > -1e-12)


def test_wiener_factor_drops_pure_noise_and_keeps_structure():
    rng = np.random.default_rng(4)
    d, n = 10, 20_000
    noise = np.eye(d) * 0.5
    resid_noise = rng.standard_normal((n, d)) * np.sqrt(0.5)
    w = wiener_factor(np.cov(resid_noise.T), noise, n)
    assert np.abs(np.linalg.eigvals(w)).max() < 0.05
    structured = resid_noise.copy()
    structured[:, 0] += rng.choice([-3.0, 3.0], n)  # a branch: variance 9 + 0.5 along the first axis
    w = wiener_factor(np.cov(structured.T), noise, n)
    assert w[0, 0] == pytest.approx(9 / 9.5, abs=0.03)
    assert np.abs(w[1:, 1:]).max() < 0.05


def test_corrected_path_ends_at_the_kept_targets_and_its_velocity_is_the_derivative():
    rng = np.random.default_rng(5)
    d, b = 3, 64
    gauss = np.eye(d) + 0.1 * np.diag([1.0, -1.0, 0.5])
    maps = np.stack([np.eye(d) + 0.2 * t * (1 - t) * np.diag([1.0, 2.0, 3.0]) for t in np.linspace(0, 1, 33)])
    corr = MomentCorrection(np.zeros(d), np.ones(d), gauss, 0.7 * np.eye(d), maps, 0.3)
    x0 = torch.as_tensor(rng.standard_normal((b, d)), dtype=torch.float64)
    x1 = torch.as_tensor(rng.standard_normal((b, d)), dtype=torch.float64)
    start, _ = corr.apply(x0, x1, np.zeros(b))
    end, _ = corr.apply(x0, x1, np.ones(b))
    pushed = 1.0 + x0 @ torch.as_tensor(gauss.T)
    np.testing.assert_allclose(start.numpy(), x0.numpy(), atol=1e-12)
    np.testing.assert_allclose(end.numpy(), (pushed + 0.7 * (x1 - pushed)).numpy(), atol=1e-12)
    tau = rng.uniform(0.05, 0.95, b)
    h = 1e-6
    _, v = corr.apply(x0, x1, tau)
    plus, _ = corr.apply(x0, x1, tau + h)
    minus, _ = corr.apply(x0, x1, tau - h)
    on_grid = np.abs(tau * 32 - np.round(tau * 32)) < 1e-4  # the slope jumps at grid points
    fd = ((plus - minus) / (2 * h)).numpy()
    np.testing.assert_allclose(v.numpy()[~on_grid], fd[~on_grid], rtol=1e-5, atol=1e-6)


def test_drifting_cloud_in_50_dims_gets_the_drift_back():
    """Exact OT between two 3,000-cell samples of a 50-D cloud drifting at |c| = 1 pairs cells almost
    at random (noise share ~1): the raw pair velocities are off by ~7x |c| and contract the path; the
    corrected ones are within 30% of c per pair (the sampling error of the means alone is
    sqrt(2 d / n) = 18% at this size) and the path keeps the clouds' spread."""
    d = 50
    x0, x1, c = _drift(3000, d, speed=1.0)
    path = SnapshotPath([x0, x1], np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot"),
                        rng=np.random.default_rng(0))
    raw = SnapshotPath([x0, x1], np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot", noise_correction=False),
                       rng=np.random.default_rng(0))
    assert path.corrections[0].noise_share > 0.9
    assert raw.corrections is None
    u = np.full(4000, 0.5)
    x, _, v, _ = path.sample_path(u, np.random.default_rng(1))
    xr, _, vr, _ = raw.sample_path(u, np.random.default_rng(1))
    err = np.linalg.norm(v.numpy() - c, axis=1).mean() / np.linalg.norm(c)
    err_raw = np.linalg.norm(vr.numpy() - c, axis=1).mean() / np.linalg.norm(c)
    assert err_raw > 5
    assert err < 0.3
    assert np.var(x.numpy(), axis=0).mean() == pytest.approx(1.0, abs=0.05)
    assert np.var(xr.numpy(), axis=0).mean() < 0.8  # the contraction the correction removes


def test_exact_pairs_in_two_dims_are_left_almost_untouched():
    """Two branches in 2-D: the plan is nearly exact (small noise share), the Wiener factor keeps the
    branch structure and the corrected path stays within a few percent of the straight lines."""
    rng = np.random.default_rng(6)
    n = 1500
    x0 = rng.standard_normal((n, 2)) * 0.3
    x1 = x0 + np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None] * np.array([2.0, 0.0]) + [0.0, 1.0]
    x1 = x1[rng.permutation(n)]
    path = SnapshotPath([x0, x1], np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot"),
                        rng=np.random.default_rng(0))
    corr = path.corrections[0]
    assert corr.noise_share < 0.05
    assert corr.wiener[0, 0] > 0.95
    raw = SnapshotPath([x0, x1], np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot", noise_correction=False),
                       rng=np.random.default_rng(0))
    u = np.random.default_rng(2).random(3000)
    x, _, _, _ = path.sample_path(u, np.random.default_rng(3))
    xr, _, _, _ = raw.sample_path(u, np.random.default_rng(3))
    shift = np.linalg.norm(x.numpy() - xr.numpy(), axis=1).mean()
    assert shift < 0.05 * np.linalg.norm(x1 - x0, axis=1).mean()


def test_mean_shifts_lose_the_sampling_drift_of_stationary_dimensions():
    """A blob turning in two dimensions beside eight stationary ones (1,000 cells, five snapshots): the
    snapshots' means drift in the stationary dimensions by sampling alone; the denoised shifts keep the
    turning (within 0.2% of the means' own differences there) and at most 0.7x of that drift (measured
    0.40-0.66x over seeds 0-4: what lies in the turning's own pattern over time cannot be told apart). In two
    dimensions, where the motion is far above the noise in every direction, they are the means' own
    differences."""
    from scam.datasets._synthetic import rotating_blob

    for seed in range(3):
        xs = rotating_blob(1000, dim=10, rng=seed).xs
        raw = np.diff(np.stack([x.mean(axis=0) for x in xs]), axis=0)
        shifts, kept = denoised_mean_shifts(xs)
        shifts = np.stack(shifts)
        assert kept == 2 and shifts.shape == raw.shape  # the turning's plane
        assert np.linalg.norm(shifts[:, :2] - raw[:, :2]) < 2e-3 * np.linalg.norm(raw[:, :2])
        assert np.linalg.norm(shifts[:, 2:]) < 0.7 * np.linalg.norm(raw[:, 2:]), seed
        flat = rotating_blob(1000, dim=2, rng=seed).xs
        shifts, kept = denoised_mean_shifts(flat)
        assert kept == 2
        np.testing.assert_allclose(np.stack(shifts), np.diff(np.stack([x.mean(axis=0) for x in flat]), axis=0),
                                   atol=1e-12)
