"""Figures of growth and death: per-cell rates, rates per group, total population size over time."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
from anndata import AnnData

from ..tl._utils import DEFAULT_KEY, fit_embedding, get_fit
from ._utils import (
    CONTEXT_GREY,
    axis_labels,
    category_colors,
    clean_spines,
    finish,
    make_axes,
    per_time,
    point_size,
    resolve_basis,
    time_label,
)

PANELS = ("embedding", "groups", "mass")
#: Blue (death) - light grey (no net growth) - red (proliferation).
GROWTH_CMAP = mpl.colors.LinearSegmentedColormap.from_list(
    "scam_growth", ["#08306b", "#2171b5", "#9ecae1", "#d9d9d9", "#fcae91", "#de2d26", "#67000d"]
)
def rate_label(time_key: str | None) -> str:
    return f"growth rate ({per_time(time_key)})"


def growth(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    basis: str | None = None,
    components=(0, 1),
    groupby: str | None = None,
    panels=None,
    cmap=None,
    size: float | None = None,
    ax=None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """Where cells proliferate or die, per group, and how the population size changes.

    Panels: ``'embedding'``, the growth rate ``g`` of each cell at its own time
    (``adata.obs[f'{key}_growth']``) on an embedding, red for proliferation and blue for death on a
    scale centred at 0; ``'groups'``, the rates per ``groupby`` group (box plots); ``'mass'``, the
    model's total mass over time (relative to the first time point) against the masses it was
    given (observed cell counts, known masses, or the integrated growth prior).

    Parameters
    ----------
    adata
        Annotated data matrix with an unbalanced fit (``scam.tl.action_matching(..., growth=...)``).
    key
        ``key_added`` of :func:`scam.tl.action_matching`.
    basis
        Embedding of the ``'embedding'`` panel: ``None`` (two components of the fit's ``use_rep``) or
        an ``adata.obsm`` key such as ``'X_umap'``.
    components
        Two 0-based components of ``basis``.
    groupby
        Categorical ``obs`` column for the ``'groups'`` panel.
    panels
        Which panels, in order (default: ``'embedding'``, ``'groups'`` when ``groupby`` is given, ``'mass'``).
    cmap
        Diverging colormap of the growth rate (default: blue - grey - red, so cells with a rate
        near 0 stay visible on a white background).
    size
        Marker size of the cells.
    ax
        One Axes per panel (default: a new figure).
    show
        Show the figure (default: when matplotlib is in interactive mode and ``return_fig`` is False).
    return_fig
        Return the Figure.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.scatter` of the ``'embedding'`` panel.

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` if ``return_fig``, else ``None``.
    """
    entry = get_fit(adata, key)
    params = entry["params"]
    col = f"{key}_growth"
    if params.get("growth", "none") != "none" and ("mass" not in entry or col not in adata.obs):
        raise KeyError(
            f"The unbalanced fit `{key}` lacks `adata.obs[{col!r}]` or its mass record. "
            "Run `scam.tl.action_matching` first (again)."
        )
    if params.get("growth", "none") == "none":
        raise ValueError(
            f"This fit is balanced; refit with `growth=` (e.g. `scam.tl.action_matching(adata, ..., "
            f"growth='counts', key_added={key!r})`) to learn growth and death."
        )
    if panels is None:
        panels = ["embedding"] + (["groups"] if groupby is not None else []) + ["mass"]
    panels = [panels] if isinstance(panels, str) else list(panels)
    for p in panels:
        if p not in PANELS:
            raise ValueError(f"Unknown panel {p!r}; choose from {PANELS}.")
    if "groups" in panels:
        if groupby is None:
            raise ValueError("The 'groups' panel needs `groupby=` (a categorical column of `adata.obs`).")
        if groupby not in adata.obs:
            raise KeyError(f"`groupby={groupby!r}` is not a column of `adata.obs`.")
    x_all, t_all, _ = fit_embedding(adata, key)
    g = np.asarray(adata.obs[col], dtype=float)
    finite = np.isfinite(g)
    tl = time_label(params.get("time_key"))
    rl = rate_label(params.get("time_key"))
    widths = {"embedding": 5.6, "groups": 4.2, "mass": 4.2}
    fig, axes = make_axes(ax, len(panels), ncols=len(panels), panel_size=(max(widths[p] for p in panels), 4.4))

    for a, panel in zip(axes, panels):
        if panel == "embedding":
            name, emb, comps = resolve_basis(adata, basis, params["use_rep"], x_all.shape[1], components)
            xy = x_all[:, list(comps)] if emb is None else emb
            ok = finite & np.all(np.isfinite(xy), axis=1)
            top = float(np.nanpercentile(np.abs(g[finite]), 99)) if finite.any() else 1.0
            top = top if top > 0 else 1.0
            norm = mpl.colors.Normalize(vmin=-top, vmax=top)
            s = point_size(int(ok.sum())) if size is None else size
            if (~ok).any():
                a.scatter(xy[~ok, 0], xy[~ok, 1], s=point_size(int((~ok).sum()), "context") if size is None else size,
                          color=CONTEXT_GREY, linewidths=0, rasterized=True)
            order = np.nonzero(ok)[0][np.argsort(np.abs(g[ok]))]  # strongest rates on top
            kw = {"s": s, "cmap": GROWTH_CMAP if cmap is None else cmap, "norm": norm, "linewidths": 0,
                  "rasterized": True}
            kw.update(kwargs)
            sc = a.scatter(xy[order, 0], xy[order, 1], c=g[order], **kw)
            extend = "both" if np.abs(g[finite]).max(initial=0) > top else "neither"
            cb = fig.colorbar(sc, ax=a, fraction=0.046, pad=0.02, extend=extend)
            cb.set_label(f"{rl}\n← death · proliferation →", fontsize="small")
            axis_labels(a, name, comps)
            a.set_xticks([])
            a.set_yticks([])
            a.set_title("growth rate of each cell at its time", fontsize="medium")
        elif panel == "groups":
            labels = adata.obs[groupby]
            categorical = isinstance(labels.dtype, pd.CategoricalDtype)
            cats = list(labels.cat.categories) if categorical else list(pd.unique(labels))
            cats = [c for c in cats if np.any(finite & (labels == c).to_numpy())]
            data = [g[finite & (labels == c).to_numpy()] for c in cats]
            lut = category_colors(adata, groupby, cats)
            bp = a.boxplot(data, patch_artist=True, showfliers=False, widths=0.6,
                           medianprops={"color": "0.1"})
            for patch, c in zip(bp["boxes"], cats):
                patch.set_facecolor(lut[str(c)])
                patch.set_alpha(0.8)
            a.axhline(0, color="0.4", lw=0.8, ls="--", zorder=0)
            a.set_xticks(np.arange(1, len(cats) + 1))
            rot = len(cats) > 4 and max(len(str(c)) for c in cats) > 3
            a.set_xticklabels([str(c) for c in cats], rotation=45 if rot else 0, ha="right" if rot else "center")
            a.set_xlabel(groupby)
            a.set_ylabel(rl)
            a.set_title(f"growth rate by {groupby}", fontsize="medium")
            clean_spines(a)
        else:
            mass = entry["mass"]
            a.plot(np.asarray(mass["times"], float), np.asarray(mass["model"], float), color="C0", lw=2,
                   label="model", zorder=2)
            obs_t = np.asarray(mass.get("observed_times", []), float)
            mode = params.get("growth")
            if "observed" in mass:
                what = {"counts": "observed (cell counts)", "masses": "given masses"}.get(mode, "observed")
                a.scatter(obs_t, np.asarray(mass["observed"], float), color="0.1", s=point_size(len(obs_t), "summary"),
                          zorder=3, label=what)
            if "prior" in mass:
                a.scatter(obs_t, np.asarray(mass["prior"], float), marker="D", color="C1",
                          s=point_size(len(obs_t), "summary"), zorder=3,
                          label="growth prior (integrated)")
            if mode == "learn":
                a.axhline(1.0, color="0.4", lw=0.8, ls="--", label="given: equal masses", zorder=1)
            a.set_xlabel(tl)
            a.set_ylabel("total mass (relative to first time)")
            a.set_title("population size", fontsize="medium")
            a.legend(fontsize="small", frameon=False, loc="best")
            top = max([np.nanmax(np.asarray(mass["model"], float))]
                      + [np.nanmax(np.asarray(mass[k], float)) for k in ("observed", "prior") if k in mass])
            a.set_ylim(0, 1.15 * max(top, 1.0))
            clean_spines(a)
    return finish(fig, show, return_fig)
