"""Public entry points of :mod:`scam.datasets`: list, fetch, load, demo, simulate."""

from __future__ import annotations

import importlib
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._utils import logger
from . import _synthetic
from ._fetch import fetch_entry, is_cached
from ._registry import file_name, get_entry, get_registry, validate_entry


def list_datasets(cache_dir: str | Path | None = None) -> pd.DataFrame:
    """The registered datasets, one row each.

    Parameters
    ----------
    cache_dir
        Cache folder used for the ``cached`` column (default: ``$SCAM_DATA_DIR`` or the OS cache).

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``title``, ``organism``, ``n_files``, ``size_bytes`` (total; ``<NA>`` when a
        file's size is unknown), ``time_key``, ``embedding`` (``None`` when the dataset has none),
        ``bundled`` (shipped with scam) and ``cached`` (every file present locally; not hash-checked
        here, :func:`load` checks).
    """
    rows = []
    for entry in get_registry()["datasets"]:
        sizes = [f.get("size") for f in entry["files"]]
        rows.append({
            "name": entry["name"],
            "title": entry["title"],
            "organism": entry["organism"],
            "n_files": len(entry["files"]),
            "size_bytes": None if any(s is None for s in sizes) else int(sum(sizes)),
            "time_key": entry["time_key"],
            "embedding": entry["embedding"],
            "bundled": bool(entry.get("bundled", False)),
            "cached": is_cached(entry, cache_dir),
        })
    df = pd.DataFrame(rows)
    df["size_bytes"] = df["size_bytes"].astype("Int64")
    return df


def fetch(name: str, *, path: str | Path | None = None, cache_dir: str | Path | None = None,
          progress: bool = False) -> list[Path]:
    """Local paths of the files of dataset ``name``, downloading missing ones; every file is sha256-checked.

    Parameters
    ----------
    name
        A dataset of :func:`list_datasets`.
    path
        A folder already holding the files (e.g. copied from another machine); nothing is downloaded.
    cache_dir
        Download cache; default ``$SCAM_DATA_DIR`` when set, else ``pooch.os_cache("scam")``. Files go
        to ``<cache_dir>/<name>/``.
    progress
        Show a download progress bar.

    Returns
    -------
    list of pathlib.Path
        One path per file, in registry order.

    Raises
    ------
    ChecksumError
        A file does not have its registered sha256 (the message names it, with both hashes).
    DownloadError
        A download failed; the message names the file, its URL and the folder to place it in by hand.
    FileNotFoundError
        ``path`` lacks a file.
    """
    return fetch_entry(get_entry(name), path=path, cache_dir=cache_dir, progress=progress)


def _provenance(entry: dict, paths: list[Path]) -> dict:
    """An h5ad-writable provenance record (no ``None`` values)."""
    files = {}
    for spec, p in zip(entry["files"], paths):
        rec = {"sha256": spec["sha256"], "local_path": str(p)}
        if spec.get("url"):
            rec["url"] = spec["url"]
        if spec.get("size") is not None:
            rec["size"] = int(spec["size"])
        files[file_name(spec)] = rec
    out = {k: entry[k] for k in ("name", "title", "citation", "doi", "licence", "organism", "time_key",
                                 "embedding", "notes") if entry.get(k) is not None}
    out["bundled"] = bool(entry.get("bundled", False))
    out["files"] = files
    return out


def _load_entry(entry: dict, *, path: str | Path | None = None, cache_dir: str | Path | None = None,
                progress: bool = False) -> ad.AnnData:
    """:func:`load` for an explicit registry entry (tests inject entries with local URLs here)."""
    validate_entry(entry)
    paths = fetch_entry(entry, path=path, cache_dir=cache_dir, progress=progress)
    reader = getattr(importlib.import_module("scam.datasets"), entry["reader"])
    adata = reader(paths, entry)
    time_key, emb = entry["time_key"], entry["embedding"]
    if time_key not in adata.obs:
        raise ValueError(f"Dataset {entry['name']!r}: reader {entry['reader']} gave no obs[{time_key!r}].")
    if emb is not None and emb not in adata.obsm:
        raise ValueError(f"Dataset {entry['name']!r}: reader {entry['reader']} gave no obsm[{emb!r}].")
    adata.uns["dataset"] = _provenance(entry, paths)
    logger.info("scam: loaded dataset %r: %d cells, time points %s", entry["name"], adata.n_obs,
                sorted(pd.unique(adata.obs[time_key])))
    return adata


def load(name: str, *, path: str | Path | None = None, cache_dir: str | Path | None = None,
         progress: bool = False) -> ad.AnnData:
    """Load a registered dataset as AnnData, downloading (and caching) it on first use.

    Parameters
    ----------
    name
        A dataset of :func:`list_datasets`, e.g. ``"cite"``, ``"larry_2d"``, ``"schiebinger_small"``,
        ``"eb"``, and the three shipped with scam (no download): ``"cite_demo"``, ``"larry_genes"``
        (781 LARRY cells with genes, cell types and clones) and ``"larry_2d_demo"`` (4000 cells of
        ``"larry_2d"``'s 2-D layout).
    path
        A folder already holding the dataset's files (offline use); they are sha256-checked too.
    cache_dir
        Download cache; default ``$SCAM_DATA_DIR`` when set, else ``pooch.os_cache("scam")``.
    progress
        Show a download progress bar.

    Returns
    -------
    anndata.AnnData
        ``obs[time_key]`` holds the (float) time of each cell and ``obsm[embedding]`` the coordinates
        (keys in :func:`list_datasets`; ``schiebinger_small`` has genes and no embedding).
        ``uns['dataset']`` records the source, citation, licence and sha256 of every file.

    Raises
    ------
    ChecksumError, DownloadError, FileNotFoundError
        See :func:`fetch`.

    Examples
    --------
    >>> import scam
    >>> adata = scam.datasets.load("cite")  # doctest: +SKIP
    >>> adata = scam.datasets.load("cite", path="../shared/data/cite_lightsb")  # doctest: +SKIP
    """
    return _load_entry(get_entry(name), path=path, cache_dir=cache_dir, progress=progress)


def demo() -> ad.AnnData:
    """The Cite demo subset shipped with scam: no download, works offline.

    4 days (2, 3, 4, 7) x 1000 cells, the first 10 of the 50 PCs of :func:`load` ``("cite")``,
    drawn with seed 0 (see ``scam/datasets/_data/README.md``).

    Returns
    -------
    anndata.AnnData
        ``obs['day']`` (float), ``obs['source_row']``, ``obsm['X_pca']`` (4000 x 10, float32),
        ``X`` (the same 10 PCs as a float32 array, ``var_names`` ``PC1`` ... ``PC10``: the subset has
        no genes; ``X`` is filled so that scverse tools that read ``adata.X``, such as CellRank's
        estimators, accept it) and ``uns['dataset']`` (provenance).
    """
    return load("cite_demo")


_SIMULATIONS = {
    "branching": _synthetic.branching_growth,
    "growth": _synthetic.gaussian_growth,
    "gaussian": _synthetic.gaussian_geodesic,
    "ou": _synthetic.ornstein_uhlenbeck,
    "mixture_growth": _synthetic.mixture_growth,
    "double_well": _synthetic.double_well,
    "asynchronous": _synthetic.asynchronous_transition,
    "arc": _synthetic.arc_transport,
    "rotation": _synthetic.rotating_blob,
    "ring": _synthetic.cycling_ring,
}


def _h5ad_safe(value):
    if isinstance(value, dict):
        return {str(k): _h5ad_safe(v) for k, v in value.items() if v is not None and not callable(v)}
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return np.asarray(value, dtype=object).astype(str)
        return np.asarray(value)
    return value


def simulate(kind: str = "branching", n_cells: int = 1000, *, rng=0, return_truth: bool = False, **kwargs):
    """A synthetic time course with known dynamics, as AnnData.

    Parameters
    ----------
    kind
        ``"branching"``: two branches from a common start, one proliferating, one dying
        (:func:`~scam.datasets.branching_growth`); ``"growth"``: constant drift with a linear growth
        rate, Gaussian marginals (:func:`~scam.datasets.gaussian_growth`); ``"gaussian"``: the W2
        geodesic between two Gaussians (:func:`~scam.datasets.gaussian_geodesic`); ``"ou"``: an
        Ornstein-Uhlenbeck process (:func:`~scam.datasets.ornstein_uhlenbeck`); ``"mixture_growth"``:
        a linear growth rate on a population of several states (:func:`~scam.datasets.mixture_growth`);
        ``"double_well"``: cells leaving a saddle into two wells with noise, the fate of every first-snapshot
        cell known (:func:`~scam.datasets.double_well`); ``"asynchronous"``: one move made by every
        cell at its own pace (:func:`~scam.datasets.asynchronous_transition`); ``"arc"``: cells
        travelling half way round a ring (:func:`~scam.datasets.arc_transport`); ``"rotation"``: a blob
        whose centre travels round a circle over several snapshots (:func:`~scam.datasets.rotating_blob`);
        ``"ring"``: cycling cells spread round a ring, every cell turning (:func:`~scam.datasets.cycling_ring`).
    n_cells
        Cells per snapshot.
    rng
        Seed or Generator.
    return_truth
        Also return the :class:`~scam.datasets.SyntheticTimeCourse` (true velocity, growth rate, marginals).
    **kwargs
        Passed to the generator (e.g. ``times``, ``rates``, ``dim``).

    Returns
    -------
    anndata.AnnData
        ``obs['time']`` (float), ``obsm['X_pca']`` (the coordinates), for ``"branching"`` and ``"double_well"`` also
        ``obs['branch']`` (the double well's ``uns['simulation']['truth']['fate']``: the probability that each
        first-snapshot cell ends on the right); ``uns['simulation']`` holds ``kind``, ``times``, ``masses``
        (true relative population sizes), ``sigma`` and the generator's parameters and ground truth.
    SyntheticTimeCourse
        Only with ``return_truth=True``.
    """
    if kind not in _SIMULATIONS:
        raise ValueError(f"Unknown simulation kind {kind!r}; choose one of {sorted(_SIMULATIONS)}.")
    tc = _SIMULATIONS[kind](n_cells, rng=rng, **kwargs)
    times = np.concatenate([np.full(len(x), t) for x, t in zip(tc.xs, tc.times)])
    obs = pd.DataFrame({"time": times}, index=[f"cell{i}" for i in range(len(times))])
    info = dict(tc.info)
    if "branch" in info:
        names = np.asarray(info.get("branch_names", ("0", "1")))
        obs["branch"] = pd.Categorical(names[np.concatenate(info.pop("branch"))], categories=list(names))
    sim = {"kind": kind, "times": np.asarray(tc.times), "masses": np.asarray(tc.masses), "sigma": float(tc.sigma),
           "n_cells": int(n_cells), "params": _h5ad_safe({k: v for k, v in kwargs.items()}),
           "truth": _h5ad_safe(info)}
    if isinstance(rng, (int, np.integer)):
        sim["seed"] = int(rng)
    adata = ad.AnnData(obs=obs, obsm={"X_pca": np.concatenate(tc.xs)})
    adata.uns["simulation"] = sim
    return (adata, tc) if return_truth else adata
