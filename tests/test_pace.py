"""Paths between snapshots: the asynchronous pace, graph routes, the choice on inner time points, the option."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import scam
from scam._utils import side_stream
from scam.core import PathChoice, PathConfig, SnapshotPath, TrainConfig, choose_path, fit, pace_warp
from scam.core.graph import along, graph_geodesics, leaves_support, off_support_share, route_keys, routes
from scam.core.pace import PACE_GRID
from scam.datasets import arc_transport, asynchronous_transition, gaussian_geodesic
from scam.metrics import wasserstein

GRAPH = PathChoice.every_gap("graph", 1, "graph routes")


def test_pace_warp_properties():
    rng = np.random.default_rng(0)
    tau = np.full(200_000, 0.3)
    pos, dpos = pace_warp(tau, 1.5, rng)
    # the log-odds shift is symmetric: the median pair is where the straight path is
    assert abs(np.median(pos) - 0.3) < 0.005
    assert np.all((pos > 0) & (pos < 1)) and np.all(dpos > 0)
    # speeds are the derivative of the map: finite differences with the same shifts
    h = 1e-6
    a, _ = pace_warp(np.full(1000, 0.3 - h), 1.5, np.random.default_rng(1))
    b, d = pace_warp(np.full(1000, 0.3 + h), 1.5, np.random.default_rng(1))
    _, d_mid = pace_warp(np.full(1000, 0.3), 1.5, np.random.default_rng(1))
    np.testing.assert_allclose((b - a) / (2 * h), d_mid, rtol=1e-4)
    # the ends are the snapshots, and spread 0 is the straight path
    ends, _ = pace_warp(np.array([0.0, 1.0]), 3.0, rng)
    np.testing.assert_allclose(ends, [0.0, 1.0], atol=1e-5)
    same, ones = pace_warp(tau[:10], 0.0, rng)
    np.testing.assert_array_equal(same, tau[:10])
    np.testing.assert_array_equal(ones, 1.0)


def test_choose_path_finds_asynchrony_and_arcs_and_keeps_geodesics_straight():
    tc = asynchronous_transition(1500, times=(0.0, 0.5, 1.0), spread=1.5, rng=0)
    found = choose_path(tc.xs, tc.times, np.random.default_rng(0))
    assert found.path == "asynchronous" and 1.0 <= found.pace_spread <= 2.0, found.reason  # truth 1.5
    assert found.candidates == ["straight", *[f"asynchronous {s:g}" for s in PACE_GRID], "graph"]
    assert found.ratio.shape == (3, len(found.candidates)) and np.all(found.ratio[:, 0] == 1.0)
    assert found.held_out == [0.5]
    arc = arc_transport(1000, times=(0.0, 0.5, 1.0), rng=0)
    on_arc = choose_path(arc.xs, arc.times, np.random.default_rng(0))
    assert on_arc.path == "graph", on_arc.reason
    assert on_arc.ratio[:, -1].mean() < 0.5  # the straight path cuts the corner, off the ring
    geo = gaussian_geodesic(1500, times=(0.0, 0.5, 1.0), rng=0)
    straight = choose_path(geo.xs, geo.times, np.random.default_rng(0))
    assert straight.path == "straight" and straight.pace_spread == 0.0, straight.reason
    two = choose_path(geo.xs[::2], geo.times[::2], np.random.default_rng(0))
    assert two.path == "straight" and "two time points" in two.reason and two.ratio is None
    no_async = choose_path(tc.xs, tc.times, np.random.default_rng(0), asynchronous=False, graph=False)
    assert no_async.candidates == ["straight"] and no_async.path == "straight"


def test_graph_routes_follow_the_ring():
    arc = arc_transport(400, times=(0.0, 1.0), width=0.05, rng=1)
    x0, x1 = arc.xs
    cost, pred = graph_geodesics(x0, x1)
    assert cost.shape == (400, 400) and np.all(np.isfinite(cost))
    src, tgt = np.arange(0, 400, 7), np.arange(0, 400, 7)
    union = np.concatenate([x0, x1])
    ptr, nodes, cum = routes(pred, union, src, tgt, len(x0))
    key = route_keys(ptr, cum)
    for pos in (0.0, 0.5, 1.0):
        a, b, f, share = along(ptr, cum, key, np.arange(len(src)), np.full(len(src), pos))
        point = (1 - f)[:, None] * union[nodes[a]] + f[:, None] * union[nodes[b]]
        if pos == 0.0:
            np.testing.assert_allclose(point, x0[src], atol=1e-12)
        elif pos == 1.0:
            np.testing.assert_allclose(point, x1[tgt], atol=1e-12)
        else:  # half way along the route is on the ring (radius 3), not near its centre
            radius = np.linalg.norm(point, axis=1)
            assert np.all(np.abs(radius - 3.0) < 0.3), radius.min()
    # routes start at their source, end at their target, with fractions rising from 0 to 1
    np.testing.assert_array_equal(nodes[ptr[:-1]], src)
    np.testing.assert_array_equal(nodes[ptr[1:] - 1], len(x0) + tgt)
    assert np.all(np.diff(cum)[np.diff(key) > 0] >= 0) and np.all(cum[ptr[1:] - 1] == 1.0)


def test_route_searches_split_over_processes_give_the_tables_of_one_search(monkeypatch):
    import multiprocessing

    from scam.core import graph

    arc = arc_transport(300, times=(0.0, 1.0), width=0.05, rng=3)
    one_cost, one_pred = graph_geodesics(*arc.xs)  # 300 x 600 is below PARALLEL_SEARCH: one search
    assert graph._search_workers(300, 600) == 1
    monkeypatch.setattr(graph, "_search_workers", lambda n_sources, n_nodes: 3)
    cost, pred = graph_geodesics(*arc.xs)
    np.testing.assert_array_equal(cost, one_cost)
    np.testing.assert_array_equal(pred, one_pred)
    monkeypatch.undo()
    # large enough to split where processes can be forked; never inside a daemonic process (no children)
    monkeypatch.setattr(graph, "PARALLEL_SEARCH", 1)
    linux = sys.platform.startswith("linux")
    expected = min(len(os.sched_getaffinity(0)), graph.MAX_SEARCH_PROCESSES) if linux else 1
    assert graph._search_workers(300, 600) == expected
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    assert graph._search_workers(300, 600) == 1


def test_graph_path_velocity_is_the_derivative_of_its_points():
    arc = arc_transport(300, times=(0.0, 1.0), rng=2)
    path = SnapshotPath(arc.xs, np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot"), choice=GRAPH,
                        rng=np.random.default_rng(0))
    u, h = np.linspace(0.05, 0.95, 500), 1e-5
    x_lo, _, _, _ = path.sample_path(u - h, np.random.default_rng(3))
    x_hi, _, _, _ = path.sample_path(u + h, np.random.default_rng(3))  # same pairs: same stream
    _, _, v, _ = path.sample_path(u, np.random.default_rng(3))
    fd = (x_hi - x_lo).double().numpy() / (2 * h)
    close = np.linalg.norm(fd - v.double().numpy(), axis=1) <= 1e-2 * np.linalg.norm(v.double().numpy(), axis=1) + 1e-3
    assert close.mean() > 0.97  # all but the samples whose two points straddle a node of their route
    with pytest.raises(ValueError, match="sigma=0"):
        SnapshotPath(arc.xs, np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot"), choice=GRAPH, sigma=0.1,
                     rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="explicit pairs"):
        SnapshotPath(arc.xs, np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="sinkhorn"), choice=GRAPH,
                     rng=np.random.default_rng(0))


@pytest.mark.parametrize("coupling", ["uot", "weighted"])
def test_graph_routes_with_mass_changing_couplings(coupling):
    """Destroyed and created cells stay where they are; transported pairs follow their routes; chunks
    (several exact plans per gap) keep every route's ends at its own pair."""
    arc = arc_transport(600, times=(0.0, 1.0), rng=5)
    xs = [arc.xs[0][:300], arc.xs[1]]  # unequal sizes: two chunks of unequal halves
    config = PathConfig(coupling=coupling, max_plan_size=60_000)
    path = SnapshotPath(xs, np.array([0.0, 1.0]), np.array([1.0, 1.5]), config, choice=GRAPH,
                        rng=np.random.default_rng(0))
    plan = path.plans[0]
    assert plan.route_ptr is not None and len(plan.route_ptr) == plan.n_pairs + 1
    moving = np.ones(plan.n_pairs, bool) if plan.kind is None else plan.kind == 0
    first, last = plan.route_nodes[plan.route_ptr[:-1]], plan.route_nodes[plan.route_ptr[1:] - 1]
    np.testing.assert_array_equal(first[moving], plan.src[moving])
    np.testing.assert_array_equal(last[moving], len(xs[0]) + plan.tgt[moving])
    x, w, v, w_dot = path.sample_path(np.linspace(0.01, 0.99, 2000), np.random.default_rng(1))
    assert np.all(np.isfinite(x.numpy())) and np.all(np.isfinite(v.numpy())) and np.all(w.numpy() > 0)
    if plan.kind is not None:  # a destroyed cell does not move
        idx = np.nonzero(plan.kind == 1)[0]
        if len(idx):
            p, _, dpos, _ = plan.profile(idx, np.full(len(idx), 0.5))
            assert np.all(p == 0.0) and np.all(dpos == 0.0)


def test_off_support_share_tells_arcs_from_geodesics():
    """Two samples of one population: about 5% off their support by construction; a Gaussian W2 geodesic
    (its tails): 10-20%; cells turning along an arc, whose straight lines cut across the ring: nearly all."""
    rng = np.random.default_rng(0)
    same = off_support_share(gaussian_geodesic(800, rng=1).xs[0], gaussian_geodesic(800, rng=2).xs[0], rng)
    geodesic = gaussian_geodesic(800, rng=3)
    arc = arc_transport(800, times=(0.0, 1.0), rng=4)
    assert 0.01 <= same <= 0.1, same
    assert 0.05 <= off_support_share(*geodesic.xs, rng) <= 0.3
    assert off_support_share(*arc.xs, rng) >= 0.9
    # two clouds far apart with nothing between: every line leaves the support, but no route joins them
    far = gaussian_geodesic(400, mean1=(12.0, 0.0), cov1=np.eye(2), cov0=np.eye(2), rng=5)
    assert off_support_share(*far.xs, rng) == 0.0
    # a line through the middle of the data stays, one across the empty centre of the ring leaves
    union = np.concatenate(arc.xs)
    on_ring = lambda angle: 3.0 * np.array([[np.cos(angle), np.sin(angle)]])  # noqa: E731
    assert not leaves_support(union, on_ring(np.pi / 2 - 0.1), on_ring(np.pi / 2 + 0.1))[0]
    assert leaves_support(union, on_ring(np.pi / 4), on_ring(3 * np.pi / 4))[0]


def test_graph_routes_only_where_lines_leave_the_data():
    """Within one population the graph path keeps (nearly) every straight line; on the arc most pairs
    take routes, and the pairs kept straight are exactly those whose lines stay on the support."""
    rng = np.random.default_rng(0)
    blob = [gaussian_geodesic(500, rng=6).xs[0], gaussian_geodesic(500, rng=7).xs[0]]
    arc = arc_transport(500, times=(0.0, 1.0), rng=8).xs
    hops = {}
    for name, xs in (("blob", blob), ("arc", arc)):
        plan = SnapshotPath(xs, np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot"), choice=GRAPH,
                            rng=rng).plans[0]
        n_nodes = np.diff(plan.route_ptr)
        line = n_nodes == 2
        off = leaves_support(np.concatenate(xs), xs[0][plan.src], xs[1][plan.tgt])
        np.testing.assert_array_equal(line[~off], True)  # lines inside the data are kept
        hops[name] = line.mean()
    assert hops["blob"] >= 0.85 and hops["arc"] <= 0.2, hops


def test_support_path_chooses_gap_by_gap():
    """The default path: a gap whose straight lines cut across the ring follows routes, a gap between two
    samples of one place stays straight (and keeps its matching-error correction)."""
    arc = arc_transport(500, times=(0.0, 1.0), rng=9)
    later = arc_transport(500, times=(0.0, 1.0), rng=10).xs[1]  # the end population again: nothing moves
    xs, times = [arc.xs[0], arc.xs[1], later], np.array([0.0, 1.0, 2.0])
    cfg = TrainConfig.from_flat(n_steps=30, growth_weight=0.0)
    assert cfg.path.path == "support"
    model = fit(xs, times, config=cfg, rng=0, progress=False)
    info = model.info["path"]
    assert info["gaps"] == ["graph", "straight"] and info["path"] == "graph", info["reason"]
    assert info["off_support"][0] > 0.5 > info["off_support"][1]
    # entropic paths have no routes: straight, with the reason given
    noisy = fit(xs, times, config=TrainConfig.from_flat(n_steps=30, growth_weight=0.0, sigma=0.1), rng=0,
                progress=False)
    assert noisy.info["path"]["path"] == "straight" and "sigma > 0" in noisy.info["path"]["reason"]


def test_side_stream_leaves_the_generator_alone():
    rng, twin = np.random.default_rng(5), np.random.default_rng(5)
    a, b = side_stream(rng, 0).random(5), side_stream(rng, 1).random(5)
    np.testing.assert_array_equal(a, side_stream(np.random.default_rng(5), 0).random(5))  # reproducible
    assert not np.allclose(a, b)  # names tell streams apart
    np.testing.assert_array_equal(rng.random(5), twin.random(5))  # the generator's draws are unchanged
    np.testing.assert_array_equal(rng.spawn(1)[0].random(5), twin.spawn(1)[0].random(5))  # and its spawns
    legacy = np.random.Generator(np.random.RandomState(0)._bit_generator)  # no seed sequence to derive from
    with pytest.raises(TypeError, match="seed sequence"):
        side_stream(legacy, 0)


def test_asynchronous_path_reproduces_the_process_marginal():
    """Sampled at an inner time, the asynchronous path between the end snapshots is the true marginal."""
    tc = asynchronous_transition(2000, times=(0.0, 0.4, 1.0), spread=1.5, rng=1)
    ends, inner = [tc.xs[0], tc.xs[2]], tc.xs[1]
    scores = {}
    for spread in (0.0, 1.5):
        choice = PathChoice.every_gap("asynchronous" if spread else "straight", 1, "test", pace_spread=spread)
        path = SnapshotPath(ends, np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot", noise_correction=False),
                            choice=choice, rng=np.random.default_rng(0))
        x, w, v, _ = path.sample_path(np.full(4000, 0.4), np.random.default_rng(1))
        scores[spread] = wasserstein(x.numpy(), inner, p=1)
        assert v is not None and np.all(np.isfinite(v.numpy()))
    floor = wasserstein(asynchronous_transition(2000, times=(0.4,), spread=1.5, rng=2).xs[0], inner, p=1)
    assert scores[1.5] < 0.6 * scores[0.0]
    assert scores[1.5] < 1.5 * floor


def test_path_config_checks():
    with pytest.raises(ValueError, match="Unknown path"):
        PathConfig(path="curvy")
    with pytest.raises(ValueError, match="path='asynchronous'"):
        PathConfig(pace_spread=1.0)
    with pytest.raises(ValueError, match="> 0"):
        PathConfig(path="asynchronous", pace_spread=0.0)
    with pytest.raises(ValueError, match="sigma=0"):
        TrainConfig.from_flat(path="graph", sigma=0.5)
    with pytest.raises(ValueError, match="explicit pairs"):
        TrainConfig.from_flat(path="graph", coupling="sinkhorn")
    assert TrainConfig.from_flat(path="asynchronous", pace_spread=2.0).path.pace_spread == 2.0


@pytest.mark.slow
def test_auto_path_records_its_choice_and_growth_comes_first():
    fast = dict(network={"hidden": 32}, config={"n_steps": 200, "eval_every": 50, "path": "auto"}, progress=False,
                rng=0)
    adata = scam.datasets.simulate("asynchronous", n_cells=800, rng=0, times=(0.0, 0.5, 1.0), spread=2.0)
    scam.tl.action_matching(adata, "time", growth=None, **fast)
    params, choice = adata.uns["action_matching"]["params"], adata.uns["action_matching"]["path_choice"]
    assert params["path"] == "asynchronous" and params["pace_spread"] > 0, params["path_reason"]
    assert choice["ratio"].shape == (3, len(choice["candidates"])) and choice["held_out"].tolist() == [0.5]
    chosen = list(choice["candidates"]).index(f"asynchronous {params['pace_spread']:g}")
    assert choice["ratio"][:, chosen].mean() < 0.95
    # cells along an arc: the graph path is chosen, and the fit is built on its routes
    arc = scam.datasets.simulate("arc", n_cells=600, rng=0)
    scam.tl.action_matching(arc, "time", growth=None, **fast)
    assert arc.uns["action_matching"]["params"]["path"] == "graph", arc.uns["action_matching"]["params"]["path_reason"]
    assert scam.tl.get_model(arc).info["path"]["path"] == "graph"
    # where the model grows, a change in make-up is left to growth
    scam.tl.action_matching(adata, "time", growth={0.0: 1.0, 0.5: 1.5, 1.0: 2.0}, **fast)
    params = adata.uns["action_matching"]["params"]
    assert params["path"] == "straight" and "left to growth" in params["path_reason"]
    assert not any(c.startswith("asynchronous") for c in adata.uns["action_matching"]["path_choice"]["candidates"])
    scam.tl.action_matching(adata, "time", growth=None, **{**fast, "config": {**fast["config"], "path": "straight"}})
    params = adata.uns["action_matching"]["params"]
    assert params["path"] == "straight" and params["pace_spread"] == 0.0
    # the default keeps lines that stay in the data straight, without validation
    scam.tl.action_matching(adata, "time", growth=None, network={"hidden": 32}, config={"n_steps": 50},
                            progress=False, rng=0)
    params, choice = adata.uns["action_matching"]["params"], adata.uns["action_matching"]["path_choice"]
    assert params["path"] == "straight" and params["path_reason"].startswith("path='support'")
    assert list(params["path_gaps"]) == ["straight", "straight"] and choice["ratio"].shape == (0, 0)
    assert choice["off_support"].shape == (2,) and np.all(choice["off_support"] < 0.5)


@pytest.mark.slow
def test_asynchronous_fit_pushes_to_the_inner_marginal():
    """A model trained on the two end snapshots with the true pace reaches the held-out inner marginal
    closer than one trained on straight lines."""
    tc = asynchronous_transition(1500, times=(0.0, 0.5, 1.0), spread=1.5, rng=3)
    w1 = {}
    for path, spread in (("straight", None), ("asynchronous", 1.5)):
        cfg = TrainConfig.from_flat(n_steps=1500, growth_weight=0.0, path=path, pace_spread=spread)
        model = fit([tc.xs[0], tc.xs[2]], [0.0, 1.0], config=cfg, rng=0, progress=False)
        pushed = model.push(tc.xs[0], 0.0, 0.5)
        w1[path] = wasserstein(np.asarray(pushed), tc.xs[1], p=1)
    assert w1["asynchronous"] < 0.8 * w1["straight"], w1


@pytest.mark.slow
def test_graph_fit_reaches_the_arc_midpoint():
    """Trained on the two ends of the arc, the graph path's model puts the cells on the ring at mid-time;
    the straight path's takes them through the empty centre."""
    arc = arc_transport(800, times=(0.0, 1.0), rng=4)
    truth = arc.info["marginal_sample"](0.5, 800, 5)
    w1 = {}
    for path in ("straight", "graph"):
        cfg = TrainConfig.from_flat(n_steps=1500, growth_weight=0.0, path=path)
        model = fit(arc.xs, arc.times, config=cfg, rng=0, progress=False)
        assert model.info["path"]["path"] == path
        w1[path] = wasserstein(np.asarray(model.push(arc.xs[0], 0.0, 0.5)), truth, p=1)
    assert w1["graph"] < 0.5 * w1["straight"], w1
