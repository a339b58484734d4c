"""Fitted dynamics against known ones: velocity error and growth rates per group of cells."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .._utils import make_rng


def velocity_error(field: Callable, truth, times: Sequence[float], *, n_cells: int = 2000, rng=0) -> float:
    """Pooled relative L2 error ``||v_hat - v|| / ||v||`` of a velocity field against the truth.

    Parameters
    ----------
    field
        ``field(x, t) -> (n, d)``, e.g. ``model.velocity`` of :func:`scam.tl.get_model`.
    truth
        A :class:`~scam.datasets.SyntheticTimeCourse` with closed-form marginals; its ``flow`` (the
        noise-free velocity with the same marginals) is the reference.
    times
        Times at which fresh cells are drawn from the true marginal.
    n_cells
        Cells per time.
    rng
        Seed or Generator.

    Returns
    -------
    float
        0 is exact; 1 is the error of the zero field.
    """
    gen = make_rng(rng)
    est, ref = [], []
    for t in times:
        x = truth.sample_marginal(t, n_cells, gen)
        est.append(np.asarray(field(x, t), float))
        ref.append(np.asarray(truth.flow(x, t), float))
    est, ref = np.concatenate(est), np.concatenate(ref)
    return float(np.linalg.norm(est - ref) / np.linalg.norm(ref))


def growth_by_group(rates, groups, times) -> pd.DataFrame:
    """Mean growth rate of each group of cells (branch, cell type) at each time point.

    Cells sample the (weighted) population, so the mean over a group's cells is the group's
    mass-weighted mean rate.

    Parameters
    ----------
    rates
        Growth rate of every cell, e.g. ``adata.obs['action_matching_growth']``.
    groups
        Group label of every cell.
    times
        Time of every cell.

    Returns
    -------
    pandas.DataFrame
        Times as rows, groups as columns (NaN where a group has no cell at a time).
    """
    frame = pd.DataFrame({"rate": np.asarray(rates, float), "group": np.asarray(groups), "time": np.asarray(times)})
    if frame["rate"].isna().all():
        raise ValueError("All growth rates are NaN; pass the rates of a fitted unbalanced model.")
    return frame.pivot_table(index="time", columns="group", values="rate", aggfunc="mean", observed=False)
