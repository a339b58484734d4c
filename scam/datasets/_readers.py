"""Readers: local files of a registry dataset -> AnnData. Nothing here unpickles.

Every reader has the signature ``reader(paths, entry=None) -> AnnData``: ``paths`` are the local files
(in registry order), ``entry`` the registry entry (optional: defaults describe the registered files).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd


def _entry_get(entry: dict | None, key: str, default):
    if entry is None or entry.get(key) is None:
        return default
    return entry[key]


def _npy(path: str | Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def read_cite_pcas(paths: Sequence[str | Path], entry: dict | None = None) -> ad.AnnData:
    """CITE-seq time course, one PCA array (``.npy``, cells x PCs) per day.

    Parameters
    ----------
    paths
        The per-day ``.npy`` files. The day of a file is the ``day`` of its registry file entry, else
        the number after ``day_`` in its name (``full_cite_pcas_50_day_2.npy`` -> 2).
    entry
        Registry entry (``time_key``, default ``"day"``; ``embedding``, default ``"X_pca"``).

    Returns
    -------
    anndata.AnnData
        No ``X``; ``obs[time_key]`` (float day), ``obsm[embedding]`` (the PCs, float32 as stored).
    """
    time_key = _entry_get(entry, "time_key", "day")
    emb = _entry_get(entry, "embedding", "X_pca")
    specs = _entry_get(entry, "files", [{}] * len(paths))
    xs, days, names = [], [], []
    for p, spec in zip(paths, specs):
        p = Path(p)
        day = spec.get("day")
        if day is None:
            match = re.search(r"day_(\d+(?:\.\d+)?)", p.name)
            if match is None:
                raise ValueError(f"Cannot tell the day of {p.name}: no 'day' in its registry entry or name.")
            day = float(match.group(1))
        x = _npy(p)
        if x.ndim != 2:
            raise ValueError(f"{p.name}: expected a 2-D array (cells x PCs), got shape {x.shape}.")
        xs.append(x)
        days.append(np.full(len(x), float(day)))
        names.append([f"day{float(day):g}_{i}" for i in range(len(x))])
    dims = {x.shape[1] for x in xs}
    if len(dims) != 1:
        raise ValueError(f"The day files have different numbers of PCs: {sorted(dims)}.")
    obs = pd.DataFrame({time_key: np.concatenate(days)}, index=np.concatenate(names))
    return ad.AnnData(obs=obs, obsm={emb: np.concatenate(xs)})


def read_larry_csv(paths: Sequence[str | Path], entry: dict | None = None) -> ad.AnnData:
    """LARRY 2-D csv (columns ``samples, x1, x2``; DeepRUOT's ``mouse_hematopoiesis.csv``, or the subset
    shipped with scam, ``larry_2d_demo.csv``, which adds ``source_row``).

    Parameters
    ----------
    paths
        One csv file.
    entry
        Registry entry: ``time_map`` (sample -> day, default ``{0: 2, 1: 4, 2: 6}``), ``time_key``
        (default ``"day"``), ``embedding`` (default ``"X_2d"``).

    Returns
    -------
    anndata.AnnData
        No ``X``; ``obs['sample']`` (int), ``obs[time_key]`` (float day), ``obsm[embedding]`` (n x 2).
        Cells are named ``cell<row>`` by their row in the full csv: with a ``source_row`` column (kept in
        ``obs['source_row']``) a subset's cells keep the names they have in the full data.
    """
    time_key = _entry_get(entry, "time_key", "day")
    emb = _entry_get(entry, "embedding", "X_2d")
    time_map = {int(k): float(v) for k, v in _entry_get(entry, "time_map", {0: 2, 1: 4, 2: 6}).items()}
    (path,) = paths
    df = pd.read_csv(path)
    missing = {"samples", "x1", "x2"} - set(df.columns)
    if missing:
        raise ValueError(f"{Path(path).name}: missing columns {sorted(missing)}.")
    sample = df["samples"].to_numpy().astype(int)
    unknown = set(np.unique(sample)) - set(time_map)
    if unknown:
        raise ValueError(f"{Path(path).name}: samples {sorted(unknown)} have no day in time_map {time_map}.")
    rows = df["source_row"].to_numpy().astype(np.int64) if "source_row" in df else np.arange(len(df))
    obs = pd.DataFrame(
        {"sample": sample, time_key: np.array([time_map[s] for s in sample], dtype=float)},
        index=[f"cell{i}" for i in rows],
    )
    if "source_row" in df:
        obs["source_row"] = rows
    return ad.AnnData(obs=obs, obsm={emb: df[["x1", "x2"]].to_numpy(dtype=float)})


def read_h5ad(paths: Sequence[str | Path], entry: dict | None = None) -> ad.AnnData:
    """An ``.h5ad`` file, as stored; the time column is converted to float.

    Parameters
    ----------
    paths
        One ``.h5ad`` file.
    entry
        Registry entry: ``time_key`` (default ``"day"``); optional ``time_source``, an ``obs`` column
        holding the time as labels (e.g. CoSpar's ``time_info``: ``'2'``, ``'4'``, ``'6'``), kept as
        stored and copied to ``obs[time_key]`` as numbers.

    Returns
    -------
    anndata.AnnData
        The file's AnnData, with ``obs[time_key]`` as float (categorical days become numbers).
    """
    time_key = _entry_get(entry, "time_key", "day")
    source = _entry_get(entry, "time_source", time_key)
    (path,) = paths
    with warnings.catch_warnings():
        # registered files are sha256-verified copies: an old on-disk encoding (e.g. CoSpar's file) is expected
        warnings.filterwarnings("ignore", category=getattr(ad, "OldFormatWarning", UserWarning),
                                message=".*without encoding metadata")
        adata = ad.read_h5ad(path)
    if source in adata.obs:
        labels = adata.obs[source]
        try:
            adata.obs[time_key] = np.asarray(labels, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"{Path(path).name}: `obs[{source!r}]` must hold numeric time labels, got values such as "
                f"{list(pd.unique(np.asarray(labels))[:3])}."
            ) from None
    return adata


def read_eb_npz(paths: Sequence[str | Path], entry: dict | None = None) -> ad.AnnData:
    """Embryoid body time course, TrajectoryNet's ``eb_velocity_v5.npz``, read without unpickling.

    Only the plain arrays ``pcs`` (cells x 100 PCs) and ``sample_labels`` (time point 0..4 of each
    cell) are read; the file's other arrays (PHATE coordinates, velocities) are left alone.

    Parameters
    ----------
    paths
        One ``.npz`` file.
    entry
        Registry entry: ``time_key`` (default ``"time_point"``), ``embedding`` (default ``"X_pca"``),
        ``day_ranges`` (time point -> days of collection, e.g. ``{0: "0-3"}``).

    Returns
    -------
    anndata.AnnData
        No ``X``; ``obs[time_key]`` (float time point), ``obs['day_range']`` when known,
        ``obsm[embedding]`` (the PCs).
    """
    time_key = _entry_get(entry, "time_key", "time_point")
    emb = _entry_get(entry, "embedding", "X_pca")
    day_ranges = {int(k): str(v) for k, v in _entry_get(entry, "day_ranges", {}).items()}
    (path,) = paths
    try:
        with np.load(path, allow_pickle=False) as data:
            pcs = np.asarray(data["pcs"])
            labels = np.asarray(data["sample_labels"])
    except ValueError as exc:
        raise ValueError(
            f"{Path(path).name}: 'pcs' or 'sample_labels' is not a plain numeric array (scam never "
            f"unpickles data files): {exc}"
        ) from exc
    if pcs.ndim != 2 or len(labels) != len(pcs):
        raise ValueError(f"{Path(path).name}: 'pcs' {pcs.shape} and 'sample_labels' {labels.shape} do not match.")
    obs = pd.DataFrame({time_key: labels.astype(float)}, index=[f"cell{i}" for i in range(len(pcs))])
    if day_ranges:
        obs["day_range"] = pd.Categorical([day_ranges.get(int(v), "unknown") for v in labels])
    return ad.AnnData(obs=obs, obsm={emb: pcs})


def read_demo_npz(paths: Sequence[str | Path], entry: dict | None = None) -> ad.AnnData:
    """The bundled Cite demo subset (``_data/cite_demo.npz``: ``X_pca``, ``day``, ``source_row``).

    Parameters
    ----------
    paths
        One ``.npz`` file.
    entry
        Registry entry: ``time_key`` (default ``"day"``), ``embedding`` (default ``"X_pca"``).

    Returns
    -------
    anndata.AnnData
        ``X``: the same 10 PCs (a float32 copy, ``var_names`` ``PC1`` ... ``PC10``; the subset has no
        genes, and ``X`` is there so that tools which read ``adata.X``, e.g. CellRank's estimators,
        accept it); ``obs[time_key]`` (float day), ``obs['source_row']`` (row in the day's source
        file), ``obsm[embedding]`` (10 PCs, float32).
    """
    time_key = _entry_get(entry, "time_key", "day")
    emb = _entry_get(entry, "embedding", "X_pca")
    (path,) = paths
    with np.load(path, allow_pickle=False) as data:
        x, day, row = data["X_pca"], data["day"].astype(float), data["source_row"]
    index = [f"day{d:g}_{r}" for d, r in zip(day, row)]
    obs = pd.DataFrame({time_key: day, "source_row": row.astype(np.int64)}, index=index)
    var = pd.DataFrame(index=[f"PC{i + 1}" for i in range(x.shape[1])])
    return ad.AnnData(X=np.array(x, dtype=np.float32), obs=obs, var=var, obsm={emb: x})
