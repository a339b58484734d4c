"""Figures of fate probabilities: per-cell fate maps and the group-to-group transition matrix."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.lines import Line2D

from ._dynamics import _lighten
from ._utils import (
    CONTEXT_GREY, axis_labels, category_colors, finish, fit_embedding, make_axes, resolve_basis,
    time_point,
)


def _fate_layout(n_maps: int, has_trans: bool, ncols: int):
    """A figure with ``n_maps`` map panels (a grid, one shared colour bar) and the heatmap beside it.

    Sub-figures keep the two colour bars and the heatmap's labels apart.
    """
    ncols = max(1, min(ncols, n_maps)) if n_maps else 0
    nrows = int(np.ceil(n_maps / ncols)) if n_maps else 0
    if n_maps:
        ncols = int(np.ceil(n_maps / nrows))
    w_maps, w_trans = 3.9 * ncols, 5.6 if has_trans else 0.0
    fig = plt.figure(figsize=(w_maps + w_trans, max(4.4, 3.8 * nrows + 0.9)), layout="constrained")
    if n_maps and has_trans:
        sf_maps, sf_trans = fig.subfigures(1, 2, width_ratios=[w_maps, w_trans], wspace=0.02)
    else:
        sf_maps, sf_trans = (fig, None) if n_maps else (None, fig)
    maps = []
    if n_maps:
        grid = sf_maps.subplots(nrows, ncols, squeeze=False)
        maps = list(grid.ravel())
        for extra in maps[n_maps:]:
            extra.remove()
        maps = maps[:n_maps]
    trans = None
    if has_trans:
        if n_maps and nrows > 1:
            trans = sf_trans.subplots(3, 1, height_ratios=[0.5, 3, 0.5])[1]
            for a in sf_trans.axes:
                if a is not trans:
                    a.remove()
        else:
            trans = sf_trans.subplots()
    return fig, sf_maps, maps, sf_trans, trans


def fate(
    adata: AnnData,
    *,
    key: str = "fate_probabilities",
    groups=None,
    basis: str | None = None,
    components=(0, 1),
    transition: bool = True,
    cmap: str = "viridis",
    size: float | None = None,
    ncols: int = 4,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """Fate probabilities of the early cells, and where their groups go.

    One map per fate group: the cells at ``source_time`` on an embedding, coloured by their
    probability of ending in that group at ``target_time`` (for a backward computation,
    ``target_time < source_time``: of coming from it), the group's own cells at ``target_time``
    shaded in its colour, all other cells in grey. When ``groupby`` also labels the source cells,
    a heatmap shows the weighted group-to-group transition matrix (rows: groups at ``source_time``,
    columns: groups at ``target_time``; rows sum to 1).

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`scam.tl.fate_probabilities`.
    key
        ``key_added`` of :func:`scam.tl.fate_probabilities`.
    groups
        Fate group or groups to map (default: all; ``[]``: only the transition heatmap).
    basis
        ``None`` (two components of the fit's ``use_rep``) or an ``adata.obsm`` key such as ``'X_umap'``.
    components
        Two 0-based components of ``basis``.
    transition
        Add the transition heatmap when it exists (``groupby`` labels the source cells).
    cmap
        Colormap of the probabilities (0 to 1).
    size
        Marker size of the source cells (default: from their number).
    ncols
        Maximum number of maps per row.
    ax
        One Axes per panel, maps first, heatmap last (default: a new figure).
    show
        Show the figure (default: when matplotlib is in interactive mode and ``return_fig`` is False).
    return_fig
        Return the Figure.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.scatter` of the source cells.

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` if ``return_fig``, else ``None``.
    """
    entry = adata.uns.get(key)
    if key not in adata.obsm or not isinstance(entry, Mapping) or "params" not in entry:
        raise KeyError(f"No fate probabilities under `adata.obsm[{key!r}]`. Run `scam.tl.fate_probabilities` first.")
    params = entry["params"]
    all_groups = [str(g) for g in np.atleast_1d(entry.get("groups", []))]
    table = adata.obsm[key]
    if isinstance(table, pd.DataFrame):
        probs = table.to_numpy(dtype=float)
        all_groups = [str(c) for c in table.columns]
    else:
        probs = np.asarray(table, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != len(all_groups):
        raise ValueError(f"`adata.obsm[{key!r}]` has {probs.shape[-1]} columns but {len(all_groups)} groups are recorded.")
    shown = all_groups if groups is None else [str(g) for g in np.atleast_1d(np.asarray(groups, dtype=object))]
    unknown = [g for g in shown if g not in all_groups]
    if unknown:
        raise ValueError(f"`groups={groups!r}`: {unknown} not among the fate groups {all_groups}.")
    has_trans = bool(transition) and "transition" in entry and "source_groups" in entry
    if not shown and not has_trans:
        raise ValueError(
            "Nothing to draw: `groups` is empty and there is no transition matrix (it needs `groupby` to "
            "label the cells at `source_time` too)."
        )
    x_all, t_all, fit_params = fit_embedding(adata, params.get("key", "action_matching"))
    src = np.all(np.isfinite(probs), axis=1)
    src_t, tgt_t = float(params["source_time"]), float(params["target_time"])
    groupby = str(params.get("groupby", ""))
    what = "origin" if tgt_t < src_t else "fate"
    tk = fit_params.get("time_key")

    n_panels = len(shown) + int(has_trans)
    if ax is None:
        fig, sf_maps, maps, sf_trans, trans_ax = _fate_layout(len(shown), has_trans, ncols)
    else:
        fig, axes = make_axes(ax, n_panels)
        maps, trans_ax = axes[: len(shown)], (axes[-1] if has_trans else None)
        sf_maps = sf_trans = fig

    if shown:
        name, emb, comps = resolve_basis(adata, basis, fit_params["use_rep"], x_all.shape[1], components)
        xy = x_all[:, list(comps)] if emb is None else emb
        ok = np.all(np.isfinite(xy), axis=1)
        lut = category_colors(adata, groupby, all_groups) if groupby in adata.obs else {g: "0.5" for g in all_groups}
        tgt = np.isclose(t_all, tgt_t)
        labels = adata.obs[groupby].astype(str).to_numpy() if groupby in adata.obs else np.full(adata.n_obs, "")
        norm = mpl.colors.Normalize(vmin=0.0, vmax=1.0)
        s_ctx = float(np.clip(6000.0 / max(adata.n_obs, 1), 1.0, 10.0))
        s = float(np.clip(6000.0 / max(int(src.sum()), 1), 2.0, 25.0)) if size is None else size
        sc = None
        for a, g in zip(maps, shown):
            a.scatter(xy[ok & ~src, 0], xy[ok & ~src, 1], s=s_ctx, color=CONTEXT_GREY, linewidths=0,
                      rasterized=True, zorder=0)
            mine = ok & tgt & (labels == g)
            a.scatter(xy[mine, 0], xy[mine, 1], s=2 * s_ctx, color=_lighten([lut[g]], 0.25), linewidths=0,
                      rasterized=True, zorder=1)
            c = probs[:, all_groups.index(g)]
            idx = np.nonzero(ok & src)[0]
            idx = idx[np.argsort(c[idx], kind="stable")]  # likely cells on top
            kw = {"s": s, "cmap": cmap, "norm": norm, "linewidths": 0, "rasterized": True, "zorder": 2}
            kw.update(kwargs)
            sc = a.scatter(xy[idx, 0], xy[idx, 1], c=c[idx], **kw)
            a.set_title(f"P({what} = {g})", fontsize="medium")
            axis_labels(a, name, comps)
            a.set_xticks([])
            a.set_yticks([])
        sf_maps.colorbar(sc, ax=maps, location="bottom" if ax is None else "right", shrink=0.6, aspect=35,
                         label=f"{what} probability of the cells at {time_point(tk, src_t)}")
        if ax is None:
            handles = [
                Line2D([], [], ls="", marker="o", ms=6, color=mpl.colormaps[cmap](0.85),
                       label=f"cells at {time_point(tk, src_t)} (colour: probability)"),
                Line2D([], [], ls="", marker="o", ms=6, color=_lighten([lut[shown[0]]], 0.25)[0],
                       label=f"the {groupby or 'group'} at {time_point(tk, tgt_t)} (its colour)"),
                Line2D([], [], ls="", marker="o", ms=6, color=CONTEXT_GREY, label="other cells"),
            ]
            sf_maps.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False, fontsize="small")
    if has_trans:
        a = trans_ax
        mat = np.asarray(entry["transition"], dtype=float)
        rows = [str(r) for r in np.atleast_1d(entry["source_groups"])]
        im = a.imshow(mat, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        rot = max(len(g) for g in all_groups) > 3 and len(all_groups) > 3
        a.set_xticks(np.arange(len(all_groups)))
        a.set_xticklabels(all_groups, rotation=45 if rot else 0, ha="right" if rot else "center")
        a.set_yticks(np.arange(len(rows)))
        a.set_yticklabels(rows)
        a.set_xlabel(f"{groupby} at {time_point(tk, tgt_t)}")
        a.set_ylabel(f"{groupby} at {time_point(tk, src_t)}")
        if mat.size <= 225:
            fs = "small" if mat.size <= 64 else "x-small"
            for i in range(mat.shape[0]):
                for j in range(mat.shape[1]):
                    a.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=fs,
                           color="white" if mat[i, j] > 0.6 else "0.1")
        a.set_title("transition probability" if what == "fate" else "origin probability", fontsize="medium")
        sf_trans.colorbar(im, ax=a, shrink=0.8, aspect=25, label="probability (rows sum to 1)")
    return finish(fig, show, return_fig)
