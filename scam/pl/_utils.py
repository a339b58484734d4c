"""Shared plumbing of the plotting room: reading fits, axes, colours, embeddings, grids."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

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


_UNITS = {"day": "day", "days": "day", "d": "day", "hour": "hour", "hours": "hour", "h": "hour",
          "hpf": "hour", "week": "week", "weeks": "week", "minute": "minute", "minutes": "minute",
          "month": "month", "months": "month", "year": "year", "years": "year"}


def per_time(time_key: str | None) -> str:
    """``'per day'`` for ``time_key='day'``; ``'per time unit'`` or ``'per unit of <key>'`` otherwise."""
    unit = _UNITS.get(str(time_key).lower())
    if unit:
        return f"per {unit}"
    if not time_key or time_key == "time":
        return "per time unit"
    return f"per unit of {time_key}"


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


class EmbeddingMap:
    """A smooth map from the fit's space into a 2-D embedding (e.g. UMAP) that has no inverse map.

    A point goes to a weighted average of the embedding coordinates of its ``n_neighbors`` nearest
    fitted cells, with tricube weights ``(1 - (d / h)³)³`` and ``h`` the distance to the next
    (``n_neighbors + 1``-th) cell, as in LOESS. A cell enters or leaves the neighbourhood exactly
    when its weight is 0, so the map is continuous: a path stays a curve in the embedding instead
    of jumping from cell to cell as with an inverse-distance k-nearest-neighbour average.

    Parameters
    ----------
    x_fit
        Cells in the fit's space, ``(n, d)``.
    emb
        The same cells in the embedding, ``(n, 2)``.
    n_neighbors
        Neighbours averaged per point.
    """

    def __init__(self, x_fit: np.ndarray, emb: np.ndarray, *, n_neighbors: int = 30):
        from sklearn.neighbors import NearestNeighbors

        x_fit, emb = np.asarray(x_fit, dtype=float), np.asarray(emb, dtype=float)
        ok = np.all(np.isfinite(x_fit), axis=1) & np.all(np.isfinite(emb), axis=1)
        if not ok.any():
            raise ValueError("No cell has finite coordinates in both the fit's space and the embedding.")
        self.emb = emb[ok]
        self.k = int(max(1, min(n_neighbors, ok.sum() - 1)))
        self.nn = NearestNeighbors(n_neighbors=min(self.k + 1, int(ok.sum()))).fit(x_fit[ok])

    def predict(self, points: np.ndarray) -> np.ndarray:
        """Embedding coordinates ``(m, 2)`` of ``points`` ``(m, d)`` in the fit's space."""
        points = np.asarray(points, dtype=float)
        out = np.empty((len(points), self.emb.shape[1]))
        for lo in range(0, len(points), 20000):
            dist, nbr = self.nn.kneighbors(points[lo:lo + 20000])
            h = dist[:, -1:]  # the first cell left out
            h = np.where(h > 0, h, 1.0)
            w = np.clip(1.0 - (dist[:, : self.k] / h) ** 3, 0.0, 1.0) ** 3
            w_sum = w.sum(axis=1, keepdims=True)
            w = np.where(w_sum > 0, w / np.maximum(w_sum, 1e-300), 1.0 / self.k)  # ties at h: plain mean
            out[lo:lo + 20000] = np.einsum("mk,mkc->mc", w, self.emb[nbr[:, : self.k]])
        return out

    __call__ = predict


# ----------------------------------------------------------------------------- colours
def category_colors(adata: AnnData, key: str, categories) -> dict:
    """One fixed colour per category of ``adata.obs[key]``, the same in every panel and figure.

    ``adata.uns[f'{key}_colors']`` (scanpy's colours) when it has one per category, else tab10
    (up to 10 categories) or tab20, in the order of the categories.
    """
    stored = adata.uns.get(f"{key}_colors")
    cats = [str(c) for c in categories]
    col = adata.obs[key]
    if isinstance(col.dtype, pd.CategoricalDtype):
        all_cats = [str(c) for c in col.cat.categories]
    else:  # as scanpy would order them once the column is made categorical: the same colours in every figure
        all_cats = sorted({str(c) for c in pd.unique(col.dropna())} | set(cats))
    if stored is not None and len(stored) >= len(all_cats):
        lookup = dict(zip(all_cats, list(stored)))
        return {c: lookup.get(c, "0.5") for c in cats}
    cmap = plt.get_cmap("tab10" if len(all_cats) <= 10 else "tab20")
    lookup = {c: cmap(i % cmap.N) for i, c in enumerate(all_cats)}
    return {c: lookup.get(c, "0.5") for c in cats}


#: Sequential colormap of probabilities: light grey (0) to black (1). It has no hue, so it never
#: resembles a group's colour (qualitative palettes are saturated hues) and dark means likely.
PROBABILITY_CMAP = mpl.colors.LinearSegmentedColormap.from_list(
    "scam_probability", ["#cfcfcf", "#9a9a9a", "#5f5f5f", "#2b2b2b", "#000000"]
)


#: Relative marker area of each role a scatter plays (see :func:`point_size`).
MARKER_ROLES = {
    "cells": 1.0,  # the cells a panel is about (coloured by a value, a group, or time)
    "context": 0.5,  # cells drawn underneath for context (grey, or lightened)
    "overlay": 0.4,  # points on top of a field or of paths: cells over a landscape, path ends
    "summary": 1.3,  # a few summary values in a chart (masses, per-seed errors)
    "highlight": 2.7,  # one marked value (a ring around the kept training step)
}


#: Marker size (points, ``Line2D`` ``ms``) of legend handles and colour keys: not data, so not ``point_size``.
KEY_MARKER_SIZE = 6.0


def point_size(n: int, role: str = "cells") -> float:
    """Scatter marker area (pt²): the one marker-size rule of :mod:`scam.pl`.

    The area shrinks as ``1 / n`` so that ``n`` points cover about the same share of a panel,
    within limits that keep a few hundred and tens of thousands of cells readable, and ``role``
    scales it (:data:`MARKER_ROLES`): context cells are smaller than the cells a panel is about,
    points on top of a field or of paths smaller still.

    Parameters
    ----------
    n
        Number of points drawn in the panel (in this role).
    role
        One of ``'cells'``, ``'context'``, ``'overlay'``, ``'summary'``, ``'highlight'``.

    Returns
    -------
    The marker area, for ``scatter(s=...)``.
    """
    if role not in MARKER_ROLES:
        raise ValueError(f"Unknown marker role {role!r}; choose from {sorted(MARKER_ROLES)}.")
    return float(np.clip(15000.0 / max(int(n), 1), 2.0, 30.0)) * MARKER_ROLES[role]


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


def distance_to_cells(gx, gy, xy: np.ndarray) -> np.ndarray:
    """``(len(gy), len(gx))``: distance from each grid point to the nearest point of ``xy``."""
    from sklearn.neighbors import NearestNeighbors

    xx, yy = np.meshgrid(gx, gy)
    dist, _ = NearestNeighbors(n_neighbors=1).fit(xy).kneighbors(np.c_[xx.ravel(), yy.ravel()])
    return dist[:, 0].reshape(xx.shape)


def support_mask(gx, gy, xy: np.ndarray, radius: float) -> np.ndarray:
    """``(len(gy), len(gx))`` boolean: grid points within ``radius`` of some point of ``xy``."""
    return distance_to_cells(gx, gy, xy) <= radius


def support_path(gx, gy, dist: np.ndarray, radius: float, *, smooth: float = 0.0):
    """The region within ``radius`` of the cells as one smooth :class:`~matplotlib.path.Path`.

    ``dist`` is :func:`distance_to_cells` on the grid; the outline is its ``radius`` contour
    (interpolated between grid points), so a field clipped to it has smooth edges instead of the
    staircase of masked grid cells. ``smooth > 0`` first blurs the distance field with a Gaussian of
    that width (data units), which rounds off the scallops of the union of discs around the cells.
    """
    import contourpy
    from matplotlib.path import Path
    from scipy.ndimage import gaussian_filter

    if smooth > 0:
        step = np.array([abs(gy[1] - gy[0]), abs(gx[1] - gx[0])]) if len(gx) > 1 and len(gy) > 1 else np.ones(2)
        dist = gaussian_filter(np.asarray(dist, dtype=float), sigma=smooth / np.maximum(step, 1e-300), mode="nearest")

    gen = contourpy.contour_generator(np.asarray(gx), np.asarray(gy), np.asarray(dist, dtype=float),
                                      fill_type=contourpy.FillType.OuterCode)
    points, codes = gen.filled(-1.0, float(radius))
    parts = [Path(p, c) for p, c in zip(points, codes) if len(p)]
    if not parts:
        return None
    return Path.make_compound_path(*parts)


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
