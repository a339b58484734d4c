"""The two estimators of the Action Matching loss: same expectation for every potential (the
integration by parts along the path's pairs is exact), and near the optimum the pathwise one has far
less gradient noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scam.core import ObjectiveConfig, PathConfig, PotentialConfig, SnapshotPath, TrainConfig, action_matching_loss, fit
from scam.core.network import PotentialNet
from scam.datasets._synthetic import branching_growth, gaussian_geodesic


@pytest.fixture(scope="module")
def snapshots():
    tc = branching_growth(400, times=(0.0, 0.5, 1.0), rng=0)
    return tc.xs, np.asarray(tc.times), np.asarray(tc.masses)


def random_potential(seed=0):
    """A random network with an O(1) output, so that every term of the loss matters."""
    torch.manual_seed(seed)
    net = PotentialNet(PotentialConfig(dim=2, hidden=32, n_layers=2))
    with torch.no_grad():
        net.mlp[-1].weight.mul_(20.0)
    return net


def loss_mean_and_se(net, path, estimator, growth_weight, n_batches=30, batch=8000, seed=1, growth_net=None):
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_batches):
        b = path.sample(batch, rng)
        loss, _ = action_matching_loss(net, b, ObjectiveConfig(growth_weight=growth_weight, estimator=estimator),
                                       growth_net=growth_net)
        vals.append(float(loss.detach()))
    return np.mean(vals), np.std(vals, ddof=1) / np.sqrt(n_batches)


@pytest.mark.parametrize(
    "coupling, unequal, growth_weight, separate",
    [("ot", False, 0.0, False), ("uot", False, 1.0, False), ("ot", True, 1.0, False), ("sinkhorn", False, 0.0, False),
     ("uot", False, 1.0, True), ("ot", True, 1.0, True), ("weighted", True, 1.0, True)],
)
def test_pathwise_and_boundary_estimators_agree(snapshots, coupling, unequal, growth_weight, separate):
    """E[pathwise] = E[boundary] for a fixed (random) potential (and growth network): within 4 standard
    errors, and the shared value is far from 0 (the check can fail). With a separate growth network the
    boundary form needs ``+ E[w_dot s]`` (the growth network takes the mass change): a wrong sign or a
    missing term fails on the paths that change mass."""
    xs, times, masses = snapshots
    masses = masses if unequal else np.ones(len(xs))
    # (without the matching-noise correction, whose pairs end at their kept targets: fit uses it with
    # the pathwise estimator only)
    path = SnapshotPath(xs, times, masses, PathConfig(coupling=coupling, uot_threshold=1.0, noise_correction=False),
                        rng=np.random.default_rng(0))
    if coupling != "sinkhorn":  # (Sinkhorn's marginals are exact only to its tolerance)
        assert path.changes_mass == (growth_weight > 0)
    net = random_potential()
    growth_net = random_potential(seed=1) if separate else None
    m_b, se_b = loss_mean_and_se(net, path, "boundary", growth_weight, growth_net=growth_net)
    m_p, se_p = loss_mean_and_se(net, path, "pathwise", growth_weight, growth_net=growth_net)
    assert abs(m_b - m_p) <= 4 * np.hypot(se_b, se_p), (m_b, m_p, se_b, se_p)
    assert abs(m_b) > 20 * np.hypot(se_b, se_p)


def gradient_variance(net, path, estimator, n_batches=60, batch=256):
    """Total variance (trace of the covariance) of the minibatch gradient in the parameters."""
    rng = np.random.default_rng(5)
    grads = []
    for _ in range(n_batches):
        loss, _ = action_matching_loss(net, path.sample(batch, rng), ObjectiveConfig(estimator=estimator))
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(net.parameters()))]).numpy())
    return float(np.var(np.array(grads), axis=0).sum())


@pytest.mark.slow
def test_pathwise_gradients_are_quieter_near_the_optimum():
    """Gaussian W2 geodesic, near the fitted potential: the boundary estimator's gradient noise
    (its ds/dt and end-point terms cancel only in expectation) is >= 10x the pathwise one's."""
    tc = gaussian_geodesic(600, rng=0)
    model = fit(tc.xs, tc.times, network=PotentialConfig(dim=2, hidden=64), config=TrainConfig.from_flat(n_steps=800),
                rng=0, progress=False)
    z = [(x - model.shift) / model.scale for x in tc.xs]
    path = SnapshotPath(z, np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot"), rng=np.random.default_rng(0))
    net = model.net
    for p in net.parameters():
        p.requires_grad_(True)
    var_b, var_p = gradient_variance(net, path, "boundary"), gradient_variance(net, path, "pathwise")
    assert var_p < 0.1 * var_b, (var_p, var_b)


def test_estimator_resolution_and_errors(snapshots):
    assert TrainConfig().resolved_estimator() == "pathwise"
    assert TrainConfig.from_flat(sigma=0.5).resolved_estimator() == "boundary"
    assert TrainConfig.from_flat(estimator="boundary").resolved_estimator() == "boundary"
    with pytest.raises(ValueError, match="deterministic path"):
        TrainConfig.from_flat(sigma=0.5, estimator="pathwise")
    with pytest.raises(ValueError, match="Unknown estimator"):
        TrainConfig.from_flat(estimator="mc")
    xs, times, _ = snapshots
    noisy = SnapshotPath(xs, times, np.ones(3), PathConfig(coupling="sinkhorn"), sigma=0.3,
                         rng=np.random.default_rng(0))
    batch = noisy.sample(16, np.random.default_rng(0))
    with pytest.raises(ValueError, match="deterministic path"):
        action_matching_loss(random_potential(), batch, ObjectiveConfig(sigma=0.3, estimator="pathwise"))
