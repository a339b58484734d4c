"""Figures of fate probabilities: per-cell fate maps and the group-to-group transition matrix."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.lines import Line2D

from ..tl._utils import DEFAULT_KEY, fit_embedding
from ._dynamics import _lighten
from ._utils import (
    KEY_MARKER_SIZE,
    PROBABILITY_CMAP,
    axis_labels,
    category_colors,
    finish,
    make_axes,
    point_size,
    resolve_basis,
    time_point,
)

#: Cells that are neither at ``source_time`` nor at ``target_time``: lighter than the lightest
#: probability, so that every source cell stands out from them.
_FAR_GREY = "#ececec"
#: Widest figure (inches; 1,600 px at 100 dpi) the default layout aims for.
_MAX_WIDTH = 16.0


def _fate_layout(n_maps: int, n_cols_heat: int, n_rows_heat: int, row_chars: int, has_trans: bool, ncols):
    """A figure with ``n_maps`` map panels in rows and the heatmap beside them (few fate groups) or
    below them (many); sub-figures keep the colour bars and the heatmap's labels apart.

    The width stays within :data:`_MAX_WIDTH` for up to a dozen fate groups.
    """
    beside = has_trans and n_maps > 0 and n_cols_heat <= 6
    if n_maps:
        if ncols is None:
            ncols = 3 if n_maps <= 9 or beside else 4
        ncols = max(1, min(int(ncols), n_maps))
        nrows = int(np.ceil(n_maps / ncols))
        ncols = int(np.ceil(n_maps / nrows))  # balanced rows: 5 maps as 3 + 2, not 4 + 1
    else:
        ncols = nrows = 0
    label_w = 0.6 + 0.075 * row_chars  # the heatmap's row labels and y label
    w_heat = (1.5 + 0.45 * n_cols_heat + label_w) if has_trans else 0.0
    h_heat = (1.9 + 0.42 * n_rows_heat) if has_trans else 0.0
    panel_w = 3.3
    if beside:
        panel_w = min(panel_w, (_MAX_WIDTH - w_heat) / max(ncols, 1))
    elif n_maps:
        panel_w = min(panel_w, _MAX_WIDTH / ncols)
    w_maps, h_maps = panel_w * ncols, (panel_w * 0.92 * nrows + 1.3 if n_maps else 0.0)
    if beside:
        size = (w_maps + w_heat, max(h_maps, h_heat + 0.8))
    else:
        size = (max(w_maps, min(w_heat, _MAX_WIDTH)), h_maps + h_heat)
    fig = plt.figure(figsize=size, layout="constrained")
    if n_maps and has_trans:
        if beside:
            sf_maps, sf_trans = fig.subfigures(1, 2, width_ratios=[w_maps, w_heat], wspace=0.02)
        else:
            sf_maps, sf_trans = fig.subfigures(2, 1, height_ratios=[h_maps, h_heat], hspace=0.02)
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
        if beside and nrows > 1:  # a heatmap of natural height, centred beside the maps
            spare = max(0.0, size[1] - h_heat) / 2
            trans = sf_trans.subplots(3, 1, height_ratios=[spare + 1e-3, h_heat, spare + 1e-3])[1]
            for a in sf_trans.axes:
                if a is not trans:
                    a.remove()
        elif not beside and n_maps:  # a heatmap of natural width, centred below the maps
            spare = max(0.0, size[0] - w_heat) / 2
            trans = sf_trans.subplots(1, 3, width_ratios=[spare + 1e-3, w_heat, spare + 1e-3])[1]
            for a in sf_trans.axes:
                if a is not trans:
                    a.remove()
        else:
            trans = sf_trans.subplots()
    return fig, sf_maps, maps, sf_trans, trans


def _colour_keys(ax, colors, *, axis: str) -> None:
    """Each group's fixed colour as a square beside its heatmap label: above the columns
    (``axis='x'``) or left of the rows (``'y'``), a fixed distance in points from the axes."""
    n = len(colors)
    if not n:
        return
    side = KEY_MARKER_SIZE + 1.0  # points
    if axis == "x":
        base = mpl.transforms.blended_transform_factory(ax.transData, ax.transAxes)
        shift = mpl.transforms.ScaledTranslation(0, (side / 2 + 3) / 72, ax.figure.dpi_scale_trans)
        xs, ys = np.arange(n), np.ones(n)
    else:
        base = mpl.transforms.blended_transform_factory(ax.transAxes, ax.transData)
        shift = mpl.transforms.ScaledTranslation(-(side / 2 + 3) / 72, 0, ax.figure.dpi_scale_trans)
        xs, ys = np.zeros(n), np.arange(n)
    ax.scatter(xs, ys, s=side**2, marker="s", c=list(colors), linewidths=0, transform=base + shift,
               clip_on=False, zorder=3)
    if axis == "y":
        ax.tick_params(axis="y", pad=side + 6)


def fate(
    adata: AnnData,
    *,
    key: str | None = None,
    groups=None,
    basis: str | None = None,
    components=(0, 1),
    transition: bool = True,
    cmap=None,
    size: float | None = None,
    ncols: int | None = None,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """Fate probabilities of the early cells, and where their groups go.

    One map per fate group: the cells at ``source_time`` on an embedding, shaded by their
    probability of ending in that group at ``target_time`` (for a backward computation,
    ``target_time < source_time``: of coming from it), from light grey (0) to black (1). Underneath,
    the cells at ``target_time`` in the colours of their groups: the panel's own group in full
    colour, the others faded; all other cells in light grey. Each group keeps one colour in every
    panel, the legend and the heatmap: ``adata.uns[f'{groupby}_colors']`` when present (scanpy's
    colours), else a qualitative palette. The probability shading has no hue, so it is never
    mistaken for a group's colour.

    When ``groupby`` also labels the source cells, a heatmap shows the weighted group-to-group
    transition matrix (rows: groups at ``source_time`` with their numbers of cells, ``n=``;
    columns: groups at ``target_time``; rows sum to 1), with each group's colour beside its label.
    It goes beside the maps for up to six fate groups and below them for more, so that the figure
    stays at most about 1,600 pixels wide at 100 dpi.

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`scam.tl.fate_probabilities`.
    key
        ``key_added`` of :func:`scam.tl.fate_probabilities` (default: its default,
        ``'action_matching_fates'``; files written by older versions: ``'fate_probabilities'``).
    groups
        Fate group or groups to map (default: all; ``[]``: only the transition heatmap).
    basis
        ``None`` (two components of the fit's ``use_rep``) or an ``adata.obsm`` key such as ``'X_umap'``.
    components
        Two 0-based components of ``basis``.
    transition
        Add the transition heatmap when it exists (``groupby`` labels the source cells).
    cmap
        Sequential colormap of the probabilities (0 to 1) in the maps and the heatmap (default:
        light grey to black).
    size
        Marker size of the source cells (default: from their number).
    ncols
        Maximum number of maps per row (default: 3, or 4 for more than nine maps drawn without the
        heatmap beside them).
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
    if key is None:
        key = f"{DEFAULT_KEY}_fates"
        if key not in adata.obsm and "fate_probabilities" in adata.obsm:  # written before the keys followed the fit
            key = "fate_probabilities"
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
        raise ValueError(
            f"`adata.obsm[{key!r}]` has {probs.shape[-1]} columns but {len(all_groups)} groups are recorded."
        )
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
    cmap = PROBABILITY_CMAP if cmap is None else mpl.colormaps[cmap] if isinstance(cmap, str) else cmap
    x_all, t_all, fit_params = fit_embedding(adata, params.get("key", "action_matching"))
    src = np.all(np.isfinite(probs), axis=1)
    src_t, tgt_t = float(params["source_time"]), float(params["target_time"])
    groupby = str(params.get("groupby", ""))
    what = "origin" if tgt_t < src_t else "fate"
    tk = fit_params.get("time_key")
    labelled = groupby in adata.obs
    labels = adata.obs[groupby].astype(str).to_numpy() if labelled else np.full(adata.n_obs, "")
    rows = [str(r) for r in np.atleast_1d(entry["source_groups"])] if has_trans else []
    lut = category_colors(adata, groupby, sorted(set(all_groups) | set(rows), key=(all_groups + rows).index)) \
        if labelled else {g: "0.5" for g in all_groups + rows}
    counts = {r: int(np.sum(src & (labels == r))) for r in rows}
    row_labels = [f"{r} (n={counts[r]})" for r in rows]

    n_panels = len(shown) + int(has_trans)
    if ax is None:
        fig, sf_maps, maps, sf_trans, trans_ax = _fate_layout(
            len(shown), len(all_groups), len(rows), max((len(r) for r in row_labels), default=0), has_trans, ncols
        )
    else:
        fig, axes = make_axes(ax, n_panels)
        maps, trans_ax = axes[: len(shown)], (axes[-1] if has_trans else None)
        sf_maps = sf_trans = fig

    if shown:
        name, emb, comps = resolve_basis(adata, basis, fit_params["use_rep"], x_all.shape[1], components)
        xy = x_all[:, list(comps)] if emb is None else emb
        ok = np.all(np.isfinite(xy), axis=1)
        tgt = np.isclose(t_all, tgt_t) & ok & ~src
        far = ok & ~src & ~tgt
        norm = mpl.colors.Normalize(vmin=0.0, vmax=1.0)
        s_ctx = point_size(int(ok.sum()), "context")
        s = point_size(int(src.sum())) if size is None else size
        tgt_idx = np.nonzero(tgt)[0]
        tgt_groups = [g for g in all_groups if np.any(labels[tgt_idx] == g)]
        sc = None
        for a, g in zip(maps, shown):
            a.scatter(xy[far, 0], xy[far, 1], s=s_ctx, color=_FAR_GREY, linewidths=0, rasterized=True, zorder=0)
            # the cells at target_time in their groups' fixed colours: others faded, this panel's group in full
            others = tgt_idx[labels[tgt_idx] != g]
            if len(others):
                faded = _lighten([lut.get(lab, "0.5") for lab in labels[others]], 0.7)
                a.scatter(xy[others, 0], xy[others, 1], s=s_ctx, color=faded, linewidths=0, rasterized=True,
                          zorder=1)
            mine = tgt_idx[labels[tgt_idx] == g]
            a.scatter(xy[mine, 0], xy[mine, 1], s=s_ctx, color=lut[g], linewidths=0, rasterized=True, zorder=1,
                      label=f"{g} at {time_point(tk, tgt_t)}")
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
            handles = [Line2D([], [], ls="", marker="o", ms=KEY_MARKER_SIZE, color=lut[g], label=g) for g in tgt_groups]
            handles.append(Line2D([], [], ls="", marker="o", ms=KEY_MARKER_SIZE, color=_FAR_GREY, label="other cells"))
            sf_maps.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 7), frameon=False,
                           fontsize="small", title_fontsize="small",
                           title=f"{groupby or 'group'} of the cells at {time_point(tk, tgt_t)} "
                                 f"(faded where not the panel's {what})")
    if has_trans:
        a = trans_ax
        mat = np.asarray(entry["transition"], dtype=float)
        heat_cmap = cmap
        if cmap is PROBABILITY_CMAP:  # the same ramp, from white: a 0 cell reads as empty
            heat_cmap = mpl.colors.LinearSegmentedColormap.from_list(
                "scam_probability_heat", ["#ffffff"] + [cmap(v) for v in np.linspace(0, 1, 5)])
        im = a.imshow(mat, cmap=heat_cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        rot = max(len(g) for g in all_groups) > 3 and len(all_groups) > 3
        a.set_xticks(np.arange(len(all_groups)))
        a.set_xticklabels(all_groups, rotation=45 if rot else 0, ha="right" if rot else "center",
                          rotation_mode="anchor" if rot else "default")
        a.set_yticks(np.arange(len(rows)))
        a.set_yticklabels(row_labels)
        if labelled:
            _colour_keys(a, [lut[g] for g in all_groups], axis="x")
            _colour_keys(a, [lut[r] for r in rows], axis="y")
        a.set_xlim(-0.5, len(all_groups) - 0.5)
        a.set_ylim(len(rows) - 0.5, -0.5)
        a.tick_params(length=0)
        a.set_xlabel(f"{groupby} at {time_point(tk, tgt_t)}")
        a.set_ylabel(f"{groupby} at {time_point(tk, src_t)}")
        if mat.size <= 225:
            fs = "small" if mat.size <= 64 else "x-small"
            for i in range(mat.shape[0]):
                for j in range(mat.shape[1]):
                    a.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=fs,
                           color="white" if mat[i, j] > 0.45 else "0.1")
        a.set_title("transition probability" if what == "fate" else "origin probability", fontsize="medium",
                    pad=16 if labelled else 6)
        sf_trans.colorbar(im, ax=a, shrink=0.8, aspect=25, label="probability (rows sum to 1)")
    return finish(fig, show, return_fig)
