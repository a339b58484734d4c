"""``scam.tl.evaluate_holdout``: predict time points the model never saw, score against real cells."""

from __future__ import annotations

import time as _time
from collections.abc import Mapping, Sequence

import numpy as np
import ot
import pandas as pd
from anndata import AnnData

from .._utils import logger, make_rng
from ..metrics import mmd, wasserstein
from ._action_matching import action_matching
from ._utils import check_key, embedding, get_model, numeric_times, plain

METRICS = ("w1", "w2", "mmd")
BASELINES = ("previous", "ot_interpolation", "ot_midpoint")
_FIT_OPTIONS = ("growth", "sigma", "growth_weight", "network", "config", "device")


def _score(metric: str, pred: np.ndarray, weights: np.ndarray | None, target: np.ndarray, rng,
           max_cells: int | None = None) -> float:
    if metric == "w1":
        return wasserstein(pred, target, p=1, a=weights, rng=rng, max_cells=max_cells)
    if metric == "w2":
        return wasserstein(pred, target, p=2, a=weights, rng=rng, max_cells=max_cells)
    if max_cells is not None and len(target) > max_cells:
        target = target[rng.choice(len(target), max_cells, replace=False)]
    if weights is not None:  # MMD on a weighted cloud: resample by weight
        idx = rng.choice(len(pred), size=len(target), p=weights / weights.sum())
        pred = pred[idx]
    return mmd(pred, target)


def ot_interpolation(x0: np.ndarray, x1: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Cells of ``x0`` moved a fraction ``tau`` of the way along the exact OT plan to ``x1``.

    Parameters
    ----------
    x0, x1
        Point clouds ``(n, d)`` and ``(m, d)`` (uniform weights).
    tau
        Fraction of the way, in ``[0, 1]``.

    Returns
    -------
    points
        The support of the displacement interpolant (at most ``n + m - 1`` points).
    weights
        Their masses (summing to 1).
    """
    a = np.full(len(x0), 1.0 / len(x0))
    b = np.full(len(x1), 1.0 / len(x1))
    plan = ot.emd(a, b, ot.dist(x0, x1), numItermax=max(100_000, 50 * len(x0) * len(x1)))
    i, j = np.nonzero(plan > 1e-12 / (len(x0) * len(x1)))
    w = plan[i, j]
    return (1 - tau) * x0[i] + tau * x1[j], w / w.sum()


def evaluate_holdout(
    adata: AnnData,
    time_key: str,
    *,
    use_rep: str = "X_pca",
    n_dims: int | None = None,
    holdout=None,
    metrics: Sequence[str] = ("w1", "w2"),
    baselines: Sequence[str] = ("previous", "ot_interpolation"),
    fit_kwargs: Mapping | None = None,
    n_cells: int | None = None,
    eval_cells: int | None = 10_000,
    n_seeds: int = 1,
    rng: int | np.random.Generator | None = 0,
    key_added: str = "holdout_eval",
    copy: bool = False,
) -> pd.DataFrame | AnnData:
    """Leave-one-time-point-out evaluation of :func:`scam.tl.action_matching` against baselines.

    For every held-out time ``h``, a model is trained with ``h`` removed before anything else
    (scaling, couplings, masses); the cells of the previous observed time point are pushed to
    ``h`` (with their weights for unbalanced models) and compared with the real cells at ``h``.

    Parameters
    ----------
    adata
        Annotated data matrix with a time course.
    time_key
        Column of ``adata.obs`` with numeric times (see :func:`scam.tl.action_matching`).
    use_rep, n_dims
        Embedding and number of its leading components; the distances are computed there.
    holdout
        Time value(s) to hold out in turn; default ``None``: every interior time point.
    metrics
        Any of ``'w1'``, ``'w2'`` (exact Wasserstein, :func:`scam.metrics.wasserstein`) and
        ``'mmd'`` (:func:`scam.metrics.mmd`, squared RBF MMD).
    baselines
        Any of ``'previous'`` (the previous time point as it is), ``'ot_interpolation'`` (previous
        cells moved along the exact OT plan to the next observed time point by the fraction of the
        time gap) and ``'ot_midpoint'`` (the same, halfway, whatever the times).
    fit_kwargs
        Options of :func:`scam.tl.action_matching` (``growth``, ``sigma``, ``growth_weight``,
        ``network``, ``config``, ``device``). To compare the paths between snapshots, one call per
        path with its own ``key_added``: ``{"config": {"path": "straight"}}`` or ``"graph"``
        against the default ``"support"`` (docs page "Paths between snapshots"); the ``path``
        column says what each fit chose.
    n_cells
        Subsample each time point to at most this many cells (once, before anything else, the same
        cells for every method); default: all cells.
    eval_cells
        Score on at most this many cells per side (uniform subsamples, weights renormalised, drawn from
        a seed recorded in ``params['eval_seed']``), and build the OT baselines from at most this many
        cells per time point: exact OT costs ``n x m`` memory (40,000 cells a side: 13 GB), so memory
        stays bounded whatever the atlas. ``None``: every cell. Training always sees all cells (or
        ``n_cells``).
    n_seeds
        Number of models trained per held-out time (different seeds; baselines are deterministic
        and scored once).
    rng
        Seed or Generator for subsampling and training.
    key_added
        Results are stored in ``adata.uns[key_added]``.
    copy
        Write the results into a copy of ``adata`` and return that copy (scanpy's convention; the table
        is then ``pd.DataFrame(copy.uns[key_added]['results'])``).

    Returns
    -------
    pandas.DataFrame (or, with ``copy=True``, the modified copy of ``adata``)
        One row per held-out time, method, metric and seed, with columns ``holdout_time``,
        ``method`` (``'scam'`` or a baseline), ``metric``, ``value``, ``n_cells`` (cells scored at
        the held-out time), ``fit_seconds`` (training time; 0 for baselines), ``seed`` and ``path``
        (the path of each gap the fit chose, ``"straight/graph"`` for two gaps: ``params['path_gaps']``
        of :func:`scam.tl.action_matching`; empty for baselines).
        Also writes ``adata.uns[key_added]`` with ``'results'`` (these columns as arrays) and
        ``'params'``; :func:`scam.pl.wasserstein` plots it.

    Examples
    --------
    >>> import scam
    >>> adata = scam.datasets.demo()
    >>> df = scam.tl.evaluate_holdout(adata, "day", n_dims=5)  # doctest: +SKIP
    """
    # ---------------------------------------------------------------- validation, before any work
    check_key(key_added)
    t_all = numeric_times(adata, time_key)
    x_all = embedding(adata, use_rep, n_dims)
    if not np.all(np.isfinite(x_all)):
        raise ValueError(f"`adata.obsm[{use_rep!r}]` contains NaN or infinite values.")
    times = np.unique(t_all)
    if len(times) < 3:
        raise ValueError(f"Held-out evaluation needs at least three time points; `{time_key}` has {times.tolist()}.")
    interior = times[1:-1]
    hold = interior if holdout is None else np.atleast_1d(np.asarray(holdout, dtype=float))
    for h in hold:
        if not np.any(np.isclose(interior, h)):
            raise ValueError(
                f"`holdout={h:g}` must be an interior time point (one of {interior.tolist()}): the model "
                "is scored by pushing the previous time point to it and needs a later one to fit."
            )
    hold = np.array([interior[np.isclose(interior, h)][0] for h in hold])
    metrics = tuple(metrics)
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"Unknown metric {m!r}; choose from {METRICS}.")
    baselines = tuple(baselines)
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"Unknown baseline {b!r}; choose from {BASELINES}.")
    fit_kwargs = dict(fit_kwargs or {})
    for k in fit_kwargs:
        if k not in _FIT_OPTIONS:
            raise ValueError(f"`fit_kwargs` accepts {_FIT_OPTIONS}; got {k!r}.")
    for name, value in (("n_cells", n_cells), ("eval_cells", eval_cells)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2):
            raise ValueError(f"`{name}` must be a whole number >= 2 or None, got {value!r}.")
    if n_seeds < 1:
        raise ValueError("`n_seeds` must be >= 1.")
    growth = fit_kwargs.get("growth")
    if isinstance(growth, str) and growth not in ("learn", "counts") and growth not in adata.obs:
        raise KeyError(f"`fit_kwargs['growth']={growth!r}` is not a column of `adata.obs`.")

    # ---------------------------------------------------------------- subsample once
    rng = make_rng(rng)
    keep = []
    for t in times:
        idx = np.nonzero(t_all == t)[0]
        if n_cells is not None and len(idx) > n_cells:
            idx = np.sort(rng.choice(idx, n_cells, replace=False))
        keep.append(idx)
    keep = np.concatenate(keep)
    work = AnnData(obs=pd.DataFrame({time_key: t_all[keep]}, index=adata.obs_names[keep].astype(str)))
    work.obsm["rep"] = x_all[keep]
    if isinstance(growth, str) and growth in adata.obs:
        work.obs[growth] = np.asarray(adata.obs[growth])[keep]
    t_w, x_w = t_all[keep], x_all[keep]
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=n_seeds)]
    eval_seed = int(rng.integers(0, 2**31 - 1))
    eval_rng = np.random.default_rng(eval_seed)

    def cap(x):  # the cells an OT baseline is built from
        if eval_cells is None or len(x) <= eval_cells:
            return x
        return x[np.sort(eval_rng.choice(len(x), eval_cells, replace=False))]

    rows = []
    for h in hold:
        prev, nxt = times[times < h][-1], times[times > h][0]
        x_prev, x_next, x_h = x_w[t_w == prev], x_w[t_w == nxt], x_w[t_w == h]
        predictions = {}
        if "previous" in baselines:
            predictions["previous"] = [(x_prev, None, 0.0, -1, "")]
        if "ot_interpolation" in baselines:
            p, w = ot_interpolation(cap(x_prev), cap(x_next), (h - prev) / (nxt - prev))
            predictions["ot_interpolation"] = [(p, w, 0.0, -1, "")]
        if "ot_midpoint" in baselines:
            p, w = ot_interpolation(cap(x_prev), cap(x_next), 0.5)
            predictions["ot_midpoint"] = [(p, w, 0.0, -1, "")]
        runs = []
        for seed in seeds:
            fold = work.copy()
            start = _time.perf_counter()
            action_matching(fold, time_key, use_rep="rep", holdout=h, rng=seed, progress=False,
                            key_added="fold", **fit_kwargs)
            seconds = _time.perf_counter() - start
            model = get_model(fold, key="fold")
            pos, weights = model.push(x_prev, prev, h, return_weights=True, rng=seed)
            gaps = fold.uns["fold"]["params"]["path_gaps"]
            runs.append((pos, weights if model.unbalanced else None, seconds, seed, "/".join(map(str, gaps))))
            logger.info("scam: held-out %g, seed %d: fit in %.1f s", h, seed, seconds)
        predictions["scam"] = runs
        for method, preds in predictions.items():
            for pos, weights, seconds, seed, path in preds:
                for m in metrics:
                    value = _score(m, pos, weights, x_h, np.random.default_rng(eval_seed), eval_cells)
                    scored = len(x_h) if eval_cells is None else min(len(x_h), eval_cells)
                    rows.append((float(h), method, m, float(value), scored, float(seconds), seed, path))
    df = pd.DataFrame(rows, columns=["holdout_time", "method", "metric", "value", "n_cells", "fit_seconds", "seed",
                                     "path"])
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "results": {c: df[c].to_numpy() for c in df.columns},
        "params": plain({
            "time_key": time_key, "use_rep": use_rep, "n_dims": int(x_all.shape[1]),
            "holdout": hold.tolist(), "metrics": list(metrics), "baselines": list(baselines),
            "fit_kwargs": {k: (v if not isinstance(v, Mapping) else dict(v)) for k, v in fit_kwargs.items()},
            "n_cells": n_cells, "eval_cells": eval_cells, "eval_seed": eval_seed, "n_seeds": n_seeds, "seeds": seeds,
        }),
    }
    return adata if copy else df
