"""scam.pl: what each figure draws, its errors, and the ax/show/return_fig convention (rendered off-screen)."""

from __future__ import annotations

import inspect

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.contour import QuadContourSet  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402

import scam  # noqa: E402

FAST = dict(network={"hidden": 32}, config={"n_steps": 120, "eval_every": 40}, progress=False)
TINY = dict(network={"hidden": 16}, config={"n_steps": 40, "eval_every": 20}, progress=False)
TIMES = [0.0, 0.5, 1.0, 1.5, 2.0]


@pytest.fixture(scope="module")
def adata():
    """Branching time course (5 x 120 cells, 2-D), unbalanced fit, simulation, fates, held-out evaluation."""
    a = scam.datasets.simulate("branching", n_cells=120, rng=0)
    x = a.obsm["X_pca"]
    a.obsm["X_umap"] = np.c_[x[:, 0] + 0.5 * np.sin(2 * x[:, 1]), 2.0 * x[:, 1] - 0.3 * x[:, 0] ** 2]
    a.obs["score"] = x[:, 0]
    scam.tl.action_matching(a, "time", growth="learn", rng=0, **FAST)
    scam.tl.action_matching(a, "time", growth=None, rng=0, key_added="bal", **TINY)  # balanced, for the errors
    scam.tl.simulate(a, n_steps=50)
    scam.tl.fate_probabilities(a, source_time=0.5, target_time=2.0, groupby="branch")
    scam.tl.evaluate_holdout(
        a, "time", holdout=[1.0], n_cells=40, n_seeds=2,
        fit_kwargs={"network": {"hidden": 16}, "config": {"n_steps": 30, "eval_every": 15}},
    )
    return a


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def collections_of(ax, kind):
    return [c for c in ax.collections if isinstance(c, kind)]


def main_axes(fig):
    """Axes that are not colour bars."""
    return [a for a in fig.axes if not hasattr(a, "_colorbar")]


def colorbars(fig):
    return [a._colorbar for a in fig.axes if hasattr(a, "_colorbar")]


# ============================================================================ trajectories
def test_trajectories_paths_are_the_stored_simulation(adata):
    sim = adata.uns["action_matching_simulation"]
    pos, times = np.asarray(sim["positions"]), np.asarray(sim["times"])
    n_t, n_cells, _ = pos.shape
    fig = scam.pl.trajectories(adata, n_paths=None, return_fig=True)
    ax = main_axes(fig)[0]
    (lc,) = collections_of(ax, LineCollection)
    segs = np.asarray(lc.get_segments())
    assert segs.shape == (n_cells * (n_t - 1), 2, 2)
    # path-major: segment k of path p joins the simulated positions at times k and k + 1
    expected = np.stack([pos[:-1], pos[1:]], axis=2).transpose(1, 0, 2, 3).reshape(-1, 2, 2)
    np.testing.assert_allclose(segs, expected[..., :2], rtol=1e-6, atol=1e-6)
    # colour = time: each segment carries its mid time on the time colour scale of the cells
    np.testing.assert_allclose(lc.get_array(), np.tile((times[:-1] + times[1:]) / 2, n_cells))
    assert lc.norm.vmin == pytest.approx(0.0) and lc.norm.vmax == pytest.approx(2.0)
    # unbalanced model: widths follow each path's mass, so they differ
    widths = np.asarray(lc.get_linewidths())
    assert widths.size == len(segs) and np.ptp(widths) > 0
    # start and end markers sit at the first and last positions
    scat = collections_of(ax, PathCollection)
    starts = [s for s in scat if len(s.get_offsets()) == n_cells]
    assert any(np.allclose(s.get_offsets(), pos[0, :, :2]) for s in starts)
    assert any(np.allclose(s.get_offsets(), pos[-1, :, :2]) for s in starts)
    # the observed cells are underneath: every cell drawn once
    assert any(len(s.get_offsets()) == adata.n_obs for s in scat)
    cbar = colorbars(fig)
    assert len(cbar) == 1 and cbar[0].ax.get_xlabel() == "time"
    legend_texts = {t.get_text() for leg in ax.findobj(matplotlib.legend.Legend) for t in leg.get_texts()}
    assert {"start (time 0)", "end (time 2)", "dying (thin)", "expanding (thick)"} <= legend_texts


def test_trajectories_default_subset_and_balanced_widths(adata):
    fig = scam.pl.trajectories(adata, return_fig=True)
    ax = main_axes(fig)[0]
    (lc,) = collections_of(ax, LineCollection)
    n_t = len(adata.uns["action_matching_simulation"]["times"])
    assert len(lc.get_segments()) == 100 * (n_t - 1)  # default: 100 of the 120 paths
    assert "100 of 120" in ax.get_title()

    b = adata.copy()
    b.uns["action_matching_simulation"] = dict(b.uns["action_matching_simulation"])
    b.uns["action_matching_simulation"]["log_weights"] = np.zeros_like(b.uns["action_matching_simulation"]["log_weights"])
    fig = scam.pl.trajectories(b, n_paths=10, linewidth=2.0, return_fig=True)
    (lc,) = collections_of(main_axes(fig)[0], LineCollection)
    np.testing.assert_allclose(lc.get_linewidths(), 2.0)  # balanced: no mass encoding


def test_trajectories_in_another_basis_by_neighbour_regression(adata):
    sim = adata.uns["action_matching_simulation"]
    cells = np.asarray(sim["cells"])
    n_t = len(sim["times"])
    fig = scam.pl.trajectories(adata, basis="umap", n_paths=None, return_fig=True)
    ax = main_axes(fig)[0]
    (lc,) = collections_of(ax, LineCollection)
    segs = np.asarray(lc.get_segments())
    # the paths start at the starting cells themselves, which the regression reproduces exactly
    np.testing.assert_allclose(segs[:: n_t - 1, 0], adata.obsm["X_umap"][cells], atol=1e-6)
    emb = adata.obsm["X_umap"]
    assert segs[..., 0].min() >= emb[:, 0].min() - 1e-9 and segs[..., 0].max() <= emb[:, 0].max() + 1e-9
    assert ax.get_xlabel() == "UMAP1" and ax.get_ylabel() == "UMAP2"


def test_trajectories_backward(adata):
    b = adata.copy()
    scam.tl.simulate(b, source_time=2.0, target_times=[1.0, 0.0], key_added="back")
    fig = scam.pl.trajectories(b, simulation_key="back", n_paths=None, return_fig=True)
    ax = main_axes(fig)[0]
    (lc,) = collections_of(ax, LineCollection)
    n_cells = b.uns["back"]["positions"].shape[1]
    np.testing.assert_allclose(lc.get_array(), np.tile([1.5, 0.5], n_cells))
    assert "from time 2" in ax.get_title()


def test_trajectories_cell_colours(adata):
    fig = scam.pl.trajectories(adata, color="branch", n_paths=5, return_fig=True)
    ax = main_axes(fig)[0]
    texts = {t.get_text() for leg in ax.findobj(matplotlib.legend.Legend) for t in leg.get_texts()}
    assert {"proliferating", "dying"} <= texts
    fig = scam.pl.trajectories(adata, color="score", n_paths=5, return_fig=True)
    labels = [cb.ax.get_xlabel() for cb in colorbars(fig)]
    assert labels == ["time", "score (cells)"]
    fig = scam.pl.trajectories(adata, color=False, n_paths=5, return_fig=True)
    backdrop = [s for s in collections_of(main_axes(fig)[0], PathCollection) if len(s.get_offsets()) == adata.n_obs][0]
    assert len(np.unique(backdrop.get_facecolors(), axis=0)) == 1  # plain grey


def test_trajectories_kwargs_and_errors(adata):
    fig = scam.pl.trajectories(adata, n_paths=5, alpha=0.3, linestyles="dashed", return_fig=True)
    (lc,) = collections_of(main_axes(fig)[0], LineCollection)
    assert lc.get_alpha() == 0.3
    b = adata.copy()
    del b.uns["action_matching_simulation"]
    with pytest.raises(KeyError, match=r"Run `scam.tl.simulate` first"):
        scam.pl.trajectories(b)
    with pytest.raises(KeyError, match=r"Run `scam.tl.action_matching` first"):
        scam.pl.trajectories(adata, key="nope")
    with pytest.raises(KeyError, match="not a column of `adata.obs`"):
        scam.pl.trajectories(adata, color="nope")
    with pytest.raises(KeyError, match="`basis='tsne'` is not in `adata.obsm`"):
        scam.pl.trajectories(adata, basis="tsne")
    with pytest.raises(ValueError, match="out of range"):
        scam.pl.trajectories(adata, components=(0, 2))
    with pytest.raises(ValueError, match="n_paths"):
        scam.pl.trajectories(adata, n_paths=0)
    sim = dict(b.uns.get("action_matching_simulation", adata.uns["action_matching_simulation"]))
    sim["positions"] = np.concatenate([sim["positions"], sim["positions"][..., :1]], axis=-1)
    b.uns["action_matching_simulation"] = sim
    with pytest.raises(ValueError, match="run `scam.tl.simulate` again"):
        scam.pl.trajectories(b)


# ============================================================================ velocity
def test_velocity_arrows_are_the_model_field(adata):
    model = scam.tl.get_model(adata)
    fig = scam.pl.velocity(adata, time=1.0, kind="arrows", return_fig=True)
    ax = main_axes(fig)[0]
    (q,) = collections_of(ax, Quiver)
    xy = np.c_[q.X, q.Y]
    np.testing.assert_allclose(np.c_[q.U, q.V], model.velocity(xy, 1.0), rtol=1e-4, atol=1e-6)
    # arrows only near the cells observed at that time
    at = adata.obsm["X_pca"][np.isclose(adata.obs["time"], 1.0)]
    d = np.min(np.linalg.norm(xy[:, None] - at[None], axis=2), axis=1)
    span = np.ptp(at, axis=0).max()
    assert 10 < len(xy) < 400 and d.max() <= 0.2 * span
    assert "time 1" in ax.get_title()


def test_velocity_stream_and_smooth(adata):
    fig = scam.pl.velocity(adata, return_fig=True)  # default: stream at the middle time point
    ax = main_axes(fig)[0]
    streams = [c for c in collections_of(ax, LineCollection) if len(c.get_segments())]
    assert len(streams) == 1
    seg = np.concatenate(streams[0].get_segments())
    at = adata.obsm["X_pca"][np.isclose(adata.obs["time"], 1.0)]
    lo, hi = at.min(axis=0), at.max(axis=0)
    pad = 0.1 * (hi - lo)
    assert np.all(seg >= lo - pad) and np.all(seg <= hi + pad)
    assert "time 1" in ax.get_title()
    # the smoothed field points the same way as the exact one where cells are dense
    fig = scam.pl.velocity(adata, time=1.0, kind="arrows", method="smooth", return_fig=True)
    (q,) = collections_of(main_axes(fig)[0], Quiver)
    exact = scam.tl.get_model(adata).velocity(np.c_[q.X, q.Y], 1.0)
    cos = np.sum(exact * np.c_[q.U, q.V], axis=1) / (np.linalg.norm(exact, axis=1) * np.hypot(q.U, q.V) + 1e-12)
    assert np.median(cos) > 0.8


def test_velocity_other_basis_and_kwargs(adata):
    fig = scam.pl.velocity(adata, basis="X_umap", kind="arrows", width=0.01, return_fig=True)
    ax = main_axes(fig)[0]
    (q,) = collections_of(ax, Quiver)
    assert q.width == 0.01
    emb = adata.obsm["X_umap"][np.isclose(adata.obs["time"], 1.0)]
    assert np.all(np.c_[q.X, q.Y] >= emb.min(axis=0) - 0.2 * np.ptp(emb, axis=0))
    assert "kNN" in ax.get_title() and ax.get_xlabel() == "UMAP1"
    fig = scam.pl.velocity(adata, basis="umap", color="branch", arrowsize=2, return_fig=True)
    assert any(len(c.get_segments()) for c in collections_of(main_axes(fig)[0], LineCollection))


def test_velocity_errors(adata):
    with pytest.raises(ValueError, match="`kind` must be 'stream' or 'arrows'"):
        scam.pl.velocity(adata, kind="quiver")
    with pytest.raises(ValueError, match="outside the fitted time range"):
        scam.pl.velocity(adata, time=5.0)
    with pytest.raises(ValueError, match="method='slice'"):
        scam.pl.velocity(adata, basis="umap", method="slice")
    with pytest.raises(ValueError, match="`method` must be"):
        scam.pl.velocity(adata, method="exact")
    with pytest.raises(KeyError, match=r"Run `scam.tl.action_matching` first"):
        scam.pl.velocity(ad.AnnData(obsm={"X_pca": np.zeros((3, 2))}))


# ============================================================================ potential
def test_potential_panels_and_scale(adata):
    model = scam.tl.get_model(adata)
    fig = scam.pl.potential(adata, times=[0.0, 2.0], return_fig=True)
    axes = main_axes(fig)
    assert len(axes) == 2 and [a.get_title() for a in axes] == ["time 0", "time 2"]
    (cb,) = colorbars(fig)
    assert "growth" in cb.ax.get_ylabel()  # unbalanced: phi as is, its sign is that of g
    x, t = adata.obsm["X_pca"], adata.obs["time"].to_numpy()
    for a, tt in zip(axes, [0.0, 2.0]):
        (cs,) = [c for c in a.collections if isinstance(c, QuadContourSet) and c.filled]
        phi = model.potential(x[np.isclose(t, tt)], tt)
        # one shared scale that covers the cells' potential
        assert cs.levels[0] <= np.percentile(phi, 10) and cs.levels[-1] >= np.percentile(phi, 90)
        cells = [s for s in collections_of(a, PathCollection) if len(s.get_offsets())]
        np.testing.assert_allclose(cells[0].get_offsets(), x[np.isclose(t, tt)])
    levels = [c.levels for a in axes for c in a.collections if isinstance(c, QuadContourSet) and c.filled]
    np.testing.assert_array_equal(levels[0], levels[1])


def test_potential_default_times_balanced_and_kwargs(adata):
    fig = scam.pl.potential(adata, key="bal", method="smooth", cells=False, alpha=0.5, return_fig=True)
    axes = main_axes(fig)
    assert len(axes) == len(TIMES)
    (cb,) = colorbars(fig)
    assert "relative to mean" in cb.ax.get_ylabel()
    for a in axes:
        (cs,) = [c for c in a.collections if isinstance(c, QuadContourSet) and c.filled]
        assert cs.get_alpha() == 0.5
        assert not [s for s in collections_of(a, PathCollection) if len(s.get_offsets())]


def test_potential_errors(adata):
    with pytest.raises(ValueError, match="outside the fitted time range"):
        scam.pl.potential(adata, times=[0.0, 3.0])
    with pytest.raises(ValueError, match="empty"):
        scam.pl.potential(adata, times=[])
    with pytest.raises(KeyError, match=r"Run `scam.tl.action_matching` first"):
        scam.pl.potential(adata, key="nope")
    with pytest.raises(ValueError, match="2 panel"):
        _, ax = plt.subplots()
        scam.pl.potential(adata, times=[0.0, 1.0], ax=ax)


# ============================================================================ growth
def test_growth_panels(adata):
    g = adata.obs["action_matching_growth"].to_numpy()
    fig = scam.pl.growth(adata, groupby="branch", return_fig=True)
    emb_ax, box_ax, mass_ax = main_axes(fig)
    # embedding: every cell, coloured by its rate on a scale centred at 0, strongest on top
    (sc,) = [s for s in collections_of(emb_ax, PathCollection) if len(s.get_offsets())]
    order = np.argsort(np.abs(g))
    np.testing.assert_allclose(sc.get_array(), g[order])
    np.testing.assert_allclose(sc.get_offsets(), adata.obsm["X_pca"][order])
    assert sc.norm.vmin == pytest.approx(-sc.norm.vmax)
    assert "growth rate" in colorbars(fig)[0].ax.get_ylabel()
    # groups: one box per branch, medians = the groups' median rates
    labels = [t.get_text() for t in box_ax.get_xticklabels()]
    assert labels == ["proliferating", "dying"]
    medians = [ln.get_ydata()[0] for ln in box_ax.lines if ln.get_color() == "0.1"]
    expected = [np.median(g[adata.obs["branch"].to_numpy() == c]) for c in labels]
    np.testing.assert_allclose(medians, expected)
    # mass: the model's total mass over time, as stored
    mass = adata.uns["action_matching"]["mass"]
    (model_line,) = [ln for ln in mass_ax.lines if ln.get_label() == "model"]
    np.testing.assert_allclose(model_line.get_xdata(), mass["times"])
    np.testing.assert_allclose(model_line.get_ydata(), mass["model"])
    assert "given: equal masses" in [t.get_text() for t in mass_ax.get_legend().get_texts()]


def test_growth_observed_masses_and_kwargs(adata):
    b = adata.copy()
    entry = dict(b.uns["action_matching"])
    entry["params"] = {**entry["params"], "growth": "counts"}
    entry["mass"] = {**entry["mass"], "observed": np.array([1.0, 1.2, 1.5, 1.9, 2.4])}
    b.uns["action_matching"] = entry
    fig = scam.pl.growth(b, panels="mass", return_fig=True)
    (ax,) = main_axes(fig)
    (obs,) = collections_of(ax, PathCollection)
    np.testing.assert_allclose(obs.get_offsets(), np.c_[TIMES, [1.0, 1.2, 1.5, 1.9, 2.4]])
    assert "observed (cell counts)" in [t.get_text() for t in ax.get_legend().get_texts()]
    fig = scam.pl.growth(adata, panels=["embedding"], basis="umap", marker="s", return_fig=True)
    (ax,) = main_axes(fig)
    (sc,) = [s for s in collections_of(ax, PathCollection) if len(s.get_offsets())]
    assert ax.get_xlabel() == "UMAP1"
    assert len(sc.get_paths()) == 1 and len(sc.get_paths()[0].vertices) == 5  # square marker


def test_growth_errors(adata):
    with pytest.raises(ValueError, match="balanced; refit with `growth=`"):
        scam.pl.growth(adata, key="bal")
    with pytest.raises(KeyError, match=r"Run `scam.tl.action_matching` first"):
        scam.pl.growth(adata, key="nope")
    b = adata.copy()
    del b.obs["action_matching_growth"]
    with pytest.raises(KeyError, match=r"lacks `adata.obs\['action_matching_growth'\]`.*Run `scam.tl.action_matching` first"):
        scam.pl.growth(b)
    with pytest.raises(ValueError, match="needs `groupby=`"):
        scam.pl.growth(adata, panels=["groups"])
    with pytest.raises(KeyError, match="`groupby='nope'`"):
        scam.pl.growth(adata, groupby="nope")
    with pytest.raises(ValueError, match="Unknown panel"):
        scam.pl.growth(adata, panels=["mass", "pie"])


# ============================================================================ wasserstein
def stored_results(adata):
    res = adata.uns["holdout_eval"]["results"]
    return pd.DataFrame({k: np.asarray(v) for k, v in res.items()})


def test_wasserstein_bars_are_the_stored_values(adata):
    df = stored_results(adata)
    fig = scam.pl.wasserstein(adata, return_fig=True)
    (ax,) = main_axes(fig)
    methods = ["scam", "previous", "ot_interpolation"]
    assert len(ax.containers) >= 3
    bars = [c for c in ax.containers if isinstance(c, matplotlib.container.BarContainer)]
    assert len(bars) == 3
    for m, bc in zip(methods, bars):
        sel = (df["method"] == m) & (df["metric"] == "w1")
        assert bc[0].get_height() == pytest.approx(df.loc[sel, "value"].mean())
    # spread over the two seeds of scam: an error bar (sd) and one dot per seed; baselines have none
    assert bars[0].errorbar is not None and bars[1].errorbar is None and bars[2].errorbar is None
    seeds = df.loc[(df["method"] == "scam") & (df["metric"] == "w1"), "value"].to_numpy()
    (err_lines,) = bars[0].errorbar.lines[2]
    (seg,) = err_lines.get_segments()
    assert seg[1, 1] - seg[0, 1] == pytest.approx(2 * np.std(seeds, ddof=1))
    dots = [s for s in collections_of(ax, PathCollection) if len(s.get_offsets()) == 2]
    assert len(dots) == 1 and np.allclose(np.sort(dots[0].get_offsets()[:, 1]), np.sort(seeds))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1"]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["scam", "previous time point (baseline)", "OT interpolation (baseline)"]
    assert ax.get_ylim()[0] == 0


def test_wasserstein_options_and_kwargs(adata):
    df = stored_results(adata)
    fig = scam.pl.wasserstein(adata, metric="w2", methods=["ot_interpolation", "scam"], kind="points",
                              return_fig=True)
    (ax,) = main_axes(fig)
    assert "W2" in ax.get_ylabel()
    means = [c.lines[0].get_ydata()[0] for c in ax.containers]
    expected = [df.loc[(df["method"] == m) & (df["metric"] == "w2"), "value"].mean() for m in ["ot_interpolation", "scam"]]
    np.testing.assert_allclose(means, expected)
    fig = scam.pl.wasserstein(adata, hatch="//", values=False, return_fig=True)
    (ax,) = main_axes(fig)
    assert all(p.get_hatch() == "//" for p in ax.patches)
    assert not [t for t in ax.texts if t.get_text()]


def test_wasserstein_errors(adata):
    with pytest.raises(KeyError, match=r"Run `scam.tl.evaluate_holdout` first"):
        scam.pl.wasserstein(adata, key="nope")
    with pytest.raises(ValueError, match=r"No results for `metric='mmd'`; available: \['w1', 'w2'\]"):
        scam.pl.wasserstein(adata, metric="mmd")
    with pytest.raises(ValueError, match="No results for method"):
        scam.pl.wasserstein(adata, methods=["scam", "moscot"])
    with pytest.raises(ValueError, match="`kind` must be"):
        scam.pl.wasserstein(adata, kind="violin")


# ============================================================================ fate
def test_fate_heatmap_is_the_transition_table(adata):
    entry = adata.uns["fate_probabilities"]
    fig = scam.pl.fate(adata, return_fig=True)
    axes = main_axes(fig)
    assert len(axes) == 3  # two maps and the heatmap
    (im,) = axes[-1].get_images()
    assert isinstance(im, AxesImage)
    np.testing.assert_allclose(im.get_array(), entry["transition"])
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == list(entry["groups"])
    assert [t.get_text() for t in axes[-1].get_yticklabels()] == list(entry["source_groups"])
    numbers = [float(t.get_text()) for t in axes[-1].texts]
    np.testing.assert_allclose(numbers, np.round(np.ravel(entry["transition"]), 2))
    assert axes[-1].get_xlabel() == "branch at time 2" and axes[-1].get_ylabel() == "branch at time 0.5"


def test_fate_maps_colour_the_source_cells(adata):
    probs = adata.obsm["fate_probabilities"]
    src = probs.notna().all(axis=1).to_numpy()
    fig = scam.pl.fate(adata, groups="dying", transition=False, basis="umap", return_fig=True)
    (ax,) = main_axes(fig)
    assert ax.get_title() == "P(fate = dying)"
    (sc,) = [s for s in collections_of(ax, PathCollection) if s.get_array() is not None]
    c = probs["dying"].to_numpy()
    order = np.nonzero(src)[0][np.argsort(c[src], kind="stable")]
    np.testing.assert_allclose(sc.get_array(), c[order])
    np.testing.assert_allclose(sc.get_offsets(), adata.obsm["X_umap"][order])
    assert sc.norm.vmin == 0 and sc.norm.vmax == 1
    # only the heatmap
    fig = scam.pl.fate(adata, groups=[], return_fig=True)
    assert len(main_axes(fig)) == 1 and main_axes(fig)[0].get_images()
    # styling reaches the scatter
    fig = scam.pl.fate(adata, groups=["proliferating"], transition=False, alpha=0.4, return_fig=True)
    (sc,) = [s for s in collections_of(main_axes(fig)[0], PathCollection) if s.get_array() is not None]
    assert sc.get_alpha() == 0.4


def test_fate_backward_is_origin(adata):
    b = adata.copy()
    scam.tl.fate_probabilities(b, source_time=2.0, target_time=0.5, groupby="branch", key_added="origin")
    fig = scam.pl.fate(b, key="origin", return_fig=True)
    axes = main_axes(fig)
    assert axes[0].get_title().startswith("P(origin = ")
    assert axes[-1].get_title() == "origin probability"
    np.testing.assert_allclose(axes[-1].get_images()[0].get_array(), b.uns["origin"]["transition"])


def test_fate_errors(adata):
    b = adata.copy()
    del b.obsm["fate_probabilities"]
    with pytest.raises(KeyError, match=r"Run `scam.tl.fate_probabilities` first"):
        scam.pl.fate(b)
    with pytest.raises(ValueError, match="not among the fate groups"):
        scam.pl.fate(adata, groups="neuron")
    with pytest.raises(ValueError, match="Nothing to draw"):
        scam.pl.fate(adata, groups=[], transition=False)


# ============================================================================ history
def test_history_curves(adata):
    hist = adata.uns["action_matching"]["history"]
    fig = scam.pl.history(adata, return_fig=True)
    (ax,) = main_axes(fig)
    train, val = [ln for ln in ax.lines if ln.get_label() in ("training loss", "validation loss")]
    np.testing.assert_allclose(train.get_xdata(), hist["step"])
    np.testing.assert_allclose(train.get_ydata(), hist["loss"])
    np.testing.assert_allclose(val.get_ydata(), hist["val_loss"])
    best = int(np.argmin(hist["val_loss"]))
    (marker,) = collections_of(ax, PathCollection)
    np.testing.assert_allclose(marker.get_offsets(), [[hist["step"][best], hist["val_loss"][best]]])
    assert ax.get_yscale() == ("log" if np.all(np.r_[hist["loss"], hist["val_loss"]] > 0) else "linear")
    fig = scam.pl.history(adata, key="bal", color="k", lw=3, return_fig=True)
    (ax,) = main_axes(fig)
    assert ax.lines[0].get_linewidth() == 3 and "(bal)" in ax.get_title()


def test_history_errors(adata):
    with pytest.raises(KeyError, match=r"Run `scam.tl.action_matching` first"):
        scam.pl.history(adata, key="nope")
    if np.any(np.asarray(adata.uns["action_matching"]["history"]["loss"]) <= 0):
        with pytest.raises(ValueError, match="positive losses"):
            scam.pl.history(adata, log=True)
    b = adata.copy()
    b.uns["action_matching"] = {**b.uns["action_matching"], "history": {}}
    with pytest.raises(ValueError, match="no training history"):
        scam.pl.history(b)


# ============================================================================ conventions
ONE_PANEL = {
    "trajectories": dict(n_paths=5),
    "velocity": dict(kind="arrows"),
    "potential": dict(times=[1.0]),
    "growth": dict(panels=["mass"]),
    "wasserstein": {},
    "fate": dict(groups="dying", transition=False),
    "history": {},
}
FUNCS = sorted(ONE_PANEL)


def test_public_api():
    assert sorted(scam.pl.__all__) == FUNCS
    assert scam.pl is scam.__dict__["pl"]


@pytest.mark.parametrize("name", FUNCS)
def test_signature_and_docstring(name):
    func = getattr(scam.pl, name)
    params = list(inspect.signature(func).parameters.values())
    assert params[0].name == "adata" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    for p in params[1:]:
        assert p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD), p.name
    names = [p.name for p in params]
    assert {"ax", "show", "return_fig"} <= set(names) and "save" not in names
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD  # styling goes to matplotlib
    doc = inspect.getdoc(func)
    assert "Parameters\n----------" in doc and "Returns\n-------" in doc
    section = doc.split("Parameters\n----------")[1].split("Returns\n-------")[0]
    documented = {n.strip() for line in section.splitlines() if line and not line.startswith(" ")
                  for n in line.split(",")}
    for n in names:
        assert n.lstrip("*") in documented or f"**{n}" in documented or n in documented, (name, n)


@pytest.mark.parametrize("name", FUNCS)
def test_ax_show_return_fig(name, adata, monkeypatch):
    func, kw = getattr(scam.pl, name), ONE_PANEL[name]
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    # default: a new figure, nothing returned, not shown (Agg is not interactive)
    before = set(plt.get_fignums())
    assert func(adata, **kw) is None
    assert len(set(plt.get_fignums()) - before) == 1 and not shown
    # return_fig
    fig = func(adata, return_fig=True, **kw)
    assert isinstance(fig, Figure)
    # show=True calls plt.show
    assert func(adata, show=True, **kw) is None and shown == [1]
    # in interactive mode (a notebook) show=None shows the figure, unless it is returned
    monkeypatch.setattr(matplotlib, "is_interactive", lambda: True)
    func(adata, **kw)
    assert shown == [1, 1]
    func(adata, return_fig=True, **kw)
    assert shown == [1, 1]
    monkeypatch.setattr(matplotlib, "is_interactive", lambda: False)
    # ax: draws into the given axes, creates no figure
    fig, ax = plt.subplots()
    n_figs = len(plt.get_fignums())
    assert func(adata, ax=ax, show=False, **kw) is None
    assert len(plt.get_fignums()) == n_figs
    assert ax.has_data() or ax.get_images() or ax.collections
    assert func(adata, ax=ax, return_fig=True, **kw) is fig
    with pytest.raises(TypeError, match="`ax` must be a matplotlib Axes"):
        func(adata, ax="left", **kw)


def test_h5ad_roundtrip_then_plot(adata, tmp_path):
    path = tmp_path / "pl.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    for name in FUNCS:
        fig = getattr(scam.pl, name)(back, return_fig=True)
        assert isinstance(fig, Figure), name
    fig = scam.pl.growth(back, groupby="branch", return_fig=True)
    assert len(main_axes(fig)) == 3
