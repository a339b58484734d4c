"""Interpolants: one class per path family behind one interface, and the one decision that picks them."""

from __future__ import annotations

import numpy as np
import pytest

from scam.core import (
    Asynchronous,
    BrownianBridge,
    GraphRoute,
    Interpolant,
    MomentCorrected,
    PathChoice,
    PathConfig,
    SnapshotPath,
    Straight,
    TrainConfig,
    fit,
    register_interpolant,
    resolve_path,
)
from scam.core.interpolants import INTERPOLANTS, PathPoints, on_segment
from scam.datasets import arc_transport, gaussian_geodesic

ENDS = np.array([0.0, 1.0])


def _finite_difference_error(path: SnapshotPath, u: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Per point: |finite-difference velocity - returned velocity| / |returned velocity| (same pairs: same stream)."""
    x_lo, _, _, _ = path.sample_path(u - h, np.random.default_rng(3))
    x_hi, _, _, _ = path.sample_path(u + h, np.random.default_rng(3))
    _, _, v, _ = path.sample_path(u, np.random.default_rng(3))
    fd = (x_hi - x_lo).double().numpy() / (2 * h)
    v = v.double().numpy()
    return np.linalg.norm(fd - v, axis=1) / (np.linalg.norm(v, axis=1) + 1e-9)


@pytest.mark.parametrize("family", ["straight", "asynchronous"])
@pytest.mark.parametrize("corrected", [False, True])
def test_velocity_is_the_derivative_of_the_points(family, corrected):
    tc = gaussian_geodesic(400, times=(0.0, 1.0), rng=0)
    choice = PathChoice.every_gap(family, 1, "test", pace_spread=1.0 if family == "asynchronous" else 0.0)
    path = SnapshotPath(tc.xs, ENDS, np.ones(2), PathConfig(coupling="ot", noise_correction=corrected), choice=choice,
                        rng=np.random.default_rng(0))
    kind = MomentCorrected if corrected else {"straight": Straight, "asynchronous": Asynchronous}[family]
    assert isinstance(path.interpolants[0], kind)
    err = _finite_difference_error(path, np.linspace(0.05, 0.95, 400))
    assert np.quantile(err, 0.99) < 1e-2


def test_each_gap_gets_the_family_it_was_given():
    """resolve_path decides once; the path builds every gap's interpolant from that decision, wrapped in a
    Brownian bridge for entropic paths and in the moment correction where exact plans are corrected."""
    arc = arc_transport(300, rng=1)
    rng = np.random.default_rng(0)
    config = TrainConfig.from_flat(coupling="ot", path="support")
    xs = [x / 3 for x in arc.xs]
    choice = resolve_path(config, xs, np.array([0.0, 0.5, 1.0]), changes_mass=False, rng=rng)
    assert len(choice.gaps) == 2 and set(choice.gaps) <= {"straight", "graph"}, choice.reason
    path = SnapshotPath(xs, np.array([0.0, 0.5, 1.0]), np.ones(3), config.path, choice=choice, rng=rng)
    for gap, interpolant in zip(choice.gaps, path.interpolants):
        if gap == "graph":
            assert isinstance(interpolant, GraphRoute) and path.plans[0].route_ptr is not None
        else:
            assert isinstance(interpolant, MomentCorrected) and isinstance(interpolant.inner, Straight)
    noisy = SnapshotPath(xs, np.array([0.0, 0.5, 1.0]), np.ones(3), PathConfig(coupling="sinkhorn"), sigma=0.2,
                         rng=rng)
    assert all(isinstance(i, BrownianBridge) for i in noisy.interpolants)
    with pytest.raises(ValueError, match="routes"):
        BrownianBridge(GraphRoute(), 0.1)
    sigma_graph = TrainConfig.from_flat  # the same rule at the user-facing config
    with pytest.raises(ValueError, match="sigma=0"):
        sigma_graph(path="graph", sigma=0.1)


def test_registry_refuses_bad_families():
    class Nameless(Interpolant):
        def sample(self, pairs, rng):  # pragma: no cover
            raise AssertionError

    with pytest.raises(ValueError, match="name"):
        register_interpolant(Nameless)
    with pytest.raises(TypeError):
        register_interpolant(int)
    with pytest.raises(ValueError, match="Unknown path"):
        PathConfig(path="spiral")


BEND = 1.0  # sideways excursion of the toy family at mid-gap is BEND / 4


class QuadraticBend(Interpolant):
    """A toy family: the straight line plus ``BEND tau (1 - tau)`` along the second axis."""

    name = "quadratic_bend"

    def sample(self, pairs, rng) -> PathPoints:
        start, end = pairs.ends()
        out = on_segment(start, end, pairs.pos, pairs.dpos / pairs.du)
        tau = pairs.tau
        offset = np.zeros((len(tau), start.shape[1]), np.float32)
        offset[:, 1] = BEND * tau * (1 - tau)
        rate = np.zeros_like(offset)
        rate[:, 1] = BEND * (1 - 2 * tau) / pairs.du
        import torch

        out.x = out.x + torch.as_tensor(offset, device=out.x.device)
        out.v = out.v + torch.as_tensor(rate, device=out.x.device)
        return out


@pytest.mark.slow
def test_a_new_family_is_one_class_and_one_registry_entry():
    """A family defined here (nowhere in scam) is registered and trained on: the learned velocity bends the
    way the family does (up in the first half of the gap, down in the second), on data that only translate."""
    register_interpolant(QuadraticBend)
    try:
        rng = np.random.default_rng(0)
        x0 = rng.normal(size=(600, 2)) * 0.3
        x1 = rng.normal(size=(600, 2)) * 0.3 + [2.0, 0.0]
        config = TrainConfig.from_flat(path="quadratic_bend", growth_weight=0.0, coupling="ot", n_steps=800,
                                       noise_correction=False)
        model = fit([x0, x1], [0.0, 1.0], config=config, rng=0, progress=False, threads=1)
        assert model.info["path"]["gaps"] == ["quadratic_bend"]
        probe = rng.normal(size=(400, 2)) * 0.2
        for t, sideways in ((0.25, 0.5 * BEND), (0.75, -0.5 * BEND)):
            at = probe + [2.0 * t, BEND * t * (1 - t)]
            v = model.velocity(at, t).mean(axis=0)
            np.testing.assert_allclose(v, [2.0, sideways], atol=0.15)
    finally:
        INTERPOLANTS.pop(QuadraticBend.name, None)
