"""``scam.tl.action_matching``: fit Action Matching on an AnnData time course."""

from __future__ import annotations

import time as _time
from collections.abc import Mapping

import numpy as np
import pandas as pd
from anndata import AnnData

from .._utils import logger, make_rng
from ..core import ActionModel, PotentialConfig, TrainConfig, fit
from ._utils import DEFAULT_KEY, check_key, embedding, numeric_times, options, plain

GROWTH_MODES = ("none", "learn", "counts", "masses", "prior")


def _growth_masses(adata, growth, t_all, fit_mask, fit_times):
    """Resolve ``growth`` to (mode, relative masses per fitted time or None, extra record)."""
    if growth is None:
        return "none", None, {}
    if isinstance(growth, str) and growth == "learn":
        return "learn", np.ones(len(fit_times)), {}
    if isinstance(growth, str) and growth == "counts":
        counts = np.array([np.sum(fit_mask & (t_all == t)) for t in fit_times], dtype=float)
        return "counts", counts / counts[0], {"observed": counts / counts[0]}
    if isinstance(growth, Mapping):
        try:
            given = {float(k): float(v) for k, v in growth.items()}
        except (TypeError, ValueError):
            raise ValueError("`growth` as a dict maps time values to relative masses, e.g. {2: 1.0, 4: 2.6}.") from None
        missing = [t for t in fit_times if t not in given]
        if missing:
            raise ValueError(f"`growth` dict has no mass for time point(s) {missing}; give one per time point.")
        masses = np.array([given[t] for t in fit_times])
        if not np.all(np.isfinite(masses)) or np.any(masses <= 0):
            raise ValueError("Masses in `growth` must be positive and finite.")
        return "masses", masses / masses[0], {"observed": masses / masses[0]}
    if isinstance(growth, str):
        if growth not in adata.obs:
            raise KeyError(
                f"`growth={growth!r}` is neither None, 'learn', 'counts', a dict of masses, nor a column of "
                "`adata.obs`. Run `scam.pp.score_growth` first for a per-cell prior."
            )
        try:
            col = np.asarray(adata.obs[growth], dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"`adata.obs[{growth!r}]` must be numeric: relative masses (constant per time point) or per-cell "
                "log growth rates (e.g. from `scam.pp.score_growth`), got values such as "
                f"{list(pd.unique(np.asarray(adata.obs[growth]))[:3])}."
            ) from None
        if not np.all(np.isfinite(col[fit_mask])):
            raise ValueError(f"`adata.obs[{growth!r}]` has NaN or infinite values.")
        per_time = [col[fit_mask & (t_all == t)] for t in fit_times]
        if all(np.ptp(v) <= 1e-12 * max(1.0, abs(v[0])) for v in per_time):
            masses = np.array([v[0] for v in per_time])
            if np.any(masses <= 0):
                raise ValueError(f"`adata.obs[{growth!r}]` is constant per time point, so it is read as masses; "
                                 "they must be > 0.")
            return "masses", masses / masses[0], {"observed": masses / masses[0]}
        # per-cell log growth rates (e.g. scam.pp.score_growth): integrate the prior between time points
        ratios = [np.mean(np.exp(v * (t1 - t0))) for v, t0, t1 in zip(per_time[:-1], fit_times[:-1], fit_times[1:])]
        masses = np.concatenate([[1.0], np.cumprod(ratios)])
        return "prior", masses, {"prior": masses}
    raise TypeError(f"Unsupported `growth` of type {type(growth).__name__}.")


def _fit_snapshots(adata, time_key, use_rep, n_dims, holdout):
    """Validate the time course (times, embedding, held-out time points) and split it: the time of every
    cell, the embedding, the fitted time points, the held-out ones, which cells are fitted and which lie in
    the fitted time range."""
    t_all = numeric_times(adata, time_key)
    x_all = embedding(adata, use_rep, n_dims)
    times = np.unique(t_all)
    if not adata.obs_names.is_unique:
        raise ValueError(
            "`adata.obs_names` are not unique; cells must be told apart (fates, ancestors, couplings). "
            "Run `adata.obs_names_make_unique()` first."
        )
    try:
        hold = np.atleast_1d(np.asarray([] if holdout is None else holdout, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(
            f"`holdout` must be a time value or a list of them (e.g. 3 or [3, 4]), got {holdout!r}."
        ) from None
    for h in hold:
        if not np.any(np.isclose(times, h)):
            raise ValueError(f"`holdout={h:g}` is not among the time points {times.tolist()}.")
    hold = np.array([times[np.isclose(times, h)][0] for h in hold])
    fit_times = np.array([t for t in times if t not in hold])
    if len(fit_times) < 2:
        need = "three time points when one is held out" if len(hold) else "at least two time points"
        raise ValueError(f"Action Matching needs {need}; `{time_key}` has {times.tolist()}.")
    fit_mask = np.isin(t_all, fit_times)
    for t in fit_times:
        n_t = int(np.sum(t_all == t))
        if n_t < 2:
            raise ValueError(f"Time point {t:g} has {n_t} cell(s); every time point needs at least 2. "
                             "Drop or merge that time point.")
    in_range = (t_all >= fit_times[0]) & (t_all <= fit_times[-1])
    bad = ~np.all(np.isfinite(x_all), axis=1) & (fit_mask | in_range)
    if bad.any():
        where = sorted({float(t) for t in t_all[bad]})
        raise ValueError(
            f"`adata.obsm[{use_rep!r}]` contains NaN or infinite values in {int(bad.sum())} cell(s) at time(s) "
            f"{where}; remove those cells or recompute the embedding."
        )
    return t_all, x_all, fit_times, hold, fit_mask, in_range


def action_matching(
    adata: AnnData,
    time_key: str,
    *,
    use_rep: str = "X_pca",
    n_dims: int | None = None,
    holdout=None,
    growth="learn",
    sigma: float = 0.0,
    growth_weight: float | None = None,
    network: Mapping | None = None,
    config: Mapping | None = None,
    rng: int | np.random.Generator | None = 0,
    device: str = "auto",
    progress: bool = True,
    key_added: str = DEFAULT_KEY,
    copy: bool = False,
) -> AnnData | None:
    """Learn continuous population dynamics from a time course with Action Matching.

    A potential ``phi_t(x)`` is fitted on the embedding so that cells move with velocity
    ``grad phi`` (plus noise ``sigma dW`` for entropic models) and, for unbalanced models, a growth
    rate ``g_t(x)`` (a separate network; or ``g = lambda phi``, the paper's unbalanced AM, with
    ``config={"growth_model": "potential"}``), reproducing the observed snapshots. Training is
    simulation-free.

    Parameters
    ----------
    adata
        Annotated data matrix; one snapshot per value of ``obs[time_key]``.
    time_key
        Column of ``adata.obs`` with the sampling time of each cell: numeric, or categorical/string
        labels with numeric values (``'2'``, ``'4.5'``). Need not start at 0 or be evenly spaced;
        the model uses these values as its time unit.
    use_rep
        Embedding in ``adata.obsm`` to model (default ``'X_pca'``).
    n_dims
        Use only the first ``n_dims`` components of ``use_rep`` (default: all).
    holdout
        Time value(s) removed before anything else is computed (scaling, couplings, masses), for
        held-out evaluation. Recorded in the params.
    growth
        Mass change between time points:

        - ``'learn'`` (default): unbalanced with equal total masses; growth rates are learned
          *relative to the population average* (some cells expand while others shrink), and only
          where the data show growth: each gap is tested against a pure-transport null
          (:mod:`scam.core.growth`; ``uns[key_added]['growth_evidence']``). Without evidence the
          growth rate is exactly 0 and the fit is a balanced one.
        - ``None``: balanced; the population only moves (mass is conserved).
        - ``'counts'``: relative masses = number of cells per time point (valid when the sampled cell
          numbers are proportional to the population size).
        - a dict ``{time: relative mass}``: known population sizes.
        - an ``obs`` key: constant within each time point = relative masses; varying = a per-cell prior
          log growth rate per time unit (e.g. from :func:`scam.pp.score_growth`), integrated over each
          gap to give the relative masses; the couplings also weight each cell by ``exp(g dt)``, so
          proliferating cells get more descendants.
    sigma
        Diffusion coefficient in embedding units per sqrt(time unit); ``> 0`` trains entropic AM.
    growth_weight
        Weight of the growth network's objective (it does not change what the networks converge to);
        with ``config={"growth_model": "potential"}``, ``lambda`` of the paper's unbalanced AM (in
        standardised units; the price of transport relative to growth). Default 1.0 when ``growth`` is
        given; ignored when balanced.
    network
        Architecture options (:class:`~scam.core.PotentialConfig` fields, e.g. ``{"hidden": 128}``).
    config
        Training options (:class:`~scam.core.TrainConfig` fields, e.g. ``{"n_steps": 4000}`` for
        many-dimensional embeddings); ``sigma`` and ``growth_weight`` are passed above, not here.
    rng
        Seed or numpy Generator; the only source of randomness.
    device
        ``'auto'`` (CUDA when available), ``'cpu'`` or ``'cuda'``.
    progress
        Show a progress bar.
    key_added
        Key under which results are written.
    copy
        Return a modified copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` (or a copy with ``copy=True``); writes

    ``adata.uns[key_added]``
        ``'params'`` (all options, including ``holdout``; what the engine decided: ``coupling``, the
        coupling used between time points, ``estimator``, ``path`` (``'straight'``,
        ``'asynchronous'`` or ``'graph'``: ``'graph'`` if any gap follows routes), ``path_gaps`` (the
        path of each gap between fitted time points), ``pace_spread`` and ``path_reason`` (why:
        :mod:`scam.core.path_choice`), and ``growth_fit``: ``'network'``,
        ``'potential'``, ``'none'`` (balanced), ``'none (no evidence)'`` (no gap shows growth beyond pure
        transport: every rate is 0) or ``'none (evidence not placed)'`` (a gap shows growth but every
        cell falls in one compartment, e.g. a time point of a few dozen cells: every rate is 0, with a
        warning), ``lr``, the learning rate used (``config={'lr': None}``, the default, resolved by
        the growth model: :class:`~scam.core.OptimConfig`), and where gaps are corrected for matching
        noise ``mean_directions``, the directions in which the snapshots' means move beyond their
        sampling noise: the corrected gaps move the mean along those only,
        :func:`scam.core.noise.denoised_mean_shifts`), ``'times'`` (fitted time points),
        ``'scaling'`` (``shift``, ``scale``, ``t_min``, ``t_max``), ``'history'`` (``step``, ``loss``,
        ``val_loss``), ``'path_choice'`` (the evidence for the path: ``held_out``, the inner time
        points held out, ``candidates``, the paths compared, ``ratio``, their held-out W1 relative to
        the straight path, one row per held-out draw; empty unless ``config={'path': 'auto'}`` with
        three or more time points; ``off_support``, with the default ``path='support'``, the share of
        each gap's straight interpolation off the snapshots' support: above 0.5 the gap follows graph
        routes), ``'model'`` (config JSON + weight arrays; see :func:`scam.tl.get_model`),
        ``'fit_seconds'``, ``'seconds'`` (per phase: ``plans``, ``training``, ``fields``: the writes to
        ``obs``/``obsm``), and for unbalanced models ``'mass'`` (``times``, ``model``: the model's total
        mass on a time grid relative to the first time point; ``observed_times`` and ``observed`` or
        ``prior`` masses) and, with the default coupling, ``'growth_evidence'`` (per gap: ``destroyed``
        and ``null``, the mass fraction unbalanced OT destroys in the data and in a pure-transport null
        at each threshold of ``grid``; ``excess``; the calibrated ``threshold``, NaN without evidence;
        ``agreement``, where growth was placed, the mean correlation of the growth maps of independent
        clusterings into states, NaN elsewhere: near 1 for separate lineages, low where the map is the
        clustering's (docs page "Growth and death"); ``scale``, the unit of the thresholds: the
        balanced plan's median squared displacement, internal units),
        and with exact couplings ``'matching_noise'`` (per gap: the share of the paired cells' mean
        squared displacement that is matching error of the plan, corrected for in the path: near 0 in
        a few dimensions, near 1 where the plans pair cells almost at random; NaN for gaps whose pairs
        change mass, left uncorrected; :mod:`scam.core.noise`).
    ``adata.obsm[f'{key_added}_velocity']``
        Velocity of each cell at its own time, in ``use_rep`` units per time unit (NaN outside the
        fitted time range).
    ``adata.obs[f'{key_added}_potential']``
        Potential ``phi`` of each cell at its own time.
    ``adata.obs[f'{key_added}_growth']``
        Growth rate per time unit (unbalanced models only).

    Examples
    --------
    >>> import scam
    >>> adata = scam.datasets.demo()
    >>> scam.tl.action_matching(adata, "day", n_dims=5)  # doctest: +SKIP
    >>> model = scam.tl.get_model(adata)  # doctest: +SKIP
    """
    # ---------------------------------------------------------------- validation, before any work
    check_key(key_added)
    t_all, x_all, fit_times, hold, fit_mask, in_range = _fit_snapshots(adata, time_key, use_rep, n_dims, holdout)
    n_dims = x_all.shape[1]
    mode, masses, mass_record = _growth_masses(adata, growth, t_all, fit_mask, fit_times)
    # sigma and growth_weight are validated once, by ObjectiveConfig (with the other settings)
    lam = 0.0 if mode == "none" else (1.0 if growth_weight is None else growth_weight)
    if mode != "none" and lam == 0:
        raise ValueError("`growth` was given but `growth_weight` is 0; a balanced model cannot change mass.")
    config = dict(config or {})
    for name in ("sigma", "growth_weight"):
        if name in config:
            raise ValueError(f"Pass `{name}` as an argument of `action_matching`, not inside `config`.")
    train_cfg = TrainConfig.from_flat("config", sigma=sigma, growth_weight=lam, **config)
    net_cfg = options(PotentialConfig, "network", dim=n_dims, **dict(network or {}))

    # ---------------------------------------------------------------- work (nothing written yet)
    seed, rng = rng, make_rng(rng)
    xs = [x_all[t_all == t] for t in fit_times]
    start = _time.perf_counter()
    prior = np.asarray(adata.obs[growth], dtype=float) if mode == "prior" else None
    model = fit(
        xs, fit_times, masses=masses if mode != "none" else None,
        log_growth=None if prior is None else [prior[t_all == t] for t in fit_times],
        network=net_cfg, config=train_cfg, rng=rng, device=device, progress=progress,
    )
    fit_seconds = _time.perf_counter() - start
    logger.info("scam: fitted %s in %.1f s", model, fit_seconds)

    clock = _time.perf_counter()
    velocity = np.full(x_all.shape, np.nan, dtype=np.float32 if x_all.dtype == np.float32 else np.float64)
    potential, growth_rate = np.full(adata.n_obs, np.nan), np.full(adata.n_obs, np.nan)
    model.fields_chunked(x_all, t_all, rows=np.flatnonzero(in_range), out=(potential, velocity, growth_rate),
                         progress=progress)  # in place, a chunk at a time: no copy of the embedding
    field_seconds = _time.perf_counter() - clock
    logger.info("scam: velocity, potential and growth of %d cells in %.1f s", int(in_range.sum()), field_seconds)

    report = model.report.to_uns()
    entry = {
        **report,
        "params": plain({
            "time_key": time_key, "use_rep": use_rep, "n_dims": n_dims, "holdout": hold.tolist(),
            "growth": mode, "growth_key": growth if isinstance(growth, str) and growth in adata.obs else None,
            "sigma": float(sigma), "growth_weight": float(lam), **report["params"],
            "network": net_cfg.to_dict(), "config": train_cfg.to_dict(), "device": str(model.device),
            "rng": int(seed) if isinstance(seed, (int, np.integer)) else "numpy.random.Generator",
        }),
        "times": fit_times,
        "scaling": model.scaling.to_dict(),
        "history": {k: np.asarray(v) for k, v in model.history.items()},
        "model": model.to(device="cpu").to_dict(),
        "fit_seconds": fit_seconds,
        "seconds": {**report["seconds"], "fields": field_seconds},
    }
    if mode != "none":
        entry["mass"] = plain({**_model_mass(model, xs[0], fit_times, rng), "observed_times": fit_times, **mass_record})

    # ---------------------------------------------------------------- write, all at once
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = entry
    adata.obsm[f"{key_added}_velocity"] = velocity
    adata.obs[f"{key_added}_potential"] = potential
    if mode != "none":
        adata.obs[f"{key_added}_growth"] = growth_rate
    elif f"{key_added}_growth" in adata.obs:
        del adata.obs[f"{key_added}_growth"]  # stale from an earlier unbalanced fit
    return adata if copy else None


def _model_mass(model: ActionModel, x0: np.ndarray, fit_times: np.ndarray, rng, n_grid: int = 41) -> dict:
    """Total mass of the model population on a time grid, relative to the first time point."""
    if len(x0) > 2000:
        x0 = x0[rng.choice(len(x0), 2000, replace=False)]
    grid = np.linspace(fit_times[0], fit_times[-1], n_grid)
    _, logw = model.trajectory(x0, grid, stochastic=False)
    return {"times": grid, "model": np.exp(logw).mean(axis=1)}
