"""Tests for scam.metrics: exact W1/W2 (POT), RBF MMD^2 and the Gaussian closed form."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import sparse

from scam.metrics import gaussian_w2, mmd, wasserstein


@pytest.fixture
def clouds():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 3)), rng.normal(loc=0.7, size=(45, 3))


# --------------------------------------------------------------------------- wasserstein


@pytest.mark.parametrize("p", [1, 2])
def test_point_mass_shift(p):
    x = np.zeros((7, 2))
    y = np.tile([3.0, 4.0], (4, 1))
    assert wasserstein(x, y, p=p) == pytest.approx(5.0, abs=1e-10)


@pytest.mark.parametrize("p", [1, 2])
def test_translation_of_a_cloud(p):
    # For a translation, W_p equals the shift length (the identity coupling is optimal).
    x = np.random.default_rng(1).normal(size=(50, 2))
    shift = np.array([0.3, -0.4])
    assert wasserstein(x, x + shift, p=p) == pytest.approx(0.5, abs=1e-8)


def test_w2_matches_gaussian_closed_form():
    m0, c0 = np.zeros(2), np.eye(2)
    m1, c1 = np.array([2.0, 1.0]), np.array([[2.0, 0.5], [0.5, 0.5]])
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal(m0, c0, size=2000)
    y = rng.multivariate_normal(m1, c1, size=2000)
    truth = gaussian_w2(m0, c0, m1, c1)  # 2.3207
    w2 = wasserstein(x, y, p=2)
    # n=2000 in 2-D: sampling error of the empirical W2 is a few 1e-2 (spread over seeds 0-5: <= 0.075).
    assert w2 == pytest.approx(truth, abs=0.1)
    # Against the closed form at the sample moments the agreement is much tighter.
    plug_in = gaussian_w2(x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T))
    assert w2 == pytest.approx(plug_in, abs=0.02)


@pytest.mark.parametrize("p", [1, 2])
def test_symmetry_and_identity(clouds, p):
    x, y = clouds
    assert wasserstein(x, y, p=p) == pytest.approx(wasserstein(y, x, p=p), rel=1e-10, abs=1e-12)
    assert wasserstein(x, x, p=p) == pytest.approx(0.0, abs=1e-10)


def test_w1_le_w2(clouds):
    x, y = clouds
    assert wasserstein(x, y, p=1) <= wasserstein(x, y, p=2) + 1e-12


@pytest.mark.parametrize("p", [1, 2])
def test_duplicate_point_equals_double_weight(clouds, p):
    x, y = clouds
    x_dup = np.vstack([x, x[:1]])
    a = np.ones(len(x))
    a[0] = 2.0
    assert wasserstein(x_dup, y, p=p) == pytest.approx(wasserstein(x, y, p=p, a=a), rel=1e-9)
    b = np.ones(len(y))
    b[3] = 2.0
    assert wasserstein(x, np.vstack([y, y[3:4]]), p=p) == pytest.approx(wasserstein(x, y, p=p, b=b), rel=1e-9)


def test_weights_are_normalised(clouds):
    x, y = clouds
    a = np.random.default_rng(2).uniform(size=len(x))
    assert wasserstein(x, y, a=a) == pytest.approx(wasserstein(x, y, a=10 * a), rel=1e-10)


def test_zero_weight_point_is_ignored(clouds):
    x, y = clouds
    far = np.vstack([x, [[100.0, 100.0, 100.0]]])
    a = np.r_[np.ones(len(x)), 0.0]
    assert wasserstein(far, y, a=a) == pytest.approx(wasserstein(x, y), rel=1e-9)


def test_sparse_and_1d_inputs():
    x = np.array([0.0, 1.0, 2.0])
    y = x + 1.5
    assert wasserstein(x, y) == pytest.approx(1.5, abs=1e-12)
    xs = sparse.csr_matrix(np.c_[x, np.zeros(3)])
    assert wasserstein(xs, np.c_[y, np.zeros(3)]) == pytest.approx(1.5, abs=1e-12)


def test_max_cells_subsampling_is_reproducible():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(500, 2)), rng.normal(size=(400, 2)) + 1.0
    full = wasserstein(x, y)
    sub1 = wasserstein(x, y, max_cells=200, rng=5)
    sub2 = wasserstein(x, y, max_cells=200, rng=np.random.default_rng(5))
    assert sub1 == sub2
    assert sub1 != wasserstein(x, y, max_cells=200, rng=6)
    assert sub1 == pytest.approx(full, abs=0.15)
    # No subsampling when both sides are below the cap.
    assert wasserstein(x, y, max_cells=1000) == full


def test_max_cells_keeps_weights_consistent():
    x = np.r_[np.zeros(50), np.full(50, 10.0)]
    a = np.r_[np.ones(50), np.zeros(50)]  # only the points at 0 carry mass
    # Whatever is drawn, the kept points at 10 have zero weight, so W1 to a point mass at 0 is 0.
    assert wasserstein(x, np.zeros(3), a=a, max_cells=60, rng=0) == pytest.approx(0.0, abs=1e-12)


def test_non_convergence_warns(clouds):
    x, y = clouds
    with pytest.warns(UserWarning, match="numItermax"):
        wasserstein(x, y, num_itermax=5)


def test_no_warning_when_converged(clouds):
    x, y = clouds
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wasserstein(x, y, p=2)


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (np.zeros((3, 2)), np.zeros((3, 3)), {}, "same number of dimensions"),
        (np.zeros((0, 2)), np.zeros((3, 2)), {}, "empty"),
        (np.array([[0.0, np.nan]]), np.zeros((3, 2)), {}, "NaN"),
        (np.zeros((3, 2)), np.array([[np.inf, 0.0]]), {}, "NaN or infinite"),
        (np.zeros((2, 2, 2)), np.zeros((3, 2)), {}, "2-D"),
        (np.zeros((3, 2)), np.zeros((3, 2)), {"p": 3}, "`p` must be 1 or 2"),
        (np.zeros((3, 2)), np.zeros((3, 2)), {"a": [1, 1]}, "length 3"),
        (np.zeros((3, 2)), np.zeros((3, 2)), {"a": [1, -1, 1]}, "non-negative"),
        (np.zeros((3, 2)), np.zeros((3, 2)), {"b": [0, 0, 0]}, "positive sum"),
        (np.zeros((3, 2)), np.zeros((3, 2)), {"b": [1, np.nan, 0]}, "NaN"),
        (np.zeros((3, 2)), np.zeros((3, 2)), {"max_cells": 0}, "max_cells"),
    ],
)
def test_wasserstein_errors(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        wasserstein(x, y, **kwargs)


# --------------------------------------------------------------------------- mmd


def test_mmd_identity_and_shift(clouds):
    x, y = clouds
    assert mmd(x, x) == pytest.approx(0.0, abs=1e-12)
    assert mmd(x, x + 3.0) > 0.1
    assert mmd(x, y) > 0.0


def test_mmd_symmetry(clouds):
    x, y = clouds
    assert mmd(x, y) == pytest.approx(mmd(y, x), rel=1e-10)
    assert mmd(x, y, bandwidths=[0.5, 1.0]) == pytest.approx(mmd(y, x, bandwidths=[0.5, 1.0]), rel=1e-10)


def test_mmd_hand_computed_single_points():
    # One point each at distance r: MMD^2 = 2 - 2 exp(-r^2 / (2 s^2)).
    x, y = np.zeros((1, 2)), np.array([[3.0, 4.0]])
    assert mmd(x, y, bandwidths=5.0) == pytest.approx(2 - 2 * np.exp(-0.5), rel=1e-12)
    expected = np.mean([2 - 2 * np.exp(-25 / (2 * s**2)) for s in (1.0, 5.0, 10.0)])
    assert mmd(x, y, bandwidths=[1.0, 5.0, 10.0]) == pytest.approx(expected, rel=1e-12)


def test_mmd_grows_with_shift(clouds):
    x, _ = clouds
    vals = [mmd(x, x + d, bandwidths=1.0) for d in (0.2, 0.5, 1.0, 2.0)]
    assert np.all(np.diff(vals) > 0)


def test_mmd_weights_duplicate_equals_double_weight(clouds):
    x, y = clouds
    a = np.ones(len(x))
    a[0] = 2.0
    got = mmd(x, y, a=a, bandwidths=[0.5, 2.0])
    assert got == pytest.approx(mmd(np.vstack([x, x[:1]]), y, bandwidths=[0.5, 2.0]), rel=1e-10)


def test_mmd_default_bandwidth_reproducible(clouds):
    x, y = clouds
    assert mmd(x, y) == mmd(x, y)
    rng = np.random.default_rng(0)
    big_x, big_y = rng.normal(size=(800, 2)), rng.normal(size=(700, 2))
    assert mmd(big_x, big_y, max_cells=300, rng=1) == mmd(big_x, big_y, max_cells=300, rng=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bandwidths": 0.0}, "bandwidths"),
        ({"bandwidths": []}, "bandwidths"),
        ({"bandwidths": [1.0, -1.0]}, "bandwidths"),
        ({"a": [1, 2]}, "length"),
    ],
)
def test_mmd_errors(clouds, kwargs, match):
    x, y = clouds
    with pytest.raises(ValueError, match=match):
        mmd(x, y, **kwargs)


def test_mmd_input_errors():
    with pytest.raises(ValueError, match="same number of dimensions"):
        mmd(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        mmd(np.array([[np.nan, 0.0]]), np.zeros((3, 2)))


# --------------------------------------------------------------------------- gaussian_w2


def test_gaussian_w2_known_values():
    eye = np.eye(2)
    assert gaussian_w2([0, 0], eye, [3, 4], eye) == pytest.approx(5.0, abs=1e-12)
    # Commuting (diagonal) covariances: W2^2 = |dm|^2 + sum (sqrt(s0) - sqrt(s1))^2.
    c0, c1 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    expected = np.sqrt(1.0 + (1 - 3) ** 2 + (2 - 1) ** 2)
    assert gaussian_w2([0, 0], c0, [1, 0], c1) == pytest.approx(expected, abs=1e-12)
    # 1-D: |m0 - m1|^2 + (s0 - s1)^2.
    assert gaussian_w2([0.0], [[4.0]], [1.0], [[1.0]]) == pytest.approx(np.sqrt(2.0), abs=1e-12)


def test_gaussian_w2_symmetric_and_zero():
    rng = np.random.default_rng(0)
    a_ = rng.normal(size=(3, 3))
    b_ = rng.normal(size=(3, 3))
    c0, c1 = a_ @ a_.T + 0.1 * np.eye(3), b_ @ b_.T
    m0, m1 = rng.normal(size=3), rng.normal(size=3)
    assert gaussian_w2(m0, c0, m1, c1) == pytest.approx(gaussian_w2(m1, c1, m0, c0), rel=1e-8)
    assert gaussian_w2(m0, c0, m0, c0) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0, 0], np.eye(3), [0, 0], np.eye(2)), "shape"),
        (([0, 0], np.eye(2), [0, 0, 0], np.eye(3)), "same dimension"),
        (([0, 0], [[1.0, 0.5], [0.0, 1.0]], [0, 0], np.eye(2)), "symmetric"),
        (([0, 0], np.diag([1.0, -1.0]), [0, 0], np.eye(2)), "positive semi-definite"),
        (([0, np.nan], np.eye(2), [0, 0], np.eye(2)), "finite"),
    ],
)
def test_gaussian_w2_errors(args, match):
    with pytest.raises(ValueError, match=match):
        gaussian_w2(*args)
