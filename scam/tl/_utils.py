"""AnnData glue shared by the tools: reading times and embeddings, finding fits, writing safely."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..core import ActionModel

DEFAULT_KEY = "action_matching"


def numeric_times(adata: AnnData, time_key: str) -> np.ndarray:
    """``obs[time_key]`` as floats (numeric, or categorical/string labels with numeric values)."""
    if time_key not in adata.obs:
        raise KeyError(
            f"`time_key={time_key!r}` is not a column of `adata.obs` (columns: {list(adata.obs.columns)[:10]})."
        )
    col = adata.obs[time_key]
    if pd.api.types.is_bool_dtype(col.dtype):
        raise ValueError(
            f"`adata.obs[{time_key!r}]` is boolean; times must be numbers (e.g. days 2, 4, 7), not flags."
        )
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(str)
    values = pd.to_numeric(pd.Series(np.asarray(col)), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        examples = pd.unique(np.asarray(adata.obs[time_key])[bad])[:5]
        raise ValueError(
            f"`adata.obs[{time_key!r}]` must hold numeric times (e.g. 2, 4.5 or '7'); "
            f"{int(bad.sum())} cells have non-numeric or missing values such as {list(examples)}. "
            "Map labels like 'day2' to numbers first."
        )
    distinct = np.unique(values)
    if len(distinct) > 1:
        gaps = np.diff(distinct)
        tiny = gaps < 1e-9 * (distinct[-1] - distinct[0])
        if tiny.any():
            k = int(np.argmax(tiny))
            raise ValueError(
                f"`adata.obs[{time_key!r}]` has time points {distinct[k]!r} and {distinct[k + 1]!r} that differ "
                "only by rounding; round the times (e.g. `adata.obs[time_key].round(6)`) so that each sampling "
                "time is one value."
            )
    return values


def options(cls, argument: str, **kwargs):
    """Build a settings dataclass from user options; unknown names raise a ``ValueError`` listing the
    valid ones (``argument``: the parameter of the tool that carries them)."""
    import dataclasses

    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} in `{argument}`; valid: {[v for v in valid if v != 'dim']}."
        )
    return cls(**kwargs)


def check_key(key_added: str) -> str:
    """A ``key_added`` that AnnData can write to and read back from ``.h5ad``/``.zarr``."""
    if not isinstance(key_added, str) or not key_added or "/" in key_added:
        raise ValueError(
            f"`key_added` must be a non-empty string without '/', got {key_added!r}: h5ad files read '/' as a "
            "group separator and the result could not be read back. Use e.g. 'am_v1'."
        )
    return key_added


def embedding(adata: AnnData, use_rep: str, n_dims: int | None = None) -> np.ndarray:
    """``obsm[use_rep][:, :n_dims]`` as a float array (float32 kept: half the memory of an atlas),
    checked for shape and type."""
    if use_rep not in adata.obsm:
        hint = " Run `scanpy.pp.pca` first." if use_rep == "X_pca" else ""
        raise KeyError(
            f"`use_rep={use_rep!r}` is not in `adata.obsm` (keys: {list(adata.obsm.keys())}).{hint}"
        )
    x = adata.obsm[use_rep]
    if hasattr(x, "toarray"):  # a sparse embedding: densified (an embedding has few columns)
        x = x.toarray()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"`adata.obsm[{use_rep!r}]` must be 2-D (cells x dims), got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"`adata.obsm[{use_rep!r}]` must hold real numbers, got dtype {x.dtype}.")
    if n_dims is not None:
        if isinstance(n_dims, bool) or not isinstance(n_dims, (int, np.integer)):
            raise TypeError(f"`n_dims` must be a whole number of components, got {n_dims!r}.")
        if not 1 <= n_dims <= x.shape[1]:
            raise ValueError(f"`n_dims` must be between 1 and {x.shape[1]} for `{use_rep}`, got {n_dims}.")
        x = x[:, :n_dims]
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)  # float32 atlases: no copy


def get_fit(adata: AnnData, key: str = DEFAULT_KEY) -> dict:
    """The ``uns`` entry of a fit, or a clear error."""
    entry = adata.uns.get(key)
    if not isinstance(entry, dict) or "model" not in entry:
        raise KeyError(
            f"No Action Matching fit under `adata.uns[{key!r}]`. Run `scam.tl.action_matching` first."
        )
    return entry


def get_model(adata: AnnData, *, key: str = DEFAULT_KEY, device: str = "cpu") -> ActionModel:
    """The fitted :class:`~scam.core.ActionModel` stored by :func:`scam.tl.action_matching`.

    Works after a ``write_h5ad``/``read_h5ad`` round trip (the model is stored as config + arrays).

    Parameters
    ----------
    adata
        Annotated data matrix with a fit.
    key
        ``key_added`` of the fit.
    device
        Where to put the network.

    Returns
    -------
    ActionModel
    """
    entry = get_fit(adata, key)
    return ActionModel.from_dict(entry["model"], device=device)


def fit_embedding(adata: AnnData, key: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Embedding and times of ``adata`` as the fit ``key`` saw them, and the fit's params."""
    params = get_fit(adata, key)["params"]
    x = embedding(adata, params["use_rep"], int(params["n_dims"]))
    t = numeric_times(adata, params["time_key"])
    return x, t, params


def plain(value: Any) -> Any:
    """Make a value writable by ``write_h5ad``: drop ``None``, lists to arrays, recurse into dicts."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        return arr.astype(str) if arr.dtype == object else arr
    if isinstance(value, np.generic):
        return value.item()
    return value


def select_cells(adata: AnnData, cells, default_mask: np.ndarray) -> np.ndarray:
    """Integer positions of ``cells`` (mask, names or positions); default: ``default_mask``."""
    if cells is None:
        return np.nonzero(default_mask)[0]
    cells = np.asarray(cells)
    if cells.dtype == bool:
        if cells.shape != (adata.n_obs,):
            raise ValueError(f"A boolean `cells` mask must have length n_obs={adata.n_obs}.")
        return np.nonzero(cells)[0]
    if cells.dtype.kind in "iu":
        if cells.size and (cells.min() < 0 or cells.max() >= adata.n_obs):
            raise IndexError("`cells` positions are out of range.")
        return cells.astype(int)
    idx = adata.obs_names.get_indexer(cells.astype(str))
    if (idx < 0).any():
        raise KeyError(f"`cells` names not in obs_names: {list(cells[idx < 0][:5])}.")
    return idx
