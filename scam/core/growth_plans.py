"""The growth-weighted coupling (``"weighted"``, the default of unbalanced fits): growth where the data show it.

Every gap is first tested for growth (:func:`gap_evidence`, :func:`~scam.core.growth.growth_evidence`);
:func:`weighted_plans` then solves each gap's plan with its source cells weighted by the growth placed on
them, or by growth inherited from a neighbouring gap (:func:`cell_rates`), or unweighted (pure transport).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import ot
from tqdm import tqdm

from .._utils import logger
from .couplings import SegmentPlan, build_plan, progress_bar
from .distributed import per_gap
from .growth import GapGrowth, growth_evidence, placed_growth

if TYPE_CHECKING:  # pragma: no cover
    from .paths import PathConfig


_INHERIT_ITERATIONS = 3  # fixed-point iterations when a gap inherits its targets' growth rates
GROWTH_CELLS = 1500  # cells per side on which a gap's growth factors (or inherited weights) are found (the
# size the states and links of growth_factors were calibrated at: with 2,500 the two-state growth
# field of tests/test_ground_truth.py correlates 0.86 with the truth, with 1,500 0.98)


def _subsample(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= GROWTH_CELLS else np.sort(rng.choice(n, GROWTH_CELLS, replace=False))


def _extend(x: np.ndarray, sub: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` of the cells ``x[sub]``, given to every cell of ``x`` by its nearest one in ``sub``
    (growth factors are shared by whole states, so a subsample of a snapshot carries them)."""
    if len(sub) == len(x):
        return values
    from sklearn.neighbors import NearestNeighbors

    _, nb = NearestNeighbors(n_neighbors=1).fit(x[sub]).kneighbors(x)
    return values[nb[:, 0]]


def cell_rates(plan: SegmentPlan, n_cells: int, du: float, side: str) -> np.ndarray:
    """Mass-weighted mean growth rate (per unit of ``u``) of the pairs leaving (``side="source"``) or
    reaching (``"target"``) each cell of a plan with geometric pair masses; 0 for cells in no pair."""
    pi = np.diff(plan.cdf, prepend=0.0)
    rate = (plan.log_rb - plan.log_ra) / du
    if side == "source":
        idx, w = plan.src, pi * np.exp(plan.log_ra)
    else:
        idx, w = plan.tgt, pi * np.exp(plan.log_rb)
    num = np.bincount(idx, weights=w * rate, minlength=n_cells)
    den = np.bincount(idx, weights=w, minlength=n_cells)
    return np.divide(num, den, out=np.zeros(n_cells), where=den > 0)


def gap_evidence(xs: list[np.ndarray], masses: np.ndarray, rng: np.random.Generator,
                 progress: bool = False) -> list[GapGrowth]:
    """Whether each gap shows growth beyond a pure-transport null (:func:`~scam.core.growth.growth_evidence`).

    Parameters
    ----------
    xs
        Snapshots (internal units), sorted by time.
    masses
        Their relative masses.
    rng
        Generator: one stream is spawned per gap.
    progress
        Show a tqdm bar.

    Returns
    -------
    One :class:`~scam.core.growth.GapGrowth` per gap.
    """
    n_gaps = len(xs) - 1
    evidence_rngs = rng.spawn(n_gaps)

    def one(k: int) -> GapGrowth:
        return growth_evidence(xs[k], xs[k + 1], masses[k], masses[k + 1], rng=evidence_rngs[k])

    evidence = per_gap(progress_bar(one, n_gaps, progress, "growth evidence"), n_gaps)
    for k, gap in enumerate(evidence):
        logger.info(
            "scam: gap %d: mass destroyed beyond a pure-transport null: %.3f -> %s", k, gap.excess,
            "growth" if gap.threshold is not None else "transport",
        )
    return evidence


def weighted_plans(xs: list[np.ndarray], times: np.ndarray, masses: np.ndarray, config: PathConfig,
                   evidence: list[GapGrowth], *, graph: list[bool], rng: np.random.Generator,
                   progress: bool = False) -> tuple[list[SegmentPlan], list[GapGrowth]]:
    """Plans of the ``"weighted"`` coupling: growth where the data show it, inherited elsewhere.

    1. Every gap is tested (:func:`~scam.core.growth.growth_evidence`); a gap with evidence gets its
       own growth factors (:func:`~scam.core.growth.growth_factors`, found on at most
       ``GROWTH_CELLS`` cells per side and given to every cell by its nearest subsampled cell; the
       plan is then solved on every cell).
    2. A gap without evidence between equal masses says nothing about growth, but its neighbours may:
       it inherits the growth rates its target cells have in the next gap (a fixed point: source
       cells are weighted by the mean ``exp(r_j du)`` of their targets, the plan re-solved: on at
       most ``GROWTH_CELLS`` cells per side, then once on every cell), or else
       the rates with which its source cells arrived from the previous gap. Growth is a property of
       a lineage: a branch that dies after day 2 was dying just before it too.
    3. A gap with no informative neighbour stays pure transport (with unequal masses every cell grows
       alike, by the change of total mass).

    Parameters
    ----------
    xs, times, masses
        Snapshots (internal units), their times and relative masses.
    config
        The path settings (``max_plan_size``).
    evidence
        :func:`gap_evidence` of the same snapshots.
    graph
        Per gap: whether the plan is solved through the data and keeps routes.
    rng
        Generator (one stream spawned per gap; the plans of gaps without evidence draw from it).
    progress
        Show a tqdm bar.

    Returns
    -------
    The plans, and the evidence with each placed gap's ``agreement``.
    """
    n_gaps = len(xs) - 1
    du = np.diff(times)
    plan_rngs = rng.spawn(n_gaps)
    balanced, weighted = replace(config, coupling="ot"), replace(config, coupling="weighted")

    def plan(k, weights=None, stream=None):
        if weights is not None:
            return build_plan(xs[k], xs[k + 1], masses[k], masses[k + 1], balanced, graph=graph[k],
                              source_weights=weights, rng=stream or rng)
        return build_plan(xs[k], xs[k + 1], masses[k], masses[k + 1], weighted, graph=graph[k],
                          growth=evidence[k], rng=stream or rng)

    def evidence_plan(k):
        g = plan_rngs[k]
        s0, s1 = _subsample(len(xs[k]), g), _subsample(len(xs[k + 1]), g)
        a, b = np.asarray(xs[k][s0], np.float64), np.asarray(xs[k + 1][s1], np.float64)
        factors, agreement = placed_growth(a, b, masses[k], masses[k + 1], ot.dist(a, b), evidence[k].threshold,
                                           rng=g, scale=evidence[k].scale)
        return plan(k, _extend(xs[k], s0, factors), stream=g), agreement

    bar = tqdm(total=n_gaps, disable=not progress, desc="couplings (weighted)", leave=False)
    found = per_gap(lambda k: evidence_plan(k) if evidence[k].threshold is not None else (None, None), n_gaps)
    plans = [p for p, _ in found]
    evidence = [replace(gap, agreement=agreement) for gap, (_, agreement) in zip(evidence, found)]
    bar.update(sum(p is not None for p in plans))

    def informative(rates):
        return np.ptp(rates) > 1e-6

    for k in reversed(range(n_gaps - 1)):  # inherit backwards from the next gap
        if plans[k] is None and plans[k + 1] is not None:
            rates = cell_rates(plans[k + 1], len(xs[k + 1]), du[k + 1], "source")
            if informative(rates):
                g = plan_rngs[k]
                s0, s1 = _subsample(len(xs[k]), g), _subsample(len(xs[k + 1]), g)
                factor = np.exp(rates[s1] * du[k])
                weights = np.ones(len(s0))
                for _ in range(_INHERIT_ITERATIONS):
                    sub = build_plan(xs[k][s0], xs[k + 1][s1], masses[k], masses[k + 1], balanced,
                                     source_weights=weights, rng=g)
                    pi = np.diff(sub.cdf, prepend=0.0)
                    num = np.bincount(sub.src, weights=pi * factor[sub.tgt], minlength=len(s0))
                    den = np.bincount(sub.src, weights=pi, minlength=len(s0))
                    weights = np.maximum(np.divide(num, den, out=np.ones(len(s0)), where=den > 0), 1e-12)
                plans[k] = plan(k, _extend(xs[k], s0, weights), stream=g)
    for k in range(1, n_gaps):  # or forwards from the previous one
        if plans[k] is None and plans[k - 1] is not None:
            rates = cell_rates(plans[k - 1], len(xs[k]), du[k - 1], "target")
            if informative(rates):
                plans[k] = plan(k, np.exp(rates * du[k]))
    plans = [plan(k) if p is None else p for k, p in enumerate(plans)]
    bar.update(n_gaps - bar.n)
    bar.close()
    return plans, evidence


