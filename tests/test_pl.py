"""scam.pl: what each figure draws, its errors, and the ax/show/return_fig convention (rendered off-screen)."""

from __future__ import annotations

import inspect

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.contour import QuadContourSet
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.quiver import Quiver

import scam
from scam.pl import _utils as plu
from scam.pl._dynamics import _velocity_field

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
    sim = b.uns["action_matching_simulation"]
    sim["log_weights"] = np.zeros_like(sim["log_weights"])
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


def test_trajectories_coarse_times_are_points_not_straight_lines(adata):
    b = adata.copy()
    scam.tl.simulate(b, source_time=2.0, target_times=[1.0, 0.0], key_added="back")
    with pytest.warns(UserWarning, match="too few for smooth paths"):
        fig = scam.pl.trajectories(b, simulation_key="back", n_paths=None, return_fig=True)
    ax = main_axes(fig)[0]
    assert not collections_of(ax, LineCollection)  # no straight segment between days far apart
    pos = np.asarray(b.uns["back"]["positions"])
    # the middle time is drawn as points at the simulated positions, coloured by that time
    (mid,) = [s for s in collections_of(ax, PathCollection) if s.get_array() is not None]
    np.testing.assert_allclose(mid.get_offsets(), pos[1, :, :2], atol=1e-6)
    np.testing.assert_allclose(mid.get_array(), 1.0)
    assert "from time 2" in ax.get_title() and "positions" in ax.get_title()
    assert colorbars(fig)[0].ax.get_xlabel() == "time"


def test_trajectories_fine_stretch_is_a_path_coarse_step_is_not(adata):
    b = adata.copy()
    fine = np.round(np.linspace(0.05, 1.0, 20), 6)  # steps of 0.05: fine; then 1.0 -> 2.0: coarse
    scam.tl.simulate(b, target_times=np.r_[fine, 2.0], key_added="mixed")
    with pytest.warns(UserWarning, match="recorded positions only"):
        fig = scam.pl.trajectories(b, simulation_key="mixed", n_paths=7, return_fig=True)
    ax = main_axes(fig)[0]
    (lc,) = collections_of(ax, LineCollection)
    assert len(lc.get_segments()) == 7 * 20  # the 20 fine steps of each path, not the last one
    assert lc.get_array().max() < 1.0
    (pts,) = [s for s in collections_of(ax, PathCollection) if s.get_array() is not None]
    np.testing.assert_allclose(pts.get_array(), 1.0)  # where the fine stretch ends


def test_trajectories_default_simulation_is_fine_and_warns_nothing(adata, recwarn):
    times = np.asarray(adata.uns["action_matching_simulation"]["times"])
    assert len(times) >= 41  # scam.tl.simulate's default fine grid
    scam.pl.trajectories(adata, n_paths=5, return_fig=True)
    assert not [w for w in recwarn if "smooth paths" in str(w.message)]


def _jaggedness(xy):
    """Total turning of a path ``(T, 2)`` relative to its length: 0 for a straight line."""
    return np.abs(np.diff(xy, 2, axis=0)).sum() / max(np.abs(np.diff(xy, axis=0)).sum(), 1e-12)


def test_trajectories_in_a_nonlinear_basis_are_smooth(adata):
    sim = adata.uns["action_matching_simulation"]
    pos = np.asarray(sim["positions"], dtype=float)
    n_t = len(sim["times"])
    fig = scam.pl.trajectories(adata, basis="umap", n_paths=None, return_fig=True)
    (lc,) = collections_of(main_axes(fig)[0], LineCollection)
    segs = np.asarray(lc.get_segments()).reshape(pos.shape[1], n_t - 1, 2, 2)
    drawn = np.concatenate([segs[:, :, 0], segs[:, -1:, 1]], axis=1)  # (paths, T, 2)
    # the same paths through the former inverse-distance kNN regression (15 neighbours)
    from sklearn.neighbors import KNeighborsRegressor

    from scam.tl._utils import fit_embedding

    x_all, _, _ = fit_embedding(adata, "action_matching")
    former = KNeighborsRegressor(n_neighbors=15, weights="distance").fit(x_all, adata.obsm["X_umap"])
    knn = former.predict(pos.reshape(-1, 2)).reshape(n_t, -1, 2)
    jag_new = np.median([_jaggedness(p) for p in drawn])
    jag_knn = np.median([_jaggedness(knn[:, i]) for i in range(knn.shape[1])])
    assert jag_new < 0.5 * jag_knn
    # and they still go where the kNN placement goes (same end region), starting exactly at their cells
    end_gap = np.linalg.norm(drawn[:, -1] - knn[-1], axis=1)
    assert np.median(end_gap) < 0.1 * np.ptp(adata.obsm["X_umap"], axis=0).max()


def test_embedding_map_is_smooth_and_reproduces_a_linear_embedding():
    gen = np.random.default_rng(0)
    x = gen.normal(size=(2000, 3))
    a = np.array([[1.0, -2.0, 0.5], [0.3, 1.0, 2.0]])
    emb = x @ a.T
    emap = plu.EmbeddingMap(x, emb, n_neighbors=30)
    line = np.c_[np.linspace(-1, 1, 400), np.zeros(400), np.zeros(400)]
    out = emap.predict(line)
    # close to the linear map inside the data ...
    np.testing.assert_allclose(out, line @ a.T, atol=0.25)
    # ... and continuous: no step is much larger than the true one (a kNN average jumps)
    true_step = np.linalg.norm(np.diff(line @ a.T, axis=0), axis=1).max()
    assert np.linalg.norm(np.diff(out, axis=0), axis=1).max() < 3 * true_step


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


def test_velocity_field_is_the_model_velocity_on_the_grid(adata):
    model = scam.tl.get_model(adata)
    f = _velocity_field(adata, time=1.0, method="slice", grid_size=15)
    assert f["u"].shape == f["v"].shape == (15, 15)
    xx, yy = np.meshgrid(f["gx"], f["gy"])
    inside = np.isfinite(f["u"])
    assert 10 < inside.sum() < inside.size  # the field near the cells only
    expected = model.velocity(np.c_[xx[inside], yy[inside]], 1.0)  # a 2-D fit: the grid points themselves
    np.testing.assert_allclose(np.c_[f["u"][inside], f["v"][inside]], expected, rtol=1e-5, atol=1e-7)
    assert np.isnan(f["v"][~inside]).all()
    np.testing.assert_array_equal(f["at"], np.isclose(adata.obs["time"], 1.0))


def test_velocity_field_smooth_is_the_kernel_average_of_the_cells(adata):
    model = scam.tl.get_model(adata)
    f = _velocity_field(adata, time=1.0, method="smooth", grid_size=12)
    x = adata.obsm["X_pca"][f["at"]]
    span = max(np.ptp(f["gx"]), np.ptp(f["gy"]))
    expected = plu.smooth_to_grid(x, model.velocity(x, 1.0), f["gx"], f["gy"], bandwidth=1.5 * span / 40)
    inside = np.isfinite(f["u"])
    np.testing.assert_allclose(f["u"][inside], expected[..., 0][inside], rtol=1e-10)
    np.testing.assert_allclose(f["v"][inside], expected[..., 1][inside], rtol=1e-10)


def test_velocity_field_in_another_basis_is_the_mapped_displacement(adata):
    b = adata.copy()
    x = b.obsm["X_pca"]
    lin = np.array([[2.0, 0.5], [-0.5, 1.0]])
    b.obsm["X_lin"] = x @ lin.T  # a linear "embedding": the true projected field is lin @ v
    model = scam.tl.get_model(b)
    f = _velocity_field(b, time=1.0, basis="lin", grid_size=12, n_neighbors=30)
    at = f["at"]
    emap = plu.EmbeddingMap(x, b.obsm["X_lin"], n_neighbors=30)
    v_cells = model.velocity(x[at], 1.0)
    vxy = (emap.predict(x[at] + f["dt"] * v_cells) - emap.predict(x[at])) / f["dt"]
    span = max(np.ptp(f["gx"]), np.ptp(f["gy"]))
    expected = plu.smooth_to_grid(b.obsm["X_lin"][at], vxy, f["gx"], f["gy"], bandwidth=1.5 * span / 40)
    inside = np.isfinite(f["u"])
    np.testing.assert_allclose(np.c_[f["u"][inside], f["v"][inside]], expected[inside], rtol=1e-10)
    assert f["dt"] == pytest.approx(0.25)  # half the smallest gap between time points
    # and it approximates the true projected field lin @ v, averaged the same way
    truth = plu.smooth_to_grid(b.obsm["X_lin"][at], v_cells @ lin.T, f["gx"], f["gy"], bandwidth=1.5 * span / 40)
    got, want = np.c_[f["u"][inside], f["v"][inside]], truth[inside]
    cos = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1) + 1e-12)
    assert np.median(cos) > 0.95
    ratio = np.linalg.norm(got, axis=1) / np.maximum(np.linalg.norm(want, axis=1), 1e-12)
    assert 0.6 < np.median(ratio) < 1.4


def test_velocity_draws_the_field_it_computes(adata):
    fig = scam.pl.velocity(adata, time=1.0, kind="arrows", grid_size=14, return_fig=True)
    (q,) = collections_of(main_axes(fig)[0], Quiver)
    f = _velocity_field(adata, time=1.0, grid_size=14)
    ok = np.isfinite(f["u"])
    xx, yy = np.meshgrid(f["gx"], f["gy"])
    np.testing.assert_allclose(np.c_[q.X, q.Y], np.c_[xx[ok], yy[ok]])
    np.testing.assert_allclose(np.c_[q.U, q.V], np.c_[f["u"][ok], f["v"][ok]])


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
def _images(ax):
    return [im for im in ax.get_images() if isinstance(im, AxesImage)]


def test_potential_panels_scale_and_centring(adata):
    model = scam.tl.get_model(adata)
    fig = scam.pl.potential(adata, times=[0.0, 2.0], grid_size=60, return_fig=True)
    axes = main_axes(fig)
    assert len(axes) == 2 and [a.get_title() for a in axes] == ["time 0", "time 2"]
    x, t = adata.obsm["X_pca"], adata.obs["time"].to_numpy()
    norms = []
    for a, tt in zip(axes, [0.0, 2.0]):
        (im,) = _images(a)
        # the shaded grid is the model's potential on the grid (a 2-D fit), shifted to mean 0 over
        # the cells of that time: with a separate growth network phi is only defined up to a constant
        x0, x1, y0, y1 = im.get_extent()
        gx, gy = np.linspace(x0, x1, 60), np.linspace(y0, y1, 60)
        xx, yy = np.meshgrid(gx, gy)
        cells = x[np.isclose(t, tt)]
        grid = model.potential(np.c_[xx.ravel(), yy.ravel()], tt).reshape(60, 60)
        expected = grid - model.potential(cells, tt).mean()
        np.testing.assert_allclose(np.asarray(im.get_array()), expected, rtol=1e-5, atol=1e-5)
        norms.append((im.norm.vmin, im.norm.vmax))
        # the cells of that time on top
        dots = [s for s in collections_of(a, PathCollection) if len(s.get_offsets())]
        np.testing.assert_allclose(dots[0].get_offsets(), cells)
    assert norms[0] == norms[1]  # one colour scale for all panels
    # set by the values the panels' own cells sit at (2nd-98th percentile, pooled), not by the field
    # extrapolated over the cells of other times
    centred = [model.potential(x[np.isclose(t, tt)], tt) for tt in (0.0, 2.0)]
    at_cells = np.concatenate([s - s.mean() for s in centred])
    lo, hi = np.percentile(at_cells, [2, 98])
    spread = hi - lo
    assert abs(norms[0][0] - lo) < 0.05 * spread and abs(norms[0][1] - hi) < 0.05 * spread, (norms[0], lo, hi)
    (cb,) = colorbars(fig)
    label = cb.ax.get_ylabel()
    # the sign convention and units are on the colour bar
    assert "velocity = +∇φ" in label and "uphill" in label
    assert "(PC units)² per time unit" in label and "mean over cells" in label
    assert "growth" not in label


def test_potential_edges_are_smooth_not_grid_steps(adata):
    fig = scam.pl.potential(adata, times=[1.0], grid_size=50, return_fig=True)
    (a,) = main_axes(fig)
    (im,) = _images(a)
    assert im.get_interpolation() == "bilinear"
    clip = im.get_clip_path()
    assert clip is not None
    verts = clip.get_fully_transformed_path().vertices
    steps = np.diff(verts, axis=0)
    steps = steps[np.linalg.norm(steps, axis=1) > 1e-9]
    axis_aligned = np.mean(np.min(np.abs(steps), axis=1) < 1e-6 * np.abs(steps).max())
    assert axis_aligned < 0.3  # a masked grid's outline would be all horizontal and vertical steps
    # the outline encloses the cells of every fitted time
    x = adata.obsm["X_pca"]
    path = clip.get_fully_transformed_path()
    assert path.contains_points(a.transData.transform(x)).mean() > 0.99


def test_potential_tied_to_growth_is_shown_as_is():
    a = scam.datasets.simulate("branching", n_cells=60, rng=1)
    scam.tl.action_matching(a, "time", growth="learn", config={"growth_model": "potential", **TINY["config"]},
                            network=TINY["network"], progress=False, rng=0)
    model = scam.tl.get_model(a)
    assert model.growth_net is None and model.growth_weight > 0
    a.obs["day"] = a.obs["time"]
    a.uns["action_matching"]["params"]["time_key"] = "day"
    fig = scam.pl.potential(a, times=[1.0], grid_size=40, return_fig=True)
    (ax,) = main_axes(fig)
    (im,) = _images(ax)
    x0, x1, y0, y1 = im.get_extent()
    xx, yy = np.meshgrid(np.linspace(x0, x1, 40), np.linspace(y0, y1, 40))
    expected = model.potential(np.c_[xx.ravel(), yy.ravel()], 1.0).reshape(40, 40)  # not centred
    np.testing.assert_allclose(np.asarray(im.get_array()), expected, rtol=1e-5, atol=1e-6)
    label = colorbars(fig)[0].ax.get_ylabel()
    assert "φ > 0: growth" in label and "velocity = +∇φ" in label and "per day" in label
    assert "mean" not in label


def test_potential_default_times_smooth_and_kwargs(adata):
    fig = scam.pl.potential(adata, key="bal", method="smooth", cells=False, alpha=0.5, return_fig=True)
    axes = main_axes(fig)
    assert len(axes) == len(TIMES)
    (cb,) = colorbars(fig)
    assert "mean over cells" in cb.ax.get_ylabel()
    lines = [[c.levels for c in a.collections if isinstance(c, QuadContourSet)] for a in axes]
    for a, lv in zip(axes, lines):
        (im,) = _images(a)
        assert im.get_alpha() == 0.5
        assert not [s for s in collections_of(a, PathCollection) if len(s.get_offsets())]
        np.testing.assert_array_equal(lv[0], lines[0][0])  # the same contour levels in every panel
    np.testing.assert_allclose(cb.get_ticks(), lines[0][0])


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
    lacks = r"lacks `adata.obs\['action_matching_growth'\]`.*Run `scam.tl.action_matching` first"
    with pytest.raises(KeyError, match=lacks):
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
    w2 = df["metric"] == "w2"
    expected = [df.loc[(df["method"] == m) & w2, "value"].mean() for m in ["ot_interpolation", "scam"]]
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
FATES = "action_matching_fates"


def _width_px(fig):
    return fig.get_size_inches()[0] * fig.dpi


@pytest.fixture(scope="module")
def many_fates(adata):
    """The fixture's fit with fates into 3, 6 and 12 groups (the cells at time 2 split by position)."""
    b = adata.copy()
    t2 = np.isclose(b.obs["time"], 2.0)
    rank = np.argsort(np.argsort(b.obsm["X_umap"][t2, 1]))  # cells at time 2 in bands along UMAP2
    for n in (3, 6, 12):
        lab = np.full(b.n_obs, "s0", dtype=object)
        lab[t2] = [f"s{i}" for i in (rank * n) // t2.sum()]
        b.obs[f"g{n}"] = pd.Categorical(lab, categories=[f"s{i}" for i in range(n)])
        scam.tl.fate_probabilities(b, source_time=0.5, target_time=2.0, groupby=f"g{n}", key_added=f"fate{n}")
    return b


def test_fate_heatmap_is_the_transition_table_with_counts(adata):
    entry = adata.uns[FATES]
    fig = scam.pl.fate(adata, return_fig=True)
    axes = main_axes(fig)
    assert len(axes) == 3  # two maps and the heatmap
    (im,) = axes[-1].get_images()
    assert isinstance(im, AxesImage)
    np.testing.assert_allclose(im.get_array(), entry["transition"])
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == list(entry["groups"])
    # rows: the groups at source_time with their numbers of cells
    src = adata.obsm[FATES].notna().all(axis=1).to_numpy()
    branch = adata.obs["branch"].astype(str).to_numpy()
    expected = [f"{g} (n={int(np.sum(src & (branch == g)))})" for g in entry["source_groups"]]
    assert [t.get_text() for t in axes[-1].get_yticklabels()] == expected
    assert sum(int(re.search(r"n=(\d+)", e).group(1)) for e in expected) == src.sum()
    numbers = [float(t.get_text()) for t in axes[-1].texts]
    np.testing.assert_allclose(numbers, np.round(np.ravel(entry["transition"]), 2))
    assert axes[-1].get_xlabel() == "branch at time 2" and axes[-1].get_ylabel() == "branch at time 0.5"


def test_fate_one_colour_per_state_everywhere(adata):
    b = adata.copy()
    b.uns["branch_colors"] = ["#e41a1c", "#377eb8"]  # scanpy's colours win over the default palette
    cats = list(b.obs["branch"].cat.categories)
    lut = dict(zip(cats, b.uns["branch_colors"]))
    fig = scam.pl.fate(b, return_fig=True)
    *maps, heat = main_axes(fig)
    t2 = np.isclose(b.obs["time"], 2.0)
    branch = b.obs["branch"].astype(str).to_numpy()
    for g in cats:
        seen = []
        for a in maps:
            # every panel shows the cells of `g` at time 2: in full colour in g's own panel, faded in the others
            full = [c for c in collections_of(a, PathCollection) if c.get_label() == f"{g} at time 2"]
            if full:
                seen.append(("full", np.unique(full[0].get_facecolors(), axis=0)))
                np.testing.assert_allclose(full[0].get_offsets(), b.obsm["X_pca"][t2 & (branch == g)])
            else:
                mine = t2 & (branch == g)
                for c in collections_of(a, PathCollection):
                    off = np.asarray(c.get_offsets())
                    if len(off) and c.get_array() is None and np.isin(off[:, 0], b.obsm["X_pca"][mine, 0]).all() \
                            and len(off) >= mine.sum():
                        cols = np.asarray(c.get_facecolors())[np.isin(off[:, 0], b.obsm["X_pca"][mine, 0])]
                        seen.append(("faded", np.unique(cols, axis=0)))
        kinds = [k for k, _ in seen]
        assert kinds.count("full") == 1 and len(seen) == len(maps)
        for kind, cols in seen:
            assert len(cols) == 1  # one colour for the state in a panel
            want = matplotlib.colors.to_rgba(lut[g]) if kind == "full" else \
                scam.pl._dynamics._lighten([lut[g]], 0.7)[0]
            np.testing.assert_allclose(cols[0], want, atol=1e-6)
        # the legend and the heatmap's colour keys use the same colour
        legend = [h for leg in fig.findobj(matplotlib.legend.Legend) for h in leg.legend_handles if h.get_label() == g]
        np.testing.assert_allclose(matplotlib.colors.to_rgba(legend[0].get_color()), matplotlib.colors.to_rgba(lut[g]))
    keys = [c for c in collections_of(heat, PathCollection)]
    assert len(keys) == 2  # above the columns, left of the rows
    np.testing.assert_allclose(keys[0].get_facecolors(), [matplotlib.colors.to_rgba(lut[g]) for g in cats])


def test_fate_probability_colours_are_not_state_colours(adata):
    fig = scam.pl.fate(adata, groups="dying", transition=False, return_fig=True)
    (ax,) = main_axes(fig)
    (sc,) = [s for s in collections_of(ax, PathCollection) if s.get_array() is not None]
    rgb = np.asarray(sc.cmap(np.linspace(0, 1, 11)))[:, :3]
    np.testing.assert_allclose(rgb, rgb[:, :1].repeat(3, axis=1), atol=1e-9)  # greys: no hue at all
    assert rgb[0].mean() > 0.75 and rgb[-1].mean() < 0.05  # light (unlikely) to black (likely)
    assert rgb[0].mean() < matplotlib.colors.to_rgb(scam.pl._fate._FAR_GREY)[0]  # every source cell shows
    # the state palette is saturated, so nothing in it is a grey of the probability scale
    for c in plu.category_colors(adata, "branch", ["proliferating", "dying"]).values():
        r, g, b = matplotlib.colors.to_rgb(c)
        assert max(r, g, b) - min(r, g, b) > 0.3


@pytest.mark.parametrize("n", [3, 6, 12])
def test_fate_width_stays_readable(many_fates, n):
    fig = scam.pl.fate(many_fates, key=f"fate{n}", return_fig=True)
    maps = main_axes(fig)[:-1]
    assert len(maps) == n
    assert _width_px(fig) <= 1600 + 1e-6  # at matplotlib's default 100 dpi
    assert fig.dpi == pytest.approx(100.0)
    rows = {round(a.get_position().y0, 3) for a in maps}
    assert len(rows) == int(np.ceil(n / (3 if n <= 9 else 4)))  # wrapped into rows of at most 3 (4)
    # a saved figure is as wide as the figure (no legend or label sticking out)
    fig.canvas.draw()
    bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    assert bbox.width * fig.dpi <= 1600 * 1.02


def test_fate_maps_colour_the_source_cells(adata):
    probs = adata.obsm[FATES]
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
    # styling reaches the scatter; a named colormap is used as given
    fig = scam.pl.fate(adata, groups=["proliferating"], transition=False, alpha=0.4, cmap="magma", return_fig=True)
    (sc,) = [s for s in collections_of(main_axes(fig)[0], PathCollection) if s.get_array() is not None]
    assert sc.get_alpha() == 0.4 and sc.cmap.name == "magma"


def test_fate_backward_is_origin(adata):
    b = adata.copy()
    scam.tl.fate_probabilities(b, source_time=2.0, target_time=0.5, groupby="branch", key_added="origin")
    fig = scam.pl.fate(b, key="origin", return_fig=True)
    axes = main_axes(fig)
    assert axes[0].get_title().startswith("P(origin = ")
    assert axes[-1].get_title() == "origin probability"
    np.testing.assert_allclose(axes[-1].get_images()[0].get_array(), b.uns["origin"]["transition"])


def test_fate_legacy_key(adata):
    b = adata.copy()
    b.obsm["fate_probabilities"] = b.obsm.pop(FATES)
    b.uns["fate_probabilities"] = b.uns.pop(FATES)
    fig = scam.pl.fate(b, return_fig=True)
    assert len(main_axes(fig)) == 3


def test_fate_errors(adata):
    b = adata.copy()
    del b.obsm[FATES]
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
    # every figure here, plus scam.pl.gene_trends (tested with the gene tools in tests/test_genes.py)
    assert set(FUNCS) | {"gene_trends"} == set(scam.pl.__all__)
    assert all(callable(getattr(scam.pl, n)) for n in scam.pl.__all__)
    assert scam.pl is scam.__dict__["pl"]


@pytest.mark.parametrize("name", sorted(scam.pl.__all__))
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


# ============================================================================ one marker-size rule
def test_point_size_rule():
    sizes = [plu.point_size(n) for n in (10, 100, 500, 1000, 10_000, 1_000_000)]
    assert sizes == sorted(sizes, reverse=True)  # more points: smaller markers
    assert sizes[0] == 30.0 and sizes[-1] == 2.0  # within readable limits
    assert plu.point_size(1000) == pytest.approx(15.0)
    for role, factor in plu.MARKER_ROLES.items():
        assert plu.point_size(1000, role) == pytest.approx(15.0 * factor)
    assert plu.point_size(1000, "context") < plu.point_size(1000) < plu.point_size(1000, "summary")
    with pytest.raises(ValueError, match="Unknown marker role"):
        plu.point_size(10, "huge")


def test_no_hard_coded_marker_sizes():
    """Every scatter in scam.pl takes its size from ``point_size`` (legend keys: ``KEY_MARKER_SIZE``)."""
    literal = re.compile(r"""(?<![\w.])(s|ms|markersize)\s*=\s*[0-9]|["'](s|ms|markersize)["']\s*:\s*[0-9]""")
    for path in sorted(Path(scam.pl.__file__).parent.glob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            assert not literal.search(line), f"{path.name}:{i}: {line.strip()}"


def test_scatters_use_the_rule(adata):
    n_obs = adata.n_obs
    at1 = int(np.isclose(adata.obs["time"], 1.0).sum())
    fig = scam.pl.velocity(adata, time=1.0, kind="arrows", return_fig=True)
    sizes = {len(c.get_offsets()): float(c.get_sizes()[0]) for c in collections_of(main_axes(fig)[0], PathCollection)}
    assert sizes[at1] == pytest.approx(plu.point_size(at1))
    assert sizes[n_obs - at1] == pytest.approx(plu.point_size(n_obs - at1, "context"))
    fig = scam.pl.potential(adata, times=[1.0], grid_size=30, return_fig=True)
    (dots,) = [c for c in collections_of(main_axes(fig)[0], PathCollection) if len(c.get_offsets())]
    assert dots.get_sizes()[0] == pytest.approx(plu.point_size(at1, "overlay"))
    fig = scam.pl.growth(adata, panels=["embedding"], return_fig=True)
    (sc,) = [c for c in collections_of(main_axes(fig)[0], PathCollection) if c.get_array() is not None]
    assert sc.get_sizes()[0] == pytest.approx(plu.point_size(len(sc.get_offsets())))
    fig = scam.pl.trajectories(adata, n_paths=20, return_fig=True)
    ends = [c for c in collections_of(main_axes(fig)[0], PathCollection) if len(c.get_offsets()) == 20]
    assert len(ends) == 2 and all(c.get_sizes()[0] == pytest.approx(plu.point_size(20, "overlay")) for c in ends)
