"""Input validation and subsampling shared by the distribution metrics."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .._utils import make_rng


def as_points(x, name: str) -> np.ndarray:
    """A float64 ``(n, d)`` array of finite points; 1-D input is ``n`` points on the line."""
    if sparse.issparse(x):
        x = x.toarray()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array of shape (n_cells, n_dims), got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` is empty (0 cells).")
    if arr.shape[1] == 0:
        raise ValueError(f"`{name}` has 0 dimensions.")
    if not np.all(np.isfinite(arr)):
        n_bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"`{name}` contains NaN or infinite values ({n_bad} cells).")
    return arr


def check_pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Validate two point clouds and check that their dimensions agree."""
    xa = as_points(x, "x")
    ya = as_points(y, "y")
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(
            f"`x` and `y` must have the same number of dimensions, got {xa.shape[1]} and {ya.shape[1]}."
        )
    return xa, ya


def as_weights(w, n: int, name: str) -> np.ndarray:
    """Validated weights of length ``n`` normalised to sum 1 (uniform when ``w`` is ``None``)."""
    if w is None:
        return np.full(n, 1.0 / n)
    arr = np.asarray(w, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"`{name}` must be a 1-D array of length {n} (one weight per cell), got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    if np.any(arr < 0):
        raise ValueError(f"`{name}` must be non-negative, got minimum {arr.min():g}.")
    total = arr.sum()
    if not total > 0:
        raise ValueError(f"`{name}` must have a positive sum.")
    return arr / total


def subsample(
    x: np.ndarray, w: np.ndarray, max_cells: int | None, rng: np.random.Generator, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_cells`` points, uniformly without replacement; their weights are renormalised."""
    if max_cells is None or x.shape[0] <= max_cells:
        return x, w
    idx = np.sort(rng.choice(x.shape[0], size=max_cells, replace=False))
    ws = w[idx]
    total = ws.sum()
    if not total > 0:
        raise ValueError(
            f"All {max_cells} cells subsampled from `{name}` have zero weight; increase `max_cells` "
            "or drop zero-weight cells."
        )
    return x[idx], ws / total


def check_max_cells(max_cells) -> int | None:
    """``None`` or a positive int."""
    if max_cells is None:
        return None
    if isinstance(max_cells, bool) or not isinstance(max_cells, (int, np.integer)) or max_cells < 1:
        raise ValueError(f"`max_cells` must be a positive integer or None, got {max_cells!r}.")
    return int(max_cells)


def prepare(x, y, a, b, max_cells, rng):
    """Validate points and weights, then subsample each side; returns ``x, y, a, b``."""
    xa, ya = check_pair(x, y)
    wa = as_weights(a, xa.shape[0], "a")
    wb = as_weights(b, ya.shape[0], "b")
    max_cells = check_max_cells(max_cells)
    gen = make_rng(rng)
    xa, wa = subsample(xa, wa, max_cells, gen, "x")
    ya, wb = subsample(ya, wb, max_cells, gen, "y")
    return xa, ya, wa, wb
