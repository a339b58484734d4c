"""Growth read off two snapshots: is there any, how much, and which cells carry it.

Snapshots alone cannot tell a cell that moved from one that died while another was born elsewhere.
scam therefore assumes *transport unless the data show otherwise*, and decides per gap between two
consecutive snapshots:

1. **Evidence** (:func:`growth_evidence`). Exact unbalanced OT with a total-variation penalty
   (:func:`tv_unbalanced`) destroys the source mass that would have to move further than a threshold
   (``GRID``, in units of the balanced plan's median squared displacement). Pure transport loses some
   mass that way too: the tail of a spreading or deforming population travels further than the
   median. The same statistic is therefore computed for an *affine null*: half of the source cells
   pushed by the Gaussian OT map between the two snapshots' means and covariances (a pure transport
   with the data's own shape and sampling noise), against the other half. Growth is the destroyed
   mass in excess of the null's; below ``MIN_EXCESS`` the gap is pure transport. Measured (1000
   cells): Gaussian W2 geodesics in 2-5 dimensions and OU gaps destroy up to 18% of their mass, the
   null within 0.017 of it; a branch that dies while another proliferates: an excess of 0.05-0.13.
2. **Where to cut** (``PLATEAU``). The threshold is the lowest one at which the excess reaches 75% of
   its maximum: it cuts the far moves that growth forces on a balanced plan (mass carried across
   from a dying to a proliferating state) without fragmenting the states themselves.
3. **Which cells** (:func:`growth_factors`). In the unbalanced plan at that threshold, source and
   target states (k-means) joined by a substantial transported flux form *compartments* (a branch,
   a lineage); a compartment's growth factor is its target mass over its source mass, shared by all
   its cells. Growth is a property of a lineage: the cells that the plan happens to destroy inside a
   surviving state (its tail) do not die alone.

:class:`~scam.core.paths.SnapshotPath` (coupling ``"weighted"``) then solves a *balanced* exact OT
problem between the source cells weighted by their factors and the target cells: every pair grows at
a constant rate, as a branch with a constant birth or death rate does. A gap without evidence between
equal masses inherits the rates of a neighbouring gap (:func:`~scam.core.growth_plans.cell_rates`); with no
informative neighbour it stays pure transport, and with unequal masses every cell grows alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ot

from .noise import gaussian_map

GRID = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)  # thresholds tried, x the median squared displacement
PLATEAU = 0.75  # the calibrated threshold is the first at which the excess reaches this share of its max
MIN_EXCESS = 0.025  # destroyed-mass excess over the affine null below which a gap is pure transport
EVIDENCE_CELLS = 1000  # cells per side in the evidence test (each half of the source)
CELLS_PER_STATE, MAX_STATES = 50, 40  # k-means states of a snapshot
LINK = 0.1  # a transported flux of this share of the larger state's mass joins two states
MIN_FACTOR = 0.05  # lowest descendant mass per unit of source mass over one gap (log: -3)
AGREEMENT_CLUSTERINGS = 6  # independent clusterings compared by factor_agreement


@dataclass(frozen=True)
class GapGrowth:
    """What the data say about growth between two snapshots.

    Attributes
    ----------
    destroyed
        Fraction of the source mass the unbalanced plan destroys, at each threshold of ``GRID``; NaN
        at the thresholds not computed: the destroyed mass only falls as the threshold rises (and the
        null's is never negative), so once it is below the largest excess found so far no higher
        threshold can exceed it, and those plans are not solved; once it is 0 it is 0 at every higher
        threshold, and of the null's only the highest threshold's (its smallest) can matter.
    null
        The same for the affine (pure-transport) null (NaN where not computed).
    excess
        ``max(destroyed - null)`` over the grid: the mass that transport does not explain (the skipped
        thresholds cannot reach it).
    threshold
        Threshold (``x`` the median squared displacement of the balanced plan) at which the
        unbalanced plan destroys ``excess``; ``None`` when there is no evidence of growth beyond the
        change of total mass (``excess <= MIN_EXCESS``).
    agreement
        Where growth was placed (:func:`growth_factors`): how much the growth factors of independent
        clusterings of the snapshots agree (:func:`factor_agreement`, 1: the same map whatever the
        clustering); ``None`` where no factors were found.
    scale
        The unit of the thresholds: the median squared displacement of the balanced plan between the
        test's source half and target cells (internal units); where growth is placed the unbalanced plan
        is solved at ``threshold * scale`` (``None`` where the test did not run: too few cells, or a
        record written before 2026-12-07).
    """

    destroyed: tuple[float, ...]
    null: tuple[float, ...]
    excess: float
    threshold: float | None
    agreement: float | None = None
    scale: float | None = None

    def to_dict(self) -> dict:
        """Plain dictionary."""
        return {"destroyed": list(self.destroyed), "null": list(self.null), "excess": self.excess,
                "threshold": self.threshold, "agreement": self.agreement, "scale": self.scale}


def tv_unbalanced(a, b, cost, threshold):
    """Exact unbalanced OT with a total-variation marginal penalty, as one linear program.

    Minimises ``<C, P> + threshold / 2 (|a - P 1|_1 + |b - P^T 1|_1)``: moving mass further than
    ``sqrt(threshold)`` costs more than destroying it at the source and creating it at the target.
    Returns the ``(n0 + 1, n1 + 1)`` plan: the last column is the mass destroyed at each source
    cell, the last row the mass created at each target cell.

    Equal total masses: balanced EMD on the truncated cost ``min(C, threshold)``, whose entries above
    the threshold are read as destroyed at ``i`` and created at ``j`` (same optimal value: routing a
    unit through the two dummies costs ``threshold``; about 2.5x faster than the augmented problem
    at 2500 cells). Otherwise EMD with one dummy cell on each side (cost ``threshold / 2`` to every
    real cell).
    """
    n0, n1 = cost.shape
    n_iter = max(1_000_000, 50 * (n0 + 1) * (n1 + 1))
    if np.isclose(a.sum(), b.sum(), rtol=1e-12, atol=0):
        plan = ot.emd(a, b * (a.sum() / b.sum()), np.minimum(cost, threshold), numItermax=n_iter)
        far = cost > threshold
        moved = np.where(far, 0.0, plan)
        gone = np.where(far, plan, 0.0)
        aug = np.zeros((n0 + 1, n1 + 1))
        aug[:n0, :n1] = moved
        aug[:n0, n1] = gone.sum(axis=1)
        aug[n0, :n1] = gone.sum(axis=0)
        aug[n0, n1] = moved.sum()  # dummy to dummy: balances the dummy row and column
        return aug
    aug = np.zeros((n0 + 1, n1 + 1))
    aug[:n0, :n1] = cost
    aug[:n0, n1] = aug[n0, :n1] = threshold / 2
    a_aug = np.append(a, b.sum())
    b_aug = np.append(b, a.sum())
    return ot.emd(a_aug, b_aug, aug, numItermax=n_iter)


def _emd(a, b, cost):
    return ot.emd(a, b, cost, numItermax=max(1_000_000, 50 * cost.size))


def median_sq_displacement(plan: np.ndarray, cost: np.ndarray) -> float:
    """Mass-weighted median of the squared displacements of a (balanced) plan: the scale of the
    unbalanced thresholds (robust to the few far moves that growth forces on a balanced plan)."""
    ii, jj = np.nonzero(plan > 0)
    w, c = plan[ii, jj], cost[ii, jj]
    order = np.argsort(c)
    cw = np.cumsum(w[order])
    med = float(c[order][np.searchsorted(cw, 0.5 * cw[-1])])
    return med if med > 0 else float(np.sum(plan * cost) / plan.sum()) or 1.0


class _Destroyed:
    """Fraction of the source mass destroyed at a threshold (x the median squared displacement),
    computed when asked: one cost matrix and scale, one unbalanced plan a threshold."""

    def __init__(self, x0, x1, mass0, mass1):
        self.a = np.full(len(x0), mass0 / len(x0))
        self.b = np.full(len(x1), mass1 / len(x1))
        self.mass0, self.n0, self.n1 = mass0, len(x0), len(x1)
        self.cost = ot.dist(x0, x1)
        self.scale = median_sq_displacement(_emd(self.a / mass0, self.b / mass1, self.cost), self.cost)

    def __call__(self, threshold: float) -> float:
        plan = tv_unbalanced(self.a, self.b, self.cost, threshold * self.scale)
        return float(plan[: self.n0, self.n1].sum() / self.mass0)


def _affine_push(x0: np.ndarray, x1: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """``cells`` moved by the OT map between Gaussians with the moments of ``x0`` and ``x1``."""
    m0, m1 = x0.mean(axis=0), x1.mean(axis=0)
    a = gaussian_map(np.atleast_2d(np.cov(x0.T)), np.atleast_2d(np.cov(x1.T)))
    return m1 + (cells - m0) @ a.T


def growth_evidence(
    x0: np.ndarray, x1: np.ndarray, mass0: float = 1.0, mass1: float = 1.0, *, rng: np.random.Generator
) -> GapGrowth:
    """Test one gap for growth beyond pure transport, and calibrate the unbalanced threshold.

    The thresholds of ``GRID`` are tried from the lowest up, and the ones that cannot raise the excess
    are skipped (:class:`GapGrowth`): excess, decision and threshold are those of the whole grid.

    Parameters
    ----------
    x0, x1
        Source and target cells (standardised units), ``(n0, d)`` and ``(n1, d)``.
    mass0, mass1
        Total masses of the two snapshots.
    rng
        Random generator (the split of the source and the subsamples).

    Returns
    -------
    GapGrowth
    """
    n = min(EVIDENCE_CELLS, len(x0) // 2, len(x1))
    if n < 10:  # too few cells to tell growth from sampling noise
        zeros = (0.0,) * len(GRID)
        return GapGrowth(zeros, zeros, 0.0, None)
    perm = rng.permutation(len(x0))
    half_a, half_b = x0[perm[:n]], x0[perm[n : 2 * n]]
    target = x1[rng.choice(len(x1), n, replace=False)]
    real_at = _Destroyed(half_a, target, mass0, mass1)
    null_at = _Destroyed(half_a, _affine_push(x0, x1, half_b), mass0, mass1)  # needed from the first threshold on
    real, null = np.full(len(GRID), np.nan), np.full(len(GRID), np.nan)
    best = -np.inf
    for k, c in enumerate(GRID):  # the destroyed mass only falls as the threshold rises (GapGrowth)
        real[k] = real_at(c)
        if real[k] <= best:  # no higher threshold can raise the excess above best: skipped, NaN in the record
            break
        if real[k] == 0:  # nothing destroyed from here on: every later difference is -null, largest where
            real[k:] = 0.0  # the null is smallest, at the highest threshold
            null[-1] = null_at(GRID[-1])
            break
        null[k] = null_at(c)
        best = max(best, real[k] - null[k])
    gap = real - null
    excess = float(np.nanmax(gap))
    threshold = None
    if excess > MIN_EXCESS:
        # the lowest threshold at which the difference from pure transport has (nearly) reached its
        # maximum: low enough to cut the far moves that growth forces on a balanced plan between
        # distant states, high enough not to fragment them (the tail it also destroys does not matter:
        # growth factors are shared by whole compartments, see growth_factors)
        threshold = float(GRID[int(np.argmax(gap >= PLATEAU * excess))])
    return GapGrowth(tuple(real.tolist()), tuple(null.tolist()), excess, threshold, scale=real_at.scale)


def _states(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """K-means states of a snapshot (about ``CELLS_PER_STATE`` cells each, at most ``MAX_STATES``)."""
    from sklearn.cluster import KMeans

    n_states = int(np.clip(len(x) // CELLS_PER_STATE, 1, MAX_STATES))
    if n_states == 1:
        return np.zeros(len(x), dtype=np.int64)
    return KMeans(n_clusters=n_states, n_init=3, random_state=int(rng.integers(2**31))).fit_predict(x)


def growth_factors(
    x0: np.ndarray, x1: np.ndarray, mass0: float, mass1: float, cost: np.ndarray, threshold: float | None,
    *, rng: np.random.Generator,
) -> np.ndarray:
    """Descendant mass per unit of source mass of every source cell over one gap.

    The unbalanced plan at the calibrated threshold says which states exchange mass: source and
    target states (k-means) joined by a transported flux of at least ``LINK`` of the larger one's
    mass form a *compartment* (for instance a branch). A compartment's growth factor is its target
    mass over its source mass, shared by all its source cells: growth is a property of a lineage,
    and cells that the plan happens to destroy inside a surviving state do not die alone. Target
    states that receive no transported mass (created) join the compartment of their cells' nearest
    transported neighbours; weakly linked source states join their nearest linked state.

    (Letting a state that the plan destroys die alone instead, a transient state, was measured and
    dropped: on the branching system the plan destroys the rear states of the dying branch and the rest
    seems not to die (-0.43 instead of -0.6), and on Cite-5 it was no better on held-out days (1.01x
    the OT-interpolation W1, seed spread 0.08, against 0.99x).)

    Parameters
    ----------
    x0, x1
        Source and target cells, ``(n0, d)`` and ``(n1, d)``.
    mass0, mass1
        Total masses of the two snapshots.
    cost
        Squared distances ``(n0, n1)``.
    threshold
        Calibrated threshold (``x`` the median squared displacement) of :func:`growth_evidence`;
        ``None`` (no evidence): every cell's factor is ``mass1 / mass0``.
    rng
        Random generator (k-means).

    Returns
    -------
    ``(n0,)`` array ``f``, ``sum(a * f) = mass1`` up to the lower bound ``MIN_FACTOR``; all ones for
    pure transport between equal masses.
    """
    n0, n1 = cost.shape
    if threshold is None:  # no evidence: every cell grows alike (by the change of total mass)
        return np.full(n0, mass1 / mass0)
    a, b, moved = _transported(cost, mass0, mass1, threshold)
    return _compartment_factors(x0, x1, a, b, moved, rng)


def factor_agreement(
    x0: np.ndarray, x1: np.ndarray, mass0: float, mass1: float, cost: np.ndarray, threshold: float,
    *, rng: np.random.Generator, clusterings: int = AGREEMENT_CLUSTERINGS,
) -> float:
    """How much the growth factors of :func:`growth_factors` depend on the clustering into states.

    The compartments of :func:`growth_factors` join states whose exchanged mass crosses ``LINK``. Where
    cells form separate lineages, every clustering finds the same compartments; along a continuum of
    states, whether a link crosses the line changes with the clustering, and with it the growth map.
    The factors of ``clusterings`` independent k-means clusterings (one unbalanced plan) are compared.

    Parameters
    ----------
    x0, x1, mass0, mass1, cost, threshold
        As :func:`growth_factors` (``threshold`` not ``None``).
    rng
        Random generator (the clusterings).
    clusterings
        Number of independent clusterings.

    Returns
    -------
    float
        Mean Pearson correlation of the log factors over pairs of clusterings (a pair in which both
        give every cell the same factor agrees: 1; one of them alone: 0). About 1 for separate
        lineages, near 0 where the map is the clustering's.
    """
    return _agreement(x0, x1, *_transported(cost, mass0, mass1, threshold), rng, clusterings)


def placed_growth(
    x0: np.ndarray, x1: np.ndarray, mass0: float, mass1: float, cost: np.ndarray, threshold: float,
    *, rng: np.random.Generator, scale: float | None = None,
) -> tuple[np.ndarray, float]:
    """:func:`growth_factors` and :func:`factor_agreement` of one gap from one unbalanced plan.

    The agreement's clusterings draw from streams spawned off ``rng``, which leaves the draws of ``rng``
    itself, and so the factors, as :func:`growth_factors` would give them. ``scale``: the unit of
    ``threshold`` as the evidence test measured it (:attr:`GapGrowth.scale`; the same statistic on other
    cells of the same snapshots), which spares the balanced plan that would measure it again on these
    cells; ``None``: measured here.

    Returns
    -------
    factors, agreement
    """
    a, b, moved = _transported(cost, mass0, mass1, threshold, scale)
    agreement = _agreement(x0, x1, a, b, moved, rng.spawn(1)[0], AGREEMENT_CLUSTERINGS)
    return _compartment_factors(x0, x1, a, b, moved, rng), agreement


def _agreement(x0, x1, a, b, moved, rng: np.random.Generator, clusterings: int) -> float:
    """:func:`factor_agreement` given the transported part ``moved`` of the unbalanced plan."""
    logs = [np.log(_compartment_factors(x0, x1, a, b, moved, stream)) for stream in rng.spawn(clusterings)]
    values = []
    for i in range(len(logs)):
        for j in range(i + 1, len(logs)):
            flat_i, flat_j = np.ptp(logs[i]) < 1e-12, np.ptp(logs[j]) < 1e-12
            if flat_i or flat_j:
                values.append(float(flat_i and flat_j))
            else:
                values.append(float(np.corrcoef(logs[i], logs[j])[0, 1]))
    return float(np.mean(values))


def _transported(cost: np.ndarray, mass0: float, mass1: float, threshold: float, scale: float | None = None):
    """Uniform masses of the two snapshots and the transported part of their unbalanced plan at
    ``threshold`` x ``scale`` (default: the balanced plan's median squared displacement, solved here)."""
    n0, n1 = cost.shape
    a = np.full(n0, mass0 / n0)
    b = np.full(n1, mass1 / n1)
    if scale is None:
        scale = median_sq_displacement(_emd(a / mass0, b / mass1, cost), cost)
    return a, b, tv_unbalanced(a, b, cost, threshold * scale)[:n0, :n1]


def _compartment_factors(x0, x1, a, b, moved, rng: np.random.Generator) -> np.ndarray:
    """Growth factors of the source cells from one clustering of both snapshots into states
    (:func:`growth_factors`); ``moved``: the transported part of the unbalanced plan."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    mass0, mass1 = a.sum(), b.sum()
    s0, s1 = _states(x0, rng), _states(x1, rng)
    k0, k1 = s0.max() + 1, s1.max() + 1
    m0 = np.bincount(s0, weights=a, minlength=k0)
    m1 = np.bincount(s1, weights=b, minlength=k1)
    ii, jj = np.nonzero(moved)
    flux = np.bincount(s0[ii] * k1 + s1[jj], weights=moved[ii, jj], minlength=k0 * k1).reshape(k0, k1)
    link = flux >= LINK * np.maximum(m0[:, None], m1[None, :])
    r, c = np.nonzero(link)
    graph = coo_matrix((np.ones(len(r)), (r, k0 + c)), shape=(k0 + k1, k0 + k1))
    _, comp = connected_components(graph, directed=False)
    comp0, comp1 = comp[:k0], comp[k0:].copy()
    linked0 = link.any(axis=1)
    lost = ~linked0  # weakly linked states join their nearest linked state
    if lost.any() and linked0.any():
        c0 = np.stack([x0[s0 == k].mean(axis=0) for k in range(k0)])
        _, nb = NearestNeighbors(n_neighbors=1).fit(c0[linked0]).kneighbors(c0[lost])
        comp0 = comp0.copy()
        comp0[lost] = comp0[linked0][nb[:, 0]]
    n_comp = comp.max() + 1
    src = np.bincount(comp0, weights=m0, minlength=n_comp)
    tgt_comp = comp1[s1]  # compartment of every target cell
    orphan = src[tgt_comp] == 0  # created states: no source in their compartment
    if orphan.any() and (~orphan).any():
        nn = NearestNeighbors(n_neighbors=1).fit(x1[~orphan])
        _, nb = nn.kneighbors(x1[orphan])
        tgt_comp = tgt_comp.copy()
        tgt_comp[orphan] = tgt_comp[~orphan][nb[:, 0]]
    tgt = np.bincount(tgt_comp, weights=b, minlength=n_comp)
    factor = np.divide(tgt, src, out=np.zeros(n_comp), where=src > 0)
    if not (~orphan).any():  # nothing transported at all: the new mass descends from everyone alike
        factor[:] = mass1 / mass0
    return np.maximum(factor[comp0[s0]], MIN_FACTOR)
