"""Shared plumbing of the plotting room: reading fits, axes, colours, embeddings, grids."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from ..tl._utils import DEFAULT_KEY, fit_embedding, get_fit, get_model  # noqa: F401 (re-exported)

TIME_CMAP = "viridis"
CONTEXT_GREY = "#d9d9d9"


# ----------------------------------------------------------------------------- figure handling
def finish(fig, show: bool | None, return_fig: bool):
    """Show the figure when asked and return it if asked.

    ``show=None`` shows it when matplotlib is interactive (e.g. a notebook) and the figure is not
    returned (a returned figure is meant to be changed before it is shown).
    """
    if show is None:
        show = mpl.is_interactive() and not return_fig
    if show:
        plt.show()
    return fig if return_fig else None


def make_axes(ax, n_panels: int, *, ncols: int = 4, panel_size=(4.2, 3.8)):
    """A figure with ``n_panels`` axes (constrained layout, so colour bars and labels never collide),
    or the user's ``ax`` (one Axes, or a sequence of them)."""
    if ax is None:
        ncols = max(1, min(ncols, n_panels))
        nrows = int(np.ceil(n_panels / ncols))
        ncols = int(np.ceil(n_panels / nrows))  # balanced rows: 5 panels as 3 + 2, not 4 + 1
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False,
            layout="constrained",
        )
        axes = list(axes.ravel())
        for extra in axes[n_panels:]:
            extra.remove()
        return fig, axes[:n_panels]
    if isinstance(ax, Axes):
        axes = [ax]
    elif isinstance(ax, (Sequence, np.ndarray)) and all(isinstance(a, Axes) for a in np.ravel(ax)):
        axes = list(np.ravel(ax))
    else:
        raise TypeError(f"`ax` must be a matplotlib Axes or a sequence of Axes, got {type(ax).__name__}.")
    if len(axes) != n_panels:
        raise ValueError(
            f"This plot has {n_panels} panel(s) but `ax` gives {len(axes)} Axes; pass one Axes per panel "
            "(or leave `ax=None`)."
        )
    return axes[0].figure, axes


# ----------------------------------------------------------------------------- labels
def time_label(time_key: str | None) -> str:
    """Colour-bar / axis label for time, naming the obs column the times come from."""
    if not time_key or time_key == "time":
        return "time"
    return f"time ({time_key})"


def time_point(time_key: str | None, value: float) -> str:
    """A time point in words: ``'day 2'`` for ``time_key='day'``, else ``'time 2'``."""
    return f"{time_key or 'time'} {float(value):g}"


def _basis_stub(name: str) -> str:
    stub = name[2:] if name.startswith("X_") else name
    return {"pca": "PC", "umap": "UMAP", "tsne": "tSNE", "phate": "PHATE", "diffmap": "DC"}.get(stub.lower(), stub)


def axis_labels(ax: Axes, name: str, components) -> None:
    """``PC1``/``PC2``-style labels (1-based, as in scanpy) without ticks clutter."""
    stub = _basis_stub(name)
    ax.set_xlabel(f"{stub}{components[0] + 1}")
    ax.set_ylabel(f"{stub}{components[1] + 1}")


# ----------------------------------------------------------------------------- embeddings
def _components(components, n_available: int, name: str) -> tuple[int, int]:
    comps = tuple(int(c) for c in components)
    if len(comps) != 2:
        raise ValueError(f"`components` must name two components (0-based), got {components!r}.")
    if comps[0] == comps[1]:
        raise ValueError(f"`components` must be two different components, got {components!r}.")
    for c in comps:
        if not 0 <= c < n_available:
            raise ValueError(f"`components={components!r}` is out of range: `{name}` has {n_available} component(s).")
    return comps


def resolve_basis(adata: AnnData, basis: str | None, use_rep: str, n_dims: int, components):
    """``(name, coordinates or None, components)``: ``None`` coordinates mean the fit's own space.

    ``basis`` may be an ``obsm`` key or a scanpy-style short name (``'umap'`` for ``'X_umap'``).
    """
    if basis is None or basis in (use_rep, f"X_{use_rep}"):
        return use_rep, None, _components(components, n_dims, use_rep)
    name = basis if basis in adata.obsm else f"X_{basis}"
    if name not in adata.obsm:
        raise KeyError(f"`basis={basis!r}` is not in `adata.obsm` (keys: {list(adata.obsm.keys())}).")
    emb = np.asarray(adata.obsm[name], dtype=float)
    if emb.ndim != 2:
        raise ValueError(f"`adata.obsm[{name!r}]` must be 2-D, got shape {emb.shape}.")
    comps = _components(components, emb.shape[1], name)
    if name == use_rep:
        return name, None, comps
    return name, emb[:, list(comps)], comps


def knn_map(x_fit: np.ndarray, emb: np.ndarray, *, n_neighbors: int = 15, weights: str = "distance"):
    """A k-nearest-neighbour regressor from the fit's space to a 2-D embedding (e.g. UMAP).

    Fitted on the cells where both are finite; used to place simulated or displaced points, which
    live in the fit's space, into an embedding that has no inverse map.
    """
    from sklearn.neighbors import KNeighborsRegressor

    ok = np.all(np.isfinite(x_fit), axis=1) & np.all(np.isfinite(emb), axis=1)
    k = int(min(n_neighbors, ok.sum()))
    return KNeighborsRegressor(n_neighbors=k, weights=weights).fit(x_fit[ok], emb[ok])


# ----------------------------------------------------------------------------- colours
def category_colors(adata: AnnData, key: str, categories) -> dict:
    """Colours of an obs category: ``adata.uns[f'{key}_colors']`` when it fits, else tab10/tab20."""
    stored = adata.uns.get(f"{key}_colors")
    cats = [str(c) for c in categories]
    col = adata.obs[key]
    all_cats = [str(c) for c in (col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else cats)]
    if stored is not None and len(stored) >= len(all_cats):
        lookup = dict(zip(all_cats, list(stored)))
        return {c: lookup.get(c, "0.5") for c in cats}
    cmap = plt.get_cmap("tab10" if len(all_cats) <= 10 else "tab20")
    lookup = {c: cmap(i % cmap.N) for i, c in enumerate(all_cats)}
    return {c: lookup[c] for c in cats}


def point_size(n: int) -> float:
    """Scatter marker area that stays readable from a few hundred to tens of thousands of cells."""
    return float(np.clip(12000.0 / max(n, 1), 1.5, 30.0))


# ----------------------------------------------------------------------------- time and grids
def nearest_observed_time(t_all: np.ndarray, time: float) -> float:
    """The observed time point closest to ``time``."""
    obs = np.unique(t_all[np.isfinite(t_all)])
    return float(obs[np.argmin(np.abs(obs - float(time)))])


def grid_2d(xy: np.ndarray, n: int, pad: float = 0.05):
    """A regular ``n x n`` grid covering the points ``xy`` (padded): ``(gx, gy)`` 1-D axes."""
    lo, hi = np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    lo, hi = lo - pad * span, hi + pad * span
    return np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)


def fill_grid_points(gx, gy, components, base: np.ndarray) -> np.ndarray:
    """Full-dimensional points for the grid: the two components vary, the others are ``base``."""
    xx, yy = np.meshgrid(gx, gy)
    pts = np.tile(np.asarray(base, dtype=float), (xx.size, 1))
    pts[:, components[0]] = xx.ravel()
    pts[:, components[1]] = yy.ravel()
    return pts


def support_mask(gx, gy, xy: np.ndarray, radius: float) -> np.ndarray:
    """``(len(gy), len(gx))`` boolean: grid points within ``radius`` of some point of ``xy``."""
    from sklearn.neighbors import NearestNeighbors

    xx, yy = np.meshgrid(gx, gy)
    dist, _ = NearestNeighbors(n_neighbors=1).fit(xy).kneighbors(np.c_[xx.ravel(), yy.ravel()])
    return (dist[:, 0] <= radius).reshape(xx.shape)


def smooth_to_grid(xy: np.ndarray, values: np.ndarray, gx, gy, *, bandwidth: float, n_neighbors: int = 50):
    """Gaussian-kernel average of per-cell ``values`` (``(n,)`` or ``(n, k)``) at the grid points.

    Returns an array of shape ``(len(gy), len(gx))`` (or ``(len(gy), len(gx), k)``).
    """
    from sklearn.neighbors import NearestNeighbors

    values = np.asarray(values, dtype=float)
    squeeze = values.ndim == 1
    vals = values[:, None] if squeeze else values
    xx, yy = np.meshgrid(gx, gy)
    k = int(min(n_neighbors, len(xy)))
    dist, nbr = NearestNeighbors(n_neighbors=k).fit(xy).kneighbors(np.c_[xx.ravel(), yy.ravel()])
    w = np.exp(-0.5 * (dist / bandwidth) ** 2)
    w_sum = w.sum(axis=1, keepdims=True)
    w = np.where(w_sum > 0, w / np.maximum(w_sum, 1e-300), 1.0 / k)
    out = np.einsum("gk,gkc->gc", w, vals[nbr]).reshape(*xx.shape, vals.shape[1])
    return out[..., 0] if squeeze else out


def time_norm(t_all: np.ndarray, extra=()) -> mpl.colors.Normalize:
    """One time colour scale for cells and paths: from the first to the last time shown."""
    vals = np.concatenate([np.asarray(t_all, float).ravel(), np.asarray(extra, float).ravel()])
    vals = vals[np.isfinite(vals)]
    lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        hi = lo + 1.0
    return mpl.colors.Normalize(vmin=lo, vmax=hi)


def clean_spines(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
