"""Tools that use a fitted model: simulate trajectories, fate probabilities, ancestors, couplings."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._utils import logger, make_rng
from ..core.fate_estimators import FATE_ESTIMATORS
from ._utils import (
    DEFAULT_KEY,
    check_key,
    fit_embedding,
    get_fit,
    get_model,
    plain,
    select_cells,
)


def _time_index(t_all: np.ndarray, value: float, name: str) -> np.ndarray:
    mask = np.isclose(t_all, float(value))
    if not mask.any():
        raise ValueError(f"`{name}={value}` matches no cells; observed times are {np.unique(t_all).tolist()}.")
    return mask


def _check_range(params_times, value, name):
    lo, hi = float(np.min(params_times)), float(np.max(params_times))
    if not lo - 1e-9 <= float(value) <= hi + 1e-9:
        raise ValueError(f"`{name}={value}` is outside the fitted time range [{lo:g}, {hi:g}].")


def simulate(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    source_time: float | None = None,
    target_times=None,
    cells=None,
    n_steps: int = 100,
    stochastic: bool | None = None,
    rng: int | np.random.Generator | None = 0,
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Simulate trajectories of cells with a fitted model, forward or backward in time.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit (:func:`scam.tl.action_matching`).
    key
        ``key_added`` of the fit.
    source_time
        Time at which the paths start (default: the first fitted time).
    target_times
        Times at which positions are recorded, all after or all before ``source_time``
        (default: the fitted time points on the far side of ``source_time``, in order, plus a fine
        grid in between for smooth paths).
    cells
        Starting cells (boolean mask, obs names or positions); default: every cell at ``source_time``.
    n_steps
        Euler-Maruyama steps for stochastic models.
    stochastic
        Simulate noise (default: for entropic models going forward).
    rng
        Seed or Generator for noise.
    key_added
        Default ``f'{key}_simulation'``.
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` (or a copy); writes ``adata.uns[key_added]`` with ``'times'`` ``(T,)`` (the source time
    first), ``'positions'`` ``(T, n_cells, n_dims)`` in ``use_rep`` units, ``'log_weights'``
    ``(T, n_cells)`` (``int g dt``; zeros for balanced models), ``'cells'`` (obs positions of the
    starting cells), ``'source_time'`` and ``'params'``.
    """
    key_added = check_key(key_added or f"{key}_simulation")
    x_all, t_all, params = fit_embedding(adata, key)
    model = get_model(adata, key=key)
    fitted = np.asarray(adata.uns[key]["times"], dtype=float)
    source_time = float(fitted[0] if source_time is None else source_time)
    _check_range(fitted, source_time, "source_time")
    if target_times is None:
        later = fitted[fitted > source_time]
        target_times = later if len(later) else fitted[fitted < source_time][::-1]
        end = target_times[-1]
        target_times = np.union1d(np.linspace(source_time, end, 41)[1:], target_times)
        if end < source_time:
            target_times = target_times[::-1]
    target_times = np.atleast_1d(np.asarray(target_times, dtype=float))
    for t in target_times:
        _check_range(fitted, t, "target_times")
    times = np.concatenate([[source_time], target_times])
    d = np.diff(times)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise ValueError("`target_times` must all lie on one side of `source_time`, in order.")
    default = np.isclose(t_all, source_time)
    idx = select_cells(adata, cells, default)
    if len(idx) == 0:
        raise ValueError(f"No cells to simulate at source_time={source_time:g}.")
    pos, logw = model.trajectory(x_all[idx], times, stochastic=stochastic, n_steps=n_steps, rng=rng)
    entry = {
        "times": times,
        "positions": pos.astype(np.float32),
        "log_weights": logw,
        "cells": idx,
        "source_time": source_time,
        "params": plain({"key": key, "n_steps": n_steps, "stochastic": stochastic,
                         "use_rep": params["use_rep"], "n_dims": params["n_dims"]}),
    }
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = entry
    return adata if copy else None


def _source_target(adata, key, groupby, source_time, target_time):
    """Validated embedding, times, fit params and the cell indices at ``source_time``/``target_time``."""
    x_all, t_all, params = fit_embedding(adata, key)
    if groupby not in adata.obs:
        raise KeyError(f"`groupby={groupby!r}` is not a column of `adata.obs`.")
    fitted = np.asarray(adata.uns[key]["times"], dtype=float)
    for name, v in (("source_time", source_time), ("target_time", target_time)):
        _check_range(fitted, v, name)
    src = _time_index(t_all, source_time, "source_time")
    tgt = _time_index(t_all, target_time, "target_time")
    return x_all, t_all, params, src, tgt


def _fit_keys(adata, key) -> list[str]:
    """``key`` as a list of distinct fits of one embedding and time key (validated before any work)."""
    keys = [key] if isinstance(key, str) else list(key) if isinstance(key, (list, tuple)) else None
    if not keys or not all(isinstance(k, str) for k in keys) or len(set(keys)) < len(keys):
        raise ValueError(f"`key` must be the key of a fit or a list of distinct keys of fits, got {key!r}.")
    first = get_fit(adata, keys[0])["params"]
    for k in keys[1:]:
        params = get_fit(adata, k)["params"]
        for name in ("use_rep", "n_dims", "time_key"):
            if str(params[name]) != str(first[name]):
                raise ValueError(
                    f"The fits {keys[0]!r} and {k!r} differ in {name} ({first[name]!r} vs {params[name]!r}): fates "
                    "are averaged over fits of the same embedding and time key; fit them alike with other `rng`s.")
    return keys


FATE_METHODS = ("auto", "descendants", "push")


def _observed_times(adata, key, t_all):
    """The observed times within the fitted range, increasing."""
    fitted = np.asarray(adata.uns[key]["times"], dtype=float)
    return np.array([t for t in np.unique(t_all) if fitted[0] <= t <= fitted[-1]])


def _snapshots(x_all, t_all, times):
    """The cells observed at each of ``times``."""
    return [x_all[np.isclose(t_all, t)] for t in times]


def _estimator(method, model, x_all, t_all, times, *, sigma=None, n_neighbors=15, n_samples=10, rng):
    """The fate estimator ``method`` (:data:`scam.core.fate_estimators.FATE_ESTIMATORS`) on the snapshots at
    ``times``; logs when the noise estimate of the descendants is rejected."""
    snapshots = _snapshots(x_all, t_all, times)
    if method == "push":
        return FATE_ESTIMATORS["push"](model, snapshots, times, n_neighbors=n_neighbors, n_samples=n_samples)
    estimator = FATE_ESTIMATORS[method](model, snapshots, times, sigma=sigma, rng=rng)
    _descendant_noise(estimator.record)
    return estimator


def _descendant_noise(record):
    """Log when the noise estimate of the descendants was rejected: an expected outcome of the check that
    exists for it (differentiating cells change their drift with time), recorded in ``params``."""
    if record["sigma_source"] == "rejected":
        logger.info(
            "scam: the noise the fitted potential implies (sigma = %.3g) is not used: %s. Descendants follow "
            "the flow and land on the observed cells within the model's own error; pass `sigma=` to set the "
            "noise yourself.", record["sigma_estimate"], record.get("sigma_check", ""))


def fate_probabilities(
    adata: AnnData,
    *,
    key: str | Sequence[str] = DEFAULT_KEY,
    source_time: float,
    target_time: float,
    groupby: str,
    method: str = "auto",
    sigma: float | None = None,
    n_neighbors: int = 15,
    n_samples: int = 10,
    rng: int | np.random.Generator | None = 0,
    key_added: str | None = None,
    copy: bool = False,
) -> pd.DataFrame | AnnData:
    """Probability that each cell at ``source_time`` ends in each group observed at ``target_time``.

    A cell's fate is where its *descendants* go, and they spread. With ``method="descendants"`` (the default
    going forward) the descendants of each cell are carried from ``source_time`` to ``target_time`` through the
    cells observed at every time in between (see :mod:`scam.core.fates`). Without a noise (the usual case:
    see ``sigma``) each cell follows the model's flow to the next observed time and its descendants are the
    cells observed there, weighted by a Gaussian kernel centred on its pushed position whose covariance is the
    residual between the model's pushed cells and their exact-OT partners (the model's own error and the
    resolution of the data): ``params["chain"] == "flow"``, one step per gap, computed in log space so every
    cell gets a fate. With a noise, each gap is cut into ``N_STEPS`` steps whose populations are the model's
    push of the gap's first cells, joined by short entropic couplings of covariance ``sigma^2 h`` plus that
    residual (``"bridge"``: near a saddle the drift stretches the noise, which short steps follow).
    Row masses are the model's descendant masses (growth). The fate is the absorption probability into the
    groups at ``target_time``: graded wherever descendants can go several ways, certain only where the data
    say so.

    ``method="push"`` is the former estimator: each cell is pushed once by the model and assigned to
    the groups of its ``n_neighbors`` nearest observed cells (stochastic models: ``n_samples``
    simulations); ``"auto"`` is ``"descendants"`` forward and ``"push"`` backward
    (``target_time < source_time``: each late cell's probability of coming from each early group).

    Several fits (``key`` a list: the same data, each fitted with its own ``rng`` under its own ``key_added``)
    give the fates averaged over the fits, each fit's own descendants weighted equally: fits of the same data
    differ (a network's initialisation, its training batches), most where the data decide least, and the
    average is graded there instead of following one fit's boundary (a deep ensemble; ``docs/fates.md``
    measures the gain on lineage tracing). Each fit costs its training time and its fates' time.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit.
    key
        ``key_added`` of the fit, or a list of them (fits of the same embedding and time key).
    source_time, target_time
        Observed time points (within the fitted range).
    groupby
        Categorical ``obs`` column labelling cells at ``target_time``.
    method
        ``"auto"``, ``"descendants"`` (forward only) or ``"push"``.
    sigma
        Noise of the descendants (``dx = v dt + sigma dW``, data units); default: estimated from the fit
        over all its observed times, if the drift does not change with time, and used only where the data
        check that assumption (two or more pairs of consecutive gaps, i.e. four or more observed times, that
        agree) and allow the noise (:func:`scam.core.fates.descendant_noise`); otherwise 0, logged, and the
        descendants follow the flow (``"descendants"`` only).
    n_neighbors
        ``"push"``: neighbours among ``target_time`` cells used to assign a pushed cell.
    n_samples
        ``"push"``: simulations per cell for stochastic models.
    rng
        Seed or Generator (subsamples of the estimates; noise of stochastic pushes).
    key_added
        Where to write; default ``f'{key}_fates'`` (so fits under different keys keep their own fates; the
        first key of a list).
    copy
        Write into a copy of ``adata`` and return that copy (the table is its ``obsm[key_added]``), as scanpy's
        tools do, instead of writing to ``adata`` and returning the table.

    Returns
    -------
    A DataFrame (source cells x groups, rows sum to 1), or with ``copy=True`` the modified copy; writes
    ``adata.obsm[key_added]`` (the same table for all cells, NaN for cells not at ``source_time``) and
    ``adata.uns[key_added]`` with ``'params'`` (``method`` as resolved; for ``"descendants"`` also
    ``chain`` (``"flow"`` or ``"bridge"``), ``sigma`` and ``sigma_source`` (``"estimated"``,
    ``"rejected"`` or ``"given"``), ``sigma_check`` (why; estimated noise only), the estimate before
    the check (``sigma_estimate``), the largest noise the snapshots allow (``sigma_bound``), the
    estimate's ``slope``, ``r``, ``n_pairs`` and ``pair_slopes``, ``noise_times`` (where the potential was
    compared: ``"gap midpoints"`` with three or more observed times, else ``"snapshot times"``),
    ``residual_variance`` per gap (its trace), ``n_steps`` per gap, and ``times``, the observed times the chain
    passes through, ``residual_dof`` per gap (the kernel's degrees of freedom, ``inf``: Gaussian; ``"flow"``)),
    with several fits ``keys`` and each fit's own record under ``members[key]``,
    ``'groups'``, ``'weights'`` (each source cell's normalised descendant mass, averaged over the fits; uniform
    for balanced models), with several fits ``'spread'`` (each source cell's standard deviation of the fits'
    probabilities, source cells x groups in the table's order: where the fits disagree), and, when
    ``groupby`` is also defined at ``source_time``, ``'source_groups'`` and
    ``'transition'``: the weighted group-to-group transition matrix (rows: source groups, columns:
    target groups).
    """
    if method not in FATE_METHODS:
        raise ValueError(f"`method={method!r}` is not one of {FATE_METHODS}.")
    forward = float(target_time) > float(source_time)
    if method == "descendants" and not forward:
        raise ValueError("`method='descendants'` needs `target_time > source_time`; use method='push' backward.")
    if sigma is not None and (isinstance(sigma, bool) or not np.isfinite(sigma) or sigma < 0):
        raise ValueError(f"`sigma` must be a finite number >= 0 or None (estimated), got {sigma!r}.")
    method = ("descendants" if forward else "push") if method == "auto" else method
    keys = _fit_keys(adata, key)
    key_added = check_key(key_added or f"{keys[0]}_fates")
    x_all, t_all, _, src, tgt = _source_target(adata, keys[0], groupby, source_time, target_time)
    for other in keys[1:]:  # the same cells and times (checked above); each fit's own time range
        for name, v in (("source_time", source_time), ("target_time", target_time)):
            _check_range(np.asarray(adata.uns[other]["times"], dtype=float), v, name)
    labels = adata.obs[groupby].astype("category")
    tgt_labels = labels[tgt]
    if tgt_labels.isna().any():
        raise ValueError(f"`adata.obs[{groupby!r}]` has missing labels at target_time={target_time:g}.")
    groups = [g for g in labels.cat.categories if (tgt_labels == g).any()]
    models = [get_model(adata, key=k) for k in keys]
    rng = make_rng(rng)
    codes = pd.Categorical(tgt_labels, categories=groups).codes
    record = {"key": keys[0], "source_time": float(source_time), "target_time": float(target_time),
              "groupby": groupby, "method": method}
    onehot = np.zeros((int(tgt.sum()), len(groups)))
    onehot[np.arange(len(codes)), codes] = 1.0
    runs = []
    for k, model in zip(keys, models):
        estimator = _estimator(method, model, x_all, t_all, _observed_times(adata, k, t_all), sigma=sigma,
                               n_neighbors=n_neighbors, n_samples=n_samples, rng=rng)
        runs.append(estimator.fates(float(source_time), float(target_time), onehot, rng=rng))
    probs = np.mean([r[0] for r in runs], axis=0)
    weights = np.mean([r[1] for r in runs], axis=0)
    if len(keys) == 1:
        record.update(runs[0][2])
    else:
        record.update(keys=list(keys), members={k: plain(r[2]) for k, r in zip(keys, runs)})
    names = adata.obs_names[src]
    table = pd.DataFrame(probs, index=names, columns=[str(g) for g in groups])
    full = pd.DataFrame(np.nan, index=adata.obs_names, columns=table.columns)
    full.loc[names] = table.to_numpy()
    entry = {
        "params": plain(record),
        "groups": np.asarray(table.columns, dtype=str),
        "weights": weights,
    }
    if len(keys) > 1:  # where the fits disagree: each source cell's spread of their probabilities
        entry["spread"] = np.std([r[0] for r in runs], axis=0)
    src_labels = labels[src]
    if not src_labels.isna().any():
        sgroups = [g for g in labels.cat.categories if (src_labels == g).any()]
        trans = np.zeros((len(sgroups), len(groups)))
        for a, g in enumerate(sgroups):
            sel = np.asarray(src_labels == g)
            trans[a] = weights[sel] @ probs[sel] / weights[sel].sum()
        entry["source_groups"] = np.asarray(sgroups, dtype=str)
        entry["transition"] = trans
    if copy:
        adata = adata.copy()
    adata.obsm[key_added] = full
    adata.uns[key_added] = entry
    return adata if copy else table


def ancestors(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    target_time: float,
    source_time: float,
    groupby: str,
    groups=None,
    n_neighbors: int = 15,
    key_added: str | None = None,
    copy: bool = False,
) -> pd.DataFrame | AnnData:
    """Ancestors of groups observed at a later time among the cells of an earlier time.

    The cells of each group at ``target_time`` are pulled back with the model to ``source_time``
    (``source_time < target_time``) and spread over their ``n_neighbors`` nearest observed cells there.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit.
    key
        ``key_added`` of the fit.
    target_time
        The later time at which ``groups`` are observed.
    source_time
        The earlier time whose cells are scored.
    groupby
        ``obs`` column with the groups at ``target_time``.
    groups
        Groups to trace (default: all present at ``target_time``).
    n_neighbors
        Neighbours among ``source_time`` cells receiving each pulled-back cell.
    key_added
        Where to write; default ``f'{key}_ancestors'``.
    copy
        Write into a copy of ``adata`` and return that copy (the table is its ``obsm[key_added]``), as scanpy's
        tools do, instead of writing to ``adata`` and returning the table.

    Returns
    -------
    A DataFrame (``source_time`` cells x groups): the share of each group's ancestral mass carried by
    each early cell (columns sum to 1; unbalanced models weight each late cell by ``exp(-int g dt)``).
    With ``copy=True`` the modified copy instead. Writes ``adata.obsm[key_added]`` (NaN off
    ``source_time``) and ``adata.uns[key_added]['params']``.
    """
    if not float(source_time) < float(target_time):
        raise ValueError("`source_time` must be earlier than `target_time` for ancestors.")
    key_added = check_key(key_added or f"{key}_ancestors")
    x_all, _, _, src, tgt = _source_target(adata, key, groupby, source_time, target_time)
    labels = adata.obs[groupby].astype(str).to_numpy()
    present = pd.unique(labels[tgt])
    groups = list(present) if groups is None else [str(g) for g in np.atleast_1d(groups)]
    for g in groups:
        if g not in present:
            raise ValueError(f"Group {g!r} has no cells at target_time={target_time:g}.")
    model = get_model(adata, key=key)
    times = np.array([float(source_time), float(target_time)])
    push = FATE_ESTIMATORS["push"](model, [x_all[src], x_all[tgt]], times, n_neighbors=n_neighbors)
    late = labels[tgt]
    out = push.ancestors(float(target_time), float(source_time), [np.nonzero(late == g)[0] for g in groups])
    k = min(n_neighbors, int(src.sum()))
    table = pd.DataFrame(out, index=adata.obs_names[src], columns=groups)
    full = pd.DataFrame(np.nan, index=adata.obs_names, columns=groups)
    full.loc[table.index] = out
    if copy:
        adata = adata.copy()
    adata.obsm[key_added] = full
    adata.uns[key_added] = {"params": plain({"key": key, "source_time": float(source_time),
                                             "target_time": float(target_time), "groupby": groupby,
                                             "groups": groups, "n_neighbors": k})}
    return adata if copy else table


def couplings(
    adata: AnnData,
    *,
    key: str = DEFAULT_KEY,
    method: str = "descendants",
    sigma: float | None = None,
    n_neighbors: int = 30,
    threshold: float = 1e-3,
    rng: int | np.random.Generator | None = 0,
) -> dict[tuple[float, float], AnnData]:
    """Cell-to-cell transition matrices between consecutive time points, for CellRank.

    ``method="descendants"`` (default): the couplings :func:`fate_probabilities` absorbs through (without
    noise, the kernel of the push residual, a Student t fitted to it, centred on each cell's pushed position over
    the next day's cells; with a noise, the entropic couplings of the bridge multiplied within the gap;
    :mod:`scam.core.fates`), so that CellRank's absorption probabilities are graded too.
    ``method="push"``: each cell at ``t1`` is pushed to ``t2`` and linked to its ``n_neighbors`` nearest
    observed cells there with Gaussian kernel weights (bandwidth: the distance to the nearest neighbour's
    median). Rows are scaled by the cell's relative descendant mass (unbalanced models); entries below
    ``threshold`` times the row maximum are dropped and each row rescaled to keep its mass (the sparsification
    says less precisely where a cell's descendants go, not that it has fewer).

    The result is what ``cellrank.kernels.RealTimeKernel(adata, time_key=..., couplings=...)``
    accepts: a dict keyed by ``(t1, t2)`` of AnnData with ``obs_names`` = cells at ``t1``,
    ``var_names`` = cells at ``t2`` and a sparse CSR ``X``.

    Parameters
    ----------
    adata
        Annotated data matrix with a fit.
    key
        ``key_added`` of the fit.
    method
        ``"descendants"`` or ``"push"``.
    sigma
        ``"descendants"``: noise of the descendants (data units); default estimated from the fit.
    n_neighbors
        ``"push"``: target cells linked to each pushed cell.
    threshold
        Relative sparsification threshold.
    rng
        Seed or Generator (subsamples of the estimates).

    Returns
    -------
    dict mapping ``(t1, t2)`` to AnnData (``n_cells(t1) x n_cells(t2)``).
    """
    if method not in ("descendants", "push"):
        raise ValueError(f"`method={method!r}` is not one of ('descendants', 'push').")
    x_all, t_all, params = fit_embedding(adata, key)
    model = get_model(adata, key=key)
    observed = _observed_times(adata, key, t_all)
    time_values = pd.Series(adata.obs[params["time_key"]].to_numpy(), index=adata.obs_names)
    gen = make_rng(rng)
    estimator = _estimator(method, model, x_all, t_all, observed, sigma=sigma, n_neighbors=n_neighbors, rng=gen)
    out = {}
    for t1, t2 in itertools.pairwise(observed):
        src, tgt = np.isclose(t_all, t1), np.isclose(t_all, t2)
        mat = estimator.coupling(t1, t2, rng=gen).tocsr()
        mass = np.asarray(mat.sum(axis=1)).ravel()
        cut = threshold * mat.max(axis=1).toarray().ravel()
        mat.data[mat.data < np.repeat(cut, np.diff(mat.indptr))] = 0
        mat.eliminate_zeros()
        kept = np.asarray(mat.sum(axis=1)).ravel()
        mat = sp.csr_matrix(sp.diags(mass / np.where(kept > 0, kept, 1.0)) @ mat)  # rows keep their mass
        ends = (time_values[src].iloc[0], time_values[tgt].iloc[0])
        key_t = tuple(v.item() if isinstance(v, np.generic) else v for v in ends)
        out[key_t] = AnnData(
            X=mat,
            obs=pd.DataFrame(index=adata.obs_names[src]),
            var=pd.DataFrame(index=adata.obs_names[tgt]),
        )
    return out
