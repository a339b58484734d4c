"""Figures of gene expression along the learned dynamics."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData

from ._utils import category_colors, clean_spines, finish, make_axes, time_label


def _entry(adata: AnnData, key: str) -> Mapping:
    entry = adata.uns.get(key)
    if not isinstance(entry, Mapping) or "mean" not in entry:
        raise KeyError(f"No gene trends under `adata.uns[{key!r}]`. Run `scam.tl.gene_trends` first.")
    return entry


def gene_trends(
    adata: AnnData,
    *,
    genes,
    key: str = "action_matching_gene_trends",
    groups=None,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """Mean expression of genes along the simulated trajectories, against time.

    Draws what :func:`scam.tl.gene_trends` stored: the weighted mean expression of the simulated
    population at each recorded time. Without ``groups``, one panel with one line per gene; with
    ``groups``, one panel per gene with one line per group of starting cells (and the whole
    population as a dashed grey line).

    Parameters
    ----------
    adata
        Annotated data matrix with gene trends.
    genes
        Gene name(s) among those stored.
    key
        ``adata.uns`` key of :func:`scam.tl.gene_trends` (default ``'action_matching_gene_trends'``).
    groups
        ``True`` for all stored groups, or a list of group names; needs ``scam.tl.gene_trends(...,
        groups=...)``. Colours follow ``adata.uns[f'{groupby}_colors']`` when present.
    ax
        Axes to draw into (one, or one per gene with ``groups``); default: a new figure.
    show
        Show the figure (default: when matplotlib is in interactive mode and ``return_fig`` is False).
    return_fig
        Return the Figure.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot` (the trend lines).

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` if ``return_fig``, else ``None``.
    """
    entry = _entry(adata, key)
    stored = [str(g) for g in np.asarray(entry["genes"])]
    genes = [genes] if isinstance(genes, str) else [str(g) for g in genes]
    if not genes:
        raise ValueError("`genes` is empty; name at least one gene.")
    missing = [g for g in genes if g not in stored]
    if missing:
        raise KeyError(
            f"Gene(s) {missing[:20]} have no trend under `adata.uns[{key!r}]`; stored genes include {stored[:10]}. "
            "Run `scam.tl.gene_trends` with these genes."
        )
    params = entry.get("params", {})
    times = np.asarray(entry["times"], dtype=float)
    mean = np.asarray(entry["mean"], dtype=float)
    cols = [stored.index(g) for g in genes]
    ylabel = "mean expression" + (f" ({params['layer']})" if params.get("layer") else "")
    xlabel = time_label(params.get("time_key"))

    if groups is None or groups is False:
        fig, (ax,) = make_axes(ax, 1, panel_size=(5.6, 3.8))
        cmap = plt.get_cmap("tab10" if len(genes) <= 10 else "tab20")
        for i, (g, c) in enumerate(zip(genes, cols)):
            ax.plot(times, mean[:, c], **{"color": cmap(i % cmap.N), "lw": 1.8, "label": g, **kwargs})
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if len(genes) > 1:
            ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        else:
            ax.set_title(genes[0])
        clean_spines(ax)
        return finish(fig, show, return_fig)

    if "group_means" not in entry:
        raise ValueError(
            f"`adata.uns[{key!r}]` has no trends per group; run "
            "`scam.tl.gene_trends(adata, ..., groups='<obs column>')`."
        )
    names = [str(g) for g in np.asarray(entry["group_names"])]
    chosen = names if groups is True else ([groups] if isinstance(groups, str) else [str(g) for g in groups])
    unknown = [g for g in chosen if g not in names]
    if unknown:
        raise KeyError(f"Group(s) {unknown} not stored under `adata.uns[{key!r}]`; stored groups: {names}.")
    gmeans = np.asarray(entry["group_means"], dtype=float)
    groupby = params.get("groups")
    if isinstance(groupby, str) and groupby in adata.obs:
        colors = category_colors(adata, groupby, chosen)
    else:
        cmap = plt.get_cmap("tab10" if len(chosen) <= 10 else "tab20")
        colors = {g: cmap(i % cmap.N) for i, g in enumerate(chosen)}
    fig, axes = make_axes(ax, len(genes), panel_size=(4.6, 3.6))
    for a, g, c in zip(axes, genes, cols):
        for name in chosen:
            style = {"color": colors[name], "lw": 1.8, "label": name, **kwargs}
            a.plot(times, gmeans[names.index(name), :, c], **style)
        a.plot(times, mean[:, c], color="0.45", lw=1.2, ls="--", label="all")
        a.set_title(g)
        a.set_xlabel(xlabel)
        a.set_ylabel(ylabel)
        clean_spines(a)
    axes[-1].legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                    title=groupby if isinstance(groupby, str) else None, title_fontsize="small")
    return finish(fig, show, return_fig)
