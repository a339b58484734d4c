"""Figures of the learned dynamics: simulated trajectories, the velocity field, the potential landscape."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from ..tl._utils import DEFAULT_KEY, fit_embedding, get_fit, get_model
from ._utils import (
    CONTEXT_GREY,
    KEY_MARKER_SIZE,
    TIME_CMAP,
    EmbeddingMap,
    axis_labels,
    category_colors,
    distance_to_cells,
    fill_grid_points,
    finish,
    grid_2d,
    make_axes,
    nearest_observed_time,
    per_time,
    point_size,
    resolve_basis,
    smooth_to_grid,
    support_path,
    time_label,
    time_norm,
    time_point,
)

#: A simulation step is drawn as part of a path only when it spans at most ``1 / FINE_STEPS`` of the
#: simulated time range (``scam.tl.simulate`` adds 40 steps by default); coarser steps would be
#: straight segments that the cells never travelled, so only their end points are drawn.
FINE_STEPS = 12


def _lighten(colors, amount: float) -> np.ndarray:
    """Blend RGBA colours toward white by ``amount`` (0: unchanged, 1: white)."""
    rgba = np.array(mpl.colors.to_rgba_array(colors))
    rgba[:, :3] = rgba[:, :3] + (1.0 - rgba[:, :3]) * amount
    return rgba


def _outside_legend(ax, handles, *, title=None, loc="upper left", anchor=(1.02, 1.0)):
    """A legend to the right of the axes (it never hides cells); constrained layout makes room."""
    previous = ax.get_legend()
    if previous is not None:  # keep it: a new ``ax.legend`` call would replace it
        ax.add_artist(previous)
    return ax.legend(handles=handles, title=title, loc=loc, bbox_to_anchor=anchor, borderaxespad=0.0,
                     frameon=False, fontsize="small", title_fontsize="small", alignment="left")


def _draw_cells(ax, adata, xy, t_all, color, *, norm, cmap, size, rng, lighten=0.45, alpha=0.9, mask=None,
                legend=True, role="cells"):
    """Observed cells as a light backdrop, coloured by time, an obs column, or plain grey.

    Returns a ScalarMappable when a numeric obs column needs its own colour bar, else ``None``.
    """
    idx = np.arange(len(xy)) if mask is None else np.nonzero(mask)[0]
    idx = idx[np.all(np.isfinite(xy[idx]), axis=1)]
    idx = rng.permutation(idx)  # no time point or group systematically on top
    s = point_size(len(idx), role) if size is None else size
    common = {"s": s, "linewidths": 0, "rasterized": True, "zorder": 1}
    if color is False or (isinstance(color, str) and color == "none"):
        ax.scatter(xy[idx, 0], xy[idx, 1], color=CONTEXT_GREY, alpha=alpha, **common)
        return None
    if color is None:
        rgba = _lighten(plt.get_cmap(cmap)(norm(t_all[idx])), lighten)
        ax.scatter(xy[idx, 0], xy[idx, 1], color=rgba, alpha=alpha, **common)
        return None
    if not isinstance(color, str) or color not in adata.obs:
        raise KeyError(f"`color={color!r}` is not a column of `adata.obs`.")
    col = adata.obs[color]
    if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or col.dtype == bool:
        labels = col.astype(str).to_numpy()
        cats = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else pd.unique(labels)
        present = [str(c) for c in cats]
        present = [c for c in present if np.any(labels[idx] == c)]
        lut = category_colors(adata, color, present)
        rgba = _lighten([lut.get(lab, "0.6") for lab in labels[idx]], lighten * 0.6)
        ax.scatter(xy[idx, 0], xy[idx, 1], color=rgba, alpha=alpha, **common)
        if legend:
            handles = [Line2D([], [], ls="", marker="o", ms=KEY_MARKER_SIZE, color=lut[c], label=c) for c in present]
            _outside_legend(ax, handles, title=color)
        return None
    vals = np.asarray(col, dtype=float)
    greys = mpl.colors.LinearSegmentedColormap.from_list(
        "scam_greys", plt.get_cmap("Greys")(np.linspace(0.2, 0.9, 256))
    )
    # lowest values stay visible
    return ax.scatter(xy[idx, 0], xy[idx, 1], c=vals[idx], cmap=greys, alpha=alpha, **common)


def _bottom_pad(fig) -> float:
    """Gap above a colour bar under the axes: a layout engine places the x label; without one, leave room."""
    return 0.02 if fig.get_layout_engine() is not None else 0.1


def _check_time(fitted: np.ndarray, value: float, name: str) -> float:
    lo, hi = float(np.min(fitted)), float(np.max(fitted))
    if not lo - 1e-9 <= float(value) <= hi + 1e-9:
        raise ValueError(f"`{name}={value}` is outside the fitted time range [{lo:g}, {hi:g}].")
    return float(value)


# =============================================================================== trajectories
def _path_steps(times: np.ndarray) -> np.ndarray:
    """``(T-1,)`` boolean: which simulation steps are fine enough to draw as part of a smooth path."""
    span = abs(float(times[-1] - times[0]))
    if len(times) < 2 or span == 0:
        return np.zeros(max(len(times) - 1, 0), dtype=bool)
    return np.abs(np.diff(times)) <= span / FINE_STEPS * (1 + 1e-9)


def _smooth_along_paths(xy: np.ndarray, times: np.ndarray, fine: np.ndarray, steps: float = 1.5) -> np.ndarray:
    """Local-linear Gaussian smoothing of paths ``(T, m, 2)`` in time, within runs of fine steps.

    The kernel's width is ``steps`` times the median fine step. Local-linear (not a plain moving
    average): a path that moves at constant speed is left as it is, and its ends are not pulled inward.
    """
    if not fine.any() or len(times) < 3:
        return xy
    run = np.concatenate([[0], np.cumsum(~fine)])  # positions joined by fine steps share a run
    tau = steps * float(np.median(np.abs(np.diff(times))[fine]))
    d = times[None, :] - times[:, None]  # (i, j): t_j - t_i
    w = np.exp(-0.5 * (d / tau) ** 2) * (run[:, None] == run[None, :]) * (np.abs(d) <= 3 * tau)
    s0, s1, s2 = w.sum(1), (w * d).sum(1), (w * d**2).sum(1)
    t0 = np.einsum("ij,jmc->imc", w, xy)
    t1 = np.einsum("ij,jmc->imc", w * d, xy)
    det = s0 * s2 - s1**2
    ok = det > 1e-12 * np.maximum(s0 * s2, 1e-300)
    fitted = (s2[:, None, None] * t0 - s1[:, None, None] * t1) / np.where(ok, det, 1.0)[:, None, None]
    return np.where(ok[:, None, None], fitted, xy)


def _paths_in_embedding(x_all, emb, paths, times, start_cells, n_neighbors: int, fine=None) -> np.ndarray:
    """Simulated paths ``(T, m, d)`` placed in a 2-D embedding, ``(T, m, 2)``.

    Every position goes through :class:`~scam.pl._utils.EmbeddingMap` (a smooth kernel regression),
    and the mapped paths are smoothed a little in time (:func:`_smooth_along_paths`, within runs of
    fine steps), which removes the wiggles the regression adds as a path crosses regions of
    unevenly spread cells. The regression puts a cell near, not exactly at, its own embedding
    coordinates; that offset is added at the start and faded out linearly in time, so each path
    starts exactly at its cell and ends where the regression places it.
    """
    n_t, m, dim = paths.shape
    mapped = EmbeddingMap(x_all, emb, n_neighbors=n_neighbors).predict(paths.reshape(-1, dim)).reshape(n_t, m, 2)
    if fine is not None:
        mapped = _smooth_along_paths(mapped, times, fine)
    if start_cells is None:
        return mapped
    offset = emb[start_cells] - mapped[0]
    offset = np.where(np.isfinite(offset), offset, 0.0)
    span = abs(float(times[-1] - times[0]))
    fade = 1.0 - np.abs(times - times[0]) / span if span > 0 else np.ones(n_t)
    return mapped + fade[:, None, None] * offset[None]


def trajectories(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    simulation_key: str | None = None,
    basis: str | None = None,
    components=(0, 1),
    color: str | bool | None = None,
    n_paths: int | None = 100,
    cmap: str = TIME_CMAP,
    size: float | None = None,
    linewidth: float = 1.0,
    markers: bool = True,
    n_neighbors: int = 50,
    rng: int = 0,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """Simulated cell trajectories over the observed cells.

    Draws the paths written by :func:`scam.tl.simulate`, coloured by time, on top of the observed
    cells. For unbalanced models the width of each path follows the cell's current share of the
    population (its descendant mass ``exp(int g dt)`` relative to the average path): paths of
    proliferating cells thicken, paths of dying cells fade to hairlines.

    A path is only drawn where the simulation recorded positions on a fine time grid (steps of at
    most ``1/12`` of the simulated time range; :func:`scam.tl.simulate` adds 40 steps by default).
    Where it recorded only a few times (e.g. ``target_times=[3, 4, 7]``), a straight segment between
    them would be a route the cells never took: the positions at those times are drawn as points
    (coloured by time) instead, with a warning. Run :func:`scam.tl.simulate` without
    ``target_times`` for smooth paths.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit and a simulation.
    key
        ``key_added`` of :func:`scam.tl.action_matching`.
    simulation_key
        ``adata.uns`` key of the simulation (default ``f'{key}_simulation'``).
    basis
        Where to draw: ``None`` (default) plots two components of the fit's ``use_rep``, where the
        paths live. Any other ``adata.obsm`` key (``'X_umap'`` or ``'umap'``) places the simulated
        positions into that embedding by a smooth kernel regression from the fitted cells (a
        LOESS-style tricube-weighted average over ``n_neighbors`` nearest cells, continuous as a
        point moves), lightly smoothed along each path in time, so paths stay smooth curves; each
        path starts exactly at its cell. This is an approximation: the embedding has no inverse map.
    components
        Two 0-based components of ``basis`` to plot.
    color
        Colour of the observed cells underneath: ``None`` (their time, lightened), an ``obs`` column
        (categorical: lightened group colours with a legend; numeric: greys), or ``False`` (plain grey).
    n_paths
        Number of paths drawn (default 100, a random subset, so branches keep their proportions;
        ``None``: all).
    cmap
        Colormap of time.
    size
        Marker size of the observed cells (default: from the number of cells).
    linewidth
        Base width of the paths.
    markers
        Mark the start (white) and end (coloured by the final time) of each path.
    n_neighbors
        Neighbours of the kernel regression into a non-``use_rep`` basis (more: smoother paths).
    rng
        Seed for choosing the subset of paths and the drawing order of the cells.
    ax
        Axes to draw into (default: a new figure).
    show
        Show the figure (default: when matplotlib is in interactive mode and ``return_fig`` is False).
    return_fig
        Return the Figure.
    **kwargs
        Passed to :class:`matplotlib.collections.LineCollection` (the paths).

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` if ``return_fig``, else ``None``.
    """
    x_all, t_all, params = fit_embedding(adata, key)
    tl, tk = time_label(params.get("time_key")), params.get("time_key")
    skey = simulation_key or f"{key}_simulation"
    sim = adata.uns.get(skey)
    if not isinstance(sim, Mapping) or "positions" not in sim:
        raise KeyError(f"No simulated trajectories under `adata.uns[{skey!r}]`. Run `scam.tl.simulate` first.")
    times = np.asarray(sim["times"], dtype=float)
    pos = np.asarray(sim["positions"], dtype=float)
    logw = np.asarray(sim.get("log_weights", np.zeros(pos.shape[:2])), dtype=float)
    n_t, n_cells, dim = pos.shape
    if dim != x_all.shape[1]:
        raise ValueError(
            f"The simulation has {dim} dimensions but the fit `{key}` uses {x_all.shape[1]}; "
            "run `scam.tl.simulate` again with this fit."
        )
    name, emb, comps = resolve_basis(adata, basis, params["use_rep"], x_all.shape[1], components)
    fine = _path_steps(times)
    gen = np.random.default_rng(rng)
    if n_paths is None or n_paths >= n_cells:
        sel = np.arange(n_cells)
    else:
        if n_paths < 1:
            raise ValueError(f"`n_paths` must be >= 1 or None, got {n_paths}.")
        sel = np.sort(gen.choice(n_cells, n_paths, replace=False))
    paths = pos[:, sel]
    if emb is None:
        xy_paths = paths[..., list(comps)]
        xy_cells = x_all[:, list(comps)]
    else:
        cells = np.asarray(sim["cells"], dtype=int)[sel] if "cells" in sim else None
        xy_paths = _paths_in_embedding(x_all, emb, paths, times, cells, n_neighbors, fine)
        xy_cells = emb
    if not fine.all():
        shown = ", ".join(f"{t:g}" for t in times)
        warnings.warn(
            f"The simulation `{skey}` recorded positions only at times {shown}: too few for smooth paths, "
            "so the positions at those times are drawn as points, not joined by straight lines. For "
            "paths, run `scam.tl.simulate` without `target_times` (it adds a fine time grid).",
            UserWarning, stacklevel=2,
        )

    fig, (ax,) = make_axes(ax, 1, panel_size=(7.4, 6.0))
    norm = time_norm(t_all, times)
    cell_sm = _draw_cells(ax, adata, xy_cells, t_all, color, norm=norm, cmap=cmap, size=size, rng=gen)

    # one segment per path and fine step, coloured by the segment's mid time
    segs = np.stack([xy_paths[:-1], xy_paths[1:]], axis=2)[fine]  # (T'-1, m, 2, 2)
    segs = segs.transpose(1, 0, 2, 3).reshape(-1, 2, 2)  # path-major
    mid = np.tile(((times[:-1] + times[1:]) / 2)[fine], len(sel))
    unbalanced = bool(np.any(np.abs(logw) > 1e-8))
    handles = []
    if len(segs):
        lc_kw = {"cmap": cmap, "norm": norm, "alpha": 0.85, "capstyle": "round", "zorder": 2}
        if unbalanced:
            # share of the population carried by each path at the end of each segment (1 = average path)
            rel = np.exp(logw - logw.max(axis=1, keepdims=True))
            rel = rel / rel.mean(axis=1, keepdims=True)
            share = rel[1:][fine][:, sel].T.ravel()
            lc_kw["linewidths"] = linewidth * np.sqrt(np.clip(share, 0.05, 6.0))
        else:
            lc_kw["linewidths"] = linewidth
        lc_kw.update(kwargs)
        lc = LineCollection(segs, **lc_kw)
        lc.set_array(mid)
        ax.add_collection(lc)
    # positions at recorded times that end a coarse step: points, coloured by time
    coarse = np.zeros(n_t, dtype=bool)
    coarse[1:] |= ~fine
    coarse[:-1] |= ~fine
    if markers:
        coarse[[0, -1]] = False  # the start and end markers show those
    # points on paths: small over drawn paths; cell-sized when the points are all there is to see
    ms = point_size(len(sel), "overlay") if fine.all() else point_size(len(sel) * n_t)
    if coarse.any():
        idx = np.nonzero(coarse)[0]
        pts = xy_paths[idx].reshape(-1, 2)
        ax.scatter(pts[:, 0], pts[:, 1], c=np.repeat(times[idx], len(sel)), cmap=cmap, norm=norm,
                   s=ms, edgecolor="0.1", linewidths=0.6, zorder=3)
        at_times = ", ".join(f"{t:g}" for t in times[idx][:6]) + (", ..." if len(idx) > 6 else "")
        handles.append(Line2D([], [], ls="", marker="o", mfc="0.6", mec="0.1",
                              label=f"position at {tk or 'time'} {at_times}"))
    if markers:
        ax.scatter(xy_paths[0, :, 0], xy_paths[0, :, 1], s=ms, facecolor="white", edgecolor="0.15",
                   linewidths=0.6, zorder=3)
        end_color = plt.get_cmap(cmap)(norm(times[-1]))
        ax.scatter(xy_paths[-1, :, 0], xy_paths[-1, :, 1], s=ms, color=end_color, edgecolor="0.15",
                   linewidths=0.6, zorder=3)
        handles = [
            Line2D([], [], ls="", marker="o", mfc="white", mec="0.15", label=f"start ({time_point(tk, times[0])})"),
            Line2D([], [], ls="", marker="o", mfc=end_color, mec="0.15", label=f"end ({time_point(tk, times[-1])})"),
        ] + handles
    if unbalanced and len(segs):
        handles.append(Line2D([], [], color="0.3", lw=linewidth * 0.5, label="dying (thin)"))
        handles.append(Line2D([], [], color="0.3", lw=linewidth * 2.0, label="expanding (thick)"))
    if handles:
        _outside_legend(ax, handles, title="paths", loc="lower left", anchor=(1.02, 0.0))
    ax.update_datalim(xy_paths.reshape(-1, 2))
    ax.autoscale_view()
    sm = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label=tl, location="bottom", fraction=0.05, pad=_bottom_pad(fig), aspect=40)
    if cell_sm is not None:
        fig.colorbar(cell_sm, ax=ax, label=f"{color} (cells)", location="bottom", fraction=0.05,
                     pad=_bottom_pad(fig), aspect=40)
    axis_labels(ax, name, comps)
    shown = f"{len(sel)} of {n_cells}" if len(sel) < n_cells else f"{n_cells}"
    what = "trajectories" if fine.all() else ("positions" if not fine.any() else "trajectories and positions")
    ax.set_title(f"simulated {what} ({shown} cells from {time_point(tk, times[0])})", fontsize="medium")
    ax.set_xticks([])
    ax.set_yticks([])
    return finish(fig, show, return_fig)


# =============================================================================== velocity
def _resolve_method(method, emb, dim: int) -> str:
    if method is None:
        return "slice" if emb is None and dim == 2 else "smooth"
    if method not in ("slice", "smooth"):
        raise ValueError(f"`method` must be 'slice', 'smooth' or None, got {method!r}.")
    if method == "slice" and emb is not None:
        raise ValueError(
            "`method='slice'` evaluates the model on a grid of the fit's own coordinates; a non-linear "
            "embedding has no such grid. Use `method='smooth'` (or `basis=None`)."
        )
    return method


def _velocity_field(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    time: float | None = None,
    basis: str | None = None,
    components=(0, 1),
    method: str | None = None,
    grid_size: int = 40,
    n_neighbors: int = 30,
) -> dict:
    """The velocity field that :func:`velocity` draws, on a regular grid (computed, not drawn).

    Parameters are those of :func:`velocity`.

    Returns
    -------
    A dict with ``'gx'``, ``'gy'`` (grid axes, ``(n,)``), ``'u'``, ``'v'`` (the field's two
    components, ``(n, n)``, indexed ``[y, x]``, NaN away from the cells), ``'time'``, ``'t_near'``
    (the observed time whose cells are shown), ``'at'`` (boolean mask of those cells), ``'xy'``
    (the cells in the plotted coordinates), ``'method'``, ``'basis'`` (the basis' name),
    ``'components'``, ``'dt'`` (the displacement time of a non-``use_rep`` basis, else None),
    ``'params'`` (the fit's params), ``'t_all'`` (every cell's time) and ``'n_dims'`` (the fit's).
    """
    x_all, t_all, params = fit_embedding(adata, key)
    fitted = np.asarray(get_fit(adata, key)["times"], dtype=float)
    time = float(fitted[len(fitted) // 2]) if time is None else _check_time(fitted, time, "time")
    name, emb, comps = resolve_basis(adata, basis, params["use_rep"], x_all.shape[1], components)
    method = _resolve_method(method, emb, x_all.shape[1])
    n = int(grid_size)
    if n < 2:
        raise ValueError(f"`grid_size` must be at least 2, got {grid_size}.")
    in_range = (t_all >= fitted.min() - 1e-9) & (t_all <= fitted.max() + 1e-9)
    t_near = nearest_observed_time(t_all[in_range], time)
    xy_cells = x_all[:, list(comps)] if emb is None else emb
    at = np.isclose(t_all, t_near) & np.all(np.isfinite(xy_cells), axis=1)
    model = get_model(adata, key=key)
    xy_at = xy_cells[at]
    gx, gy = grid_2d(xy_at, n, pad=0.08)
    step = max(gx[1] - gx[0], gy[1] - gy[0])
    span = max(gx[-1] - gx[0], gy[-1] - gy[0])
    dt = None
    if method == "slice":
        pts = fill_grid_points(gx, gy, comps, x_all[at].mean(axis=0))
        vel = model.velocity(pts, time)[:, list(comps)]
        u, v = vel[:, 0].reshape(n, n), vel[:, 1].reshape(n, n)
    else:
        v_cells = model.velocity(x_all[at], time)
        if emb is None:
            vxy = v_cells[:, list(comps)]
        else:
            gaps = np.diff(np.sort(fitted))
            dt = 0.5 * float(np.min(gaps[gaps > 0])) if len(gaps) else 1.0
            emap = EmbeddingMap(x_all, emb, n_neighbors=n_neighbors)
            vxy = (emap.predict(x_all[at] + dt * v_cells) - emap.predict(x_all[at])) / dt
        uv = smooth_to_grid(xy_at, vxy, gx, gy, bandwidth=1.5 * span / 40)
        u, v = uv[..., 0], uv[..., 1]
    inside = distance_to_cells(gx, gy, xy_at) <= max(step, 0.05 * span)
    return {
        "gx": gx, "gy": gy, "u": np.where(inside, u, np.nan), "v": np.where(inside, v, np.nan),
        "time": time, "t_near": t_near, "at": at, "xy": xy_cells, "method": method, "basis": name,
        "components": comps, "dt": dt, "params": params, "t_all": t_all, "n_dims": x_all.shape[1],
    }


def velocity(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    time: float | None = None,
    basis: str | None = None,
    components=(0, 1),
    kind: str = "stream",
    method: str | None = None,
    density: float = 1.0,
    grid_size: int | None = None,
    color: str | bool | None = None,
    cmap: str = TIME_CMAP,
    size: float | None = None,
    n_neighbors: int = 30,
    rng: int = 0,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """The learned velocity field ``grad phi(t, x)`` at one time, over the cells observed then.

    The field is drawn on a regular grid, as streamlines (width proportional to speed) or arrows,
    only where cells observed at (the observed time point nearest to) ``time`` are; elsewhere the
    model is not constrained by data. Two ways to get the field onto the grid:

    - ``method='slice'``: the model is evaluated at the grid points themselves, the two plotted
      components varying and any others fixed at the mean of the cells. Exact for a 2-D fit.
    - ``method='smooth'``: the velocity is evaluated at each observed cell, projected onto the two
      components (a non-linear ``basis`` such as UMAP: each cell is displaced by ``dt * v`` in the
      fit's space with ``dt`` half the smallest gap between time points, and both ends are placed in
      the embedding by a smooth kernel regression from the fitted cells), and averaged onto the
      grid with a Gaussian kernel. Faithful to the cells when the fit has more than two dimensions.

    The field itself is computed by ``scam.pl._dynamics._velocity_field`` (no drawing), so its
    values can be checked or reused.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit.
    key
        ``key_added`` of :func:`scam.tl.action_matching`.
    time
        Time at which the field is shown (default: the middle fitted time point).
    basis
        ``None`` (two components of the fit's ``use_rep``) or another ``adata.obsm`` key
        (``'X_umap'`` or ``'umap'``).
    components
        Two 0-based components of ``basis``.
    kind
        ``'stream'`` (streamlines, width by speed) or ``'arrows'`` (an arrow grid, length by speed).
    method
        ``'slice'`` or ``'smooth'`` (see above); default ``None``: ``'slice'`` for a 2-D fit shown in
        its own coordinates, ``'smooth'`` otherwise.
    density
        Streamline density (:meth:`~matplotlib.axes.Axes.streamplot`).
    grid_size
        Grid points per axis (default 40 for streams, 16 for arrows).
    color
        Colour of the cells at ``time``: ``None`` (the colour of their time), an ``obs`` column, or
        ``False`` (grey). Cells observed at other times are drawn in light grey underneath.
    cmap
        Colormap of time.
    size
        Marker size of the cells.
    n_neighbors
        Neighbours of the kernel regression into a non-``use_rep`` basis.
    rng
        Seed for the drawing order of the cells.
    ax
        Axes to draw into (default: a new figure).
    show
        Show the figure (default: when matplotlib is in interactive mode and ``return_fig`` is False).
    return_fig
        Return the Figure.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.streamplot` or :meth:`~matplotlib.axes.Axes.quiver`.

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` if ``return_fig``, else ``None``.
    """
    if kind not in ("stream", "arrows"):
        raise ValueError(f"`kind` must be 'stream' or 'arrows', got {kind!r}.")
    if grid_size is not None and int(grid_size) < 2:
        raise ValueError(f"`grid_size` must be at least 2, got {grid_size}.")
    field = _velocity_field(
        adata, key=key, time=time, basis=basis, components=components, method=method,
        grid_size=int(grid_size or (40 if kind == "stream" else 16)), n_neighbors=n_neighbors,
    )
    t_all, params = field["t_all"], field["params"]
    gx, gy, u, w = field["gx"], field["gy"], field["u"], field["v"]
    at, xy_cells, t_near, time = field["at"], field["xy"], field["t_near"], field["time"]
    gen = np.random.default_rng(rng)
    norm = time_norm(t_all)
    tk = params.get("time_key")
    speed = np.hypot(u, w)
    top = float(np.nanpercentile(speed, 99)) if np.isfinite(speed).any() else 1.0
    top = top if top > 0 else 1.0

    # ---- draw
    fig, (ax,) = make_axes(ax, 1, panel_size=(7.0, 5.6))
    _draw_cells(ax, adata, xy_cells, t_all, False, norm=norm, cmap=cmap, size=size, rng=gen, alpha=0.7,
                mask=~at, legend=False, role="context")
    handles = [Line2D([], [], ls="", marker="o", ms=KEY_MARKER_SIZE, color=CONTEXT_GREY, label="other times")]
    if color is None:
        rgba = _lighten([plt.get_cmap(cmap)(norm(t_near))], 0.3)
        idx = gen.permutation(np.nonzero(at)[0])
        ax.scatter(xy_cells[idx, 0], xy_cells[idx, 1], color=rgba, alpha=0.8,
                   s=point_size(len(idx)) if size is None else size, linewidths=0, rasterized=True, zorder=1)
        handles.insert(0, Line2D([], [], ls="", marker="o", ms=KEY_MARKER_SIZE, color=rgba[0],
                                 label=time_point(tk, t_near)))
        _outside_legend(ax, handles, title="cells")
    else:
        sm = _draw_cells(ax, adata, xy_cells, t_all, color, norm=norm, cmap=cmap, size=size, rng=gen,
                         lighten=0.3, alpha=0.8, mask=at)
        if sm is not None:
            fig.colorbar(sm, ax=ax, label=f"{color} (cells)", location="bottom", fraction=0.05,
                         pad=_bottom_pad(fig), aspect=40)
    if kind == "stream":
        kw = {"color": "0.1", "density": density, "arrowsize": 1.0, "zorder": 3,
              "linewidth": 0.4 + 1.6 * np.clip(np.nan_to_num(speed) / top, 0, 1)}
        kw.update(kwargs)
        ax.streamplot(gx, gy, u, w, **kw)
    else:
        xx, yy = np.meshgrid(gx, gy)
        ok = np.isfinite(speed)
        ref = float(np.nanpercentile(speed, 90)) or top  # the 90th-percentile arrow is one grid step long
        kw = {"color": "0.1", "angles": "xy", "scale_units": "xy", "scale": ref / (gx[1] - gx[0]),
              "width": 0.003, "zorder": 3}
        kw.update(kwargs)
        ax.quiver(xx[ok], yy[ok], u[ok], w[ok], **kw)
    how = {"slice": "" if field["n_dims"] == 2 else ", other components at the mean",
           "smooth": " (averaged over cells)" if field["dt"] is None
           else " (projected by kNN kernel regression)"}[field["method"]]
    ax.set_title(f"velocity at {time_point(tk, time)}{how}", fontsize="medium")
    ax.autoscale_view()
    axis_labels(ax, field["basis"], field["components"])
    ax.set_xticks([])
    ax.set_yticks([])
    return finish(fig, show, return_fig)


# =============================================================================== potential
def _potential_label(model, use_rep: str, time_key: str | None) -> tuple[str, bool]:
    """Colour-bar label of the potential (sign convention and units) and whether panels are centred."""
    from ._utils import _basis_stub

    units = f"({_basis_stub(use_rep)} units)² {per_time(time_key)}"
    tied_to_growth = model.growth_net is None and model.growth_weight > 0  # g = lambda phi: its value matters
    sign = "velocity = +∇φ: cells move uphill"
    if tied_to_growth:
        return f"potential φ, {units}\n{sign}; φ > 0: growth", False
    return f"potential φ − mean over cells, {units}\n{sign}", True


def potential(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    times=None,
    components=(0, 1),
    method: str | None = None,
    grid_size: int = 200,
    levels: int = 12,
    cmap: str = "magma",
    cells: bool = True,
    size: float | None = None,
    ncols: int = 4,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """The learned potential ``phi(t, x)`` as a landscape, one panel per time.

    **Sign.** The velocity is the gradient of the potential, ``v = +grad phi`` (Action Matching's
    convention, :meth:`scam.core.ActionModel.velocity`): cells move *uphill*, from dark to bright
    regions, and bright regions attract. This is the opposite of a physical energy landscape,
    where things roll downhill.

    **Units.** Since ``grad phi`` is a velocity in ``use_rep`` units per time unit, ``phi`` is in
    ``(use_rep units)²`` per time unit (e.g. PC units² per day); contours at equal steps of ``phi``
    lie closer together where cells move faster.

    **Offset.** Only differences of ``phi`` within one time matter for the motion, and the fit
    determines ``phi(t, .)`` only up to a constant per time (balanced fits and scam's default
    separate growth network), so each panel is shifted to mean 0 over the cells observed at (nearest
    to) its time. When the growth rate is tied to the potential (``g = lambda phi``, the paper's
    unbalanced AM), the value itself matters and ``phi`` is shown as is (positive where cells
    proliferate).

    The potential is shown over two components of the fit's ``use_rep``, only where there are cells
    (of any fitted time, within a smooth outline; elsewhere the model is not constrained by data),
    as a smoothly shaded landscape (bilinear interpolation of a fine grid) with contour lines, on one
    colour scale for all panels. The scale spans the values at each panel's own cells (2nd to 98th
    percentile, pooled over panels): away from them the field is extrapolated and may saturate.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit.
    key
        ``key_added`` of :func:`scam.tl.action_matching`.
    times
        Time or times to show (default: the fitted time points).
    components
        Two 0-based components of the fit's ``use_rep``.
    method
        ``'slice'``: the model evaluated on the grid, other components fixed at the mean of the cells
        observed nearest to each time (exact for a 2-D fit); ``'smooth'``: ``phi(t, .)`` evaluated at
        every fitted cell and averaged onto the grid with a Gaussian kernel. Default ``None``:
        ``'slice'`` for a 2-D fit, ``'smooth'`` otherwise.
    grid_size
        Grid points per axis.
    levels
        Approximate number of contour lines (the shading between them is continuous).
    cmap
        Colormap of the potential.
    cells
        Draw the cells observed at (nearest to) each time on top.
    size
        Marker size of the cells.
    ncols
        Maximum number of panels per row.
    ax
        One Axes per time (default: a new figure).
    show
        Show the figure (default: when matplotlib is in interactive mode and ``return_fig`` is False).
    return_fig
        Return the Figure.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.imshow` (the shaded landscape).

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` if ``return_fig``, else ``None``.
    """
    x_all, t_all, params = fit_embedding(adata, key)
    entry = get_fit(adata, key)
    fitted = np.asarray(entry["times"], dtype=float)
    times = fitted if times is None else np.atleast_1d(np.asarray(times, dtype=float))
    if len(times) == 0:
        raise ValueError("`times` is empty.")
    for t in times:
        _check_time(fitted, t, "times")
    if grid_size < 2:
        raise ValueError(f"`grid_size` must be at least 2, got {grid_size}.")
    name, _, comps = resolve_basis(adata, None, params["use_rep"], x_all.shape[1], components)
    method = _resolve_method(method, None, x_all.shape[1])
    model = get_model(adata, key=key)
    in_range = (t_all >= fitted.min() - 1e-9) & (t_all <= fitted.max() + 1e-9)
    in_range &= np.all(np.isfinite(x_all), axis=1)
    xy_fit = x_all[in_range][:, list(comps)]
    gx, gy = grid_2d(xy_fit, grid_size, pad=0.05)
    span = max(gx[-1] - gx[0], gy[-1] - gy[0])
    radius = 0.06 * span
    dist = distance_to_cells(gx, gy, xy_fit)
    inside = dist <= radius
    outline = support_path(gx, gy, dist, radius, smooth=0.5 * radius)
    label, centred = _potential_label(model, params["use_rep"], params.get("time_key"))
    fields, near, scale_values = [], [], []
    for t in times:
        t_near = nearest_observed_time(t_all[in_range], t)
        at = np.isclose(t_all, t_near) & in_range
        if method == "slice":
            pts = fill_grid_points(gx, gy, comps, x_all[at].mean(axis=0))
            phi = model.potential(pts, t).reshape(grid_size, grid_size)
        else:
            phi = smooth_to_grid(xy_fit, model.potential(x_all[in_range], t), gx, gy, bandwidth=1.5 * span / 40)
        if centred:
            phi = phi - model.potential(x_all[at], t).mean()
        fields.append(phi)  # the whole grid: what is shown is clipped to the outline of the cells
        near.append(at)
        # the colour range: the values this time's own cells sit at (elsewhere the field is extrapolated,
        # and a few stray cells in a steep corner would set the scale of every panel)
        xy_t = x_all[at][:, list(comps)]
        ix = np.clip(np.searchsorted(gx, xy_t[:, 0]), 0, grid_size - 1)
        iy = np.clip(np.searchsorted(gy, xy_t[:, 1]), 0, grid_size - 1)
        scale_values.append(phi[iy, ix])
    pooled = np.concatenate(scale_values)
    lo, hi = np.percentile(pooled, [2, 98])
    if hi <= lo:
        hi = lo + max(1e-9, abs(lo) * 1e-6)
    line_values = mpl.ticker.MaxNLocator(nbins=levels).tick_values(lo, hi)
    line_values = line_values[(line_values >= lo) & (line_values <= hi)]
    norm = mpl.colors.Normalize(vmin=lo, vmax=hi)
    shown = np.concatenate([f[inside] for f in fields])
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[
        (bool(shown.min() < lo), bool(shown.max() > hi))]

    fig, axes = make_axes(ax, len(times), ncols=ncols, panel_size=(4.0, 3.6))
    tk = params.get("time_key")
    im = lines = None
    for a, t, phi, at in zip(axes, times, fields, near):
        kw = {"cmap": cmap, "norm": norm, "interpolation": "bilinear", "origin": "lower", "aspect": "auto",
              "extent": (gx[0], gx[-1], gy[0], gy[-1]), "zorder": 0}
        kw.update(kwargs)
        im = a.imshow(phi, **kw)
        lines = a.contour(gx, gy, phi, levels=line_values, colors="white", linewidths=0.5, alpha=0.5,
                          linestyles="solid", zorder=1)
        if outline is not None:
            for artist in (im, lines):
                artist.set_clip_path(outline, transform=a.transData)
            a.add_patch(mpl.patches.PathPatch(outline, facecolor="none", edgecolor="0.6", linewidth=0.6, zorder=1))
        if cells:
            idx = np.nonzero(at)[0]
            s = point_size(len(idx), "overlay") if size is None else size
            a.scatter(x_all[idx, comps[0]], x_all[idx, comps[1]], s=s, color="white", edgecolor="0.1",
                      linewidths=0.25, alpha=0.75, rasterized=True, zorder=2)
        a.set_xlim(gx[0], gx[-1])
        a.set_ylim(gy[0], gy[-1])
        a.set_title(time_point(tk, t), fontsize="medium")
        axis_labels(a, name, comps)
        a.set_xticks([])
        a.set_yticks([])
    cb = fig.colorbar(im, ax=axes, shrink=0.9 if len(axes) > 1 else 1.0, aspect=30, pad=0.02, extend=extend)
    cb.set_label(label, fontsize="small")
    if len(line_values):
        cb.set_ticks(line_values)
        cb.add_lines(lines)
    return finish(fig, show, return_fig)
