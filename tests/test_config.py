"""Settings and units: each default defined once, flat names routed to their group, one owner of units."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from scam.core import ObjectiveConfig, OptimConfig, PathConfig, Scaling, SnapshotPath, TrainConfig, build_plan


def test_path_settings_are_passed_whole():
    """build_plan and SnapshotPath take a PathConfig whole: no PathConfig field is restated as a keyword."""
    owned = {f.name for f in dataclasses.fields(PathConfig)}
    for fn in (build_plan, SnapshotPath):
        restated = owned & set(inspect.signature(fn).parameters)
        assert not restated, (fn.__name__, restated)
        assert "config" in inspect.signature(fn).parameters
    assert TrainConfig().path == PathConfig()


def test_from_flat_routes_each_name_to_its_group():
    cfg = TrainConfig.from_flat(n_steps=50, coupling="ot", sigma=0.5, ot_reg=0.02)
    assert cfg.optim == OptimConfig(n_steps=50)
    assert cfg.path == PathConfig(coupling="ot", ot_reg=0.02)
    assert cfg.objective == ObjectiveConfig(sigma=0.5)
    flat = cfg.to_dict()
    assert flat["n_steps"] == 50 and flat["sigma"] == 0.5 and flat["coupling"] == "ot"
    assert TrainConfig.from_flat(**flat) == cfg  # the flat record round-trips
    names = [f for group in (PathConfig, ObjectiveConfig, OptimConfig) for f in inspect.signature(group).parameters]
    assert len(names) == len(set(names)) == len(flat)  # no setting lives in two groups


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"n_step": 5}, ValueError, r"Unknown option\(s\) \['n_step'\] in `config`; valid: .*'n_steps'"),
        ({"n_steps": "50"}, TypeError, "OptimConfig.n_steps must be a whole number"),
        ({"ot_reg": 0}, ValueError, "PathConfig.ot_reg must be > 0"),
        ({"coupling": "magic"}, ValueError, "Unknown coupling 'magic'"),
        ({"growth_weight": -1}, ValueError, "ObjectiveConfig.growth_weight must be >= 0"),
        ({"sigma": 0.5, "estimator": "pathwise"}, ValueError, "needs a deterministic path"),
        ({"ema_decay": 1.0}, ValueError, r"OptimConfig.ema_decay must be in \[0, 1\)"),
    ],
)
def test_bad_settings_name_the_field(settings, error, match):
    with pytest.raises(error, match=match):
        TrainConfig.from_flat(**settings)


def test_groups_are_typed():
    with pytest.raises(TypeError, match="TrainConfig.optim must be a OptimConfig"):
        TrainConfig(optim={"n_steps": 5})


def test_scaling_round_trips_and_keeps_velocity_the_gradient_of_the_potential():
    """With s(u, z) = |z|^2 / 2 (internal velocity z), the data-unit potential's gradient, by central
    differences, equals the data-unit velocity: the unit conversions agree with each other."""
    rng = np.random.default_rng(0)
    xs = [rng.normal(3.0, 2.0, (200, 3)), rng.normal(-1.0, 0.5, (150, 3))]
    sc = Scaling.from_snapshots(xs, np.array([2.0, 7.0]))
    assert sc.duration == 5.0 and sc.t_min == 2.0
    x = rng.normal(size=(20, 3))
    np.testing.assert_allclose(sc.to_data(sc.to_internal(x)), x, atol=1e-12)
    np.testing.assert_allclose(sc.time_to_internal([2.0, 4.5, 7.0]), [0.0, 0.5, 1.0])
    pooled = sc.to_internal(np.concatenate(xs))
    np.testing.assert_allclose(pooled.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(pooled.var(axis=0).mean(), 1.0, rtol=1e-12)

    def phi(points):
        z = sc.to_internal(points)
        return sc.potential(0.5 * np.sum(z**2, axis=1))

    eps = 1e-5
    grad = np.stack([(phi(x + eps * e) - phi(x - eps * e)) / (2 * eps) for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(grad, sc.velocity(sc.to_internal(x)), rtol=1e-6, atol=1e-8)
    # a growth rate of 1 per data time unit is `duration` per internal unit, and back
    assert sc.growth(sc.growth_to_internal(0.3)) == pytest.approx(0.3)
    assert sc.sigma_to_internal(1.0) == pytest.approx(np.sqrt(5.0) / sc.scale)
    again = Scaling.from_dict(sc.to_dict())
    np.testing.assert_array_equal(again.shift, sc.shift)
    assert (again.scale, again.t_min, again.t_max) == (sc.scale, sc.t_min, sc.t_max)


def test_scaling_refuses_degenerate_ranges():
    with pytest.raises(ValueError, match="t_max > t_min"):
        Scaling(np.zeros(2), 1.0, 3.0, 3.0)
    with pytest.raises(ValueError, match="positive"):
        Scaling(np.zeros(2), 0.0, 0.0, 1.0)


def test_plans_use_at_most_max_cells_per_snapshot():
    """Large snapshots enter the couplings as a subsample of max_cells cells (the prior follows its
    cells); smaller ones whole; the fit records what it used."""
    from scam.core import fit
    from scam.core.train import plan_subsample

    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(500, 2)), rng.normal(size=(80, 2)) + 1]
    prior = [x[:, 0] * 10 for x in xs]  # a rate that identifies its cell
    sub, sub_prior = plan_subsample(xs, prior, 100, np.random.default_rng(1))
    assert [len(x) for x in sub] == [100, 80]
    np.testing.assert_array_equal(sub[1], xs[1])
    np.testing.assert_array_equal(sub_prior[0], sub[0][:, 0] * 10)
    assert len({tuple(r) for r in sub[0]}) == 100  # without replacement
    assert plan_subsample(xs, None, None, rng)[0] is xs
    model = fit(xs, [0.0, 1.0], config=TrainConfig.from_flat(n_steps=5, max_cells=100), progress=False)
    assert model.info["plan_cells"] == [100, 80]
    assert set(model.info["seconds"]) == {"plans", "training"} and model.info["steps"] == 5
    # the scaling still sees every cell
    np.testing.assert_allclose(model.shift, np.concatenate(xs).mean(axis=0))


def test_learning_rate_is_resolved_by_the_growth_model_and_recorded():
    """lr=None resolves per growth model (a separate growth network: LR['separate'], the paper's single
    potential: LR['potential']); a given lr is kept; the fit records the one it used."""
    import numpy as np

    from scam.core import PotentialConfig, TrainConfig, fit
    from scam.core.config import LR

    assert TrainConfig().optim.lr is None
    assert TrainConfig().resolved().optim.lr == LR["separate"]
    assert TrainConfig.from_flat(growth_model="potential").resolved().optim.lr == LR["potential"]
    assert TrainConfig.from_flat(lr=5e-4, growth_model="potential").resolved().optim.lr == 5e-4
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + 1.0]
    model = fit(xs, [0.0, 1.0], network=PotentialConfig(dim=2, hidden=8, n_layers=1),
                config=TrainConfig.from_flat(n_steps=2, eval_every=1), rng=0, progress=False)
    assert model.report.lr == LR["separate"]
    assert model.report.to_uns()["params"]["lr"] == LR["separate"]
