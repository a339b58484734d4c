"""Couplings between consecutive snapshots: which cells go together, and with how much mass.

A coupling is a sparse transport plan between the cells of snapshot ``k`` (source) and ``k + 1`` (target),
a :class:`SegmentPlan`. Unbalanced plans carry mass: with source masses ``a_i`` (snapshot mass ``M_k / n_k``
each), target masses ``b_j`` and plan ``pi``, pair ``(i, j)`` carries

    w_ij(tau) = pi_ij * (a_i / pi_i.)^(1 - tau) * (b_j / pi_.j)^tau,

so that the path reproduces both snapshots (with their masses) exactly at the ends and the mass of every
pair changes exponentially, i.e. with a constant growth rate along the pair. For balanced plans the factors
are one.

The exact unbalanced coupling ``"uot"`` (an OT linear program with a total-variation penalty on the
marginals) splits each snapshot into mass that is transported and mass that is destroyed (source) or
created (target). Transported pairs keep their mass; a destroyed cell stays in place with mass
``a_i (1 - tau)^2`` and a created one appears in place with mass ``b_j tau^2`` (the Fisher-Rao geodesic,
the cheapest way to remove or add mass under the ``lambda/2 s^2`` action).

Plans are computed once per gap. Exact EMD (POT) is used while ``n_k * n_{k+1}`` fits under
``max_plan_size``; beyond that both snapshots are split into random chunks that are solved separately
(minibatch OT), so memory stays linear in the number of cells. Where pairs move along routes through the
data (:class:`~scam.core.interpolants.GraphRoute`) the plan is solved on route costs and keeps each pair's
route. The growth-weighted coupling ``"weighted"`` is assembled gap by gap in :mod:`scam.core.growth_plans`.

One module of over 400 lines because every solver runs inside the one chunking loop of :func:`build_plan`
(chunks, marginal factors, created and destroyed cells, routes of each chunk's entries): split up, each
piece would need the loop's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import ot
from tqdm import tqdm

from .._utils import logger
from .distributed import rank_and_size
from .graph import GRAPH_MAX_PLAN, graph_geodesics, leaves_support, route_keys, routes
from .growth import GapGrowth, growth_factors, tv_unbalanced

if TYPE_CHECKING:  # pragma: no cover
    from .paths import PathConfig


@dataclass(frozen=True)
class CouplingKind:
    """What a coupling is.

    Attributes
    ----------
    name
        Its name (:attr:`PathConfig.coupling <scam.core.paths.PathConfig.coupling>`).
    explicit_pairs
        Whether its plans are exact, sparse lists of pairs (routes through the data need them; entropic
        plans are dense and pruned).
    correctable
        Whether its exact plans pair every cell with cells of the other snapshot, so that their matching
        error can be corrected for (:func:`scam.core.noise.plan_corrections`; ``"uot"`` pairs cells with
        placeholders where it creates or destroys them).
    """

    name: str
    explicit_pairs: bool
    correctable: bool = False


COUPLING_KINDS = {kind.name: kind for kind in (
    CouplingKind("weighted", True, True), CouplingKind("ot", True, True), CouplingKind("uot", True),
    CouplingKind("sinkhorn", False), CouplingKind("unbalanced", False), CouplingKind("independent", False),
)}
COUPLINGS = tuple(COUPLING_KINDS)
"""The names of the couplings (:attr:`PathConfig.coupling <scam.core.paths.PathConfig.coupling>`)."""


def explicit_pairs(coupling: str) -> bool:
    """Whether ``coupling`` pairs cells explicitly (:attr:`CouplingKind.explicit_pairs`)."""
    return COUPLING_KINDS[coupling].explicit_pairs


# Entries of dense (Sinkhorn) plans below this fraction of the largest entry are dropped.
_PRUNE = 1e-7


@dataclass
class SegmentPlan:
    """A transport plan between snapshot ``k`` (source) and ``k + 1`` (target), in sparse form."""

    src: np.ndarray  # (P,) source cell index
    tgt: np.ndarray  # (P,) target cell index
    cdf: np.ndarray  # (P,) cumulative pair probabilities (pi / |pi|)
    total_mass: float  # |pi|
    log_ra: np.ndarray  # (P,) log(a_i / pi_i.)
    log_rb: np.ndarray  # (P,) log(b_j / pi_.j)
    independent: tuple[int, int] | None = None  # (n_src, n_tgt) for the independent coupling
    kind: np.ndarray | None = None  # (P,) 0 transported pair, 1 destroyed source cell, 2 created target cell
    # graph routes (scam.core.graph): pair p runs through route_nodes[route_ptr[p]:route_ptr[p + 1]]
    # (index < n_src: a source cell, else n_src + a target cell) at arc-length fractions route_cum
    route_ptr: np.ndarray | None = None
    route_nodes: np.ndarray | None = None
    route_cum: np.ndarray | None = None
    route_key: np.ndarray | None = None

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` pair indices (into ``src``/``tgt``) with probability ``pi_ij / |pi|``."""
        if self.independent is not None:
            n0, n1 = self.independent
            return rng.integers(0, n0, n) * n1 + rng.integers(0, n1, n)
        idx = np.searchsorted(self.cdf, rng.random(n) * self.cdf[-1], side="right")
        return np.minimum(idx, len(self.cdf) - 1)

    def pairs(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Source index, target index, log_ra, log_rb of pair indices ``idx``."""
        if self.independent is not None:
            n1 = self.independent[1]
            zeros = np.zeros(len(idx))
            return idx // n1, idx % n1, zeros, zeros
        return self.src[idx], self.tgt[idx], self.log_ra[idx], self.log_rb[idx]

    def profile(self, idx: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Where entries ``idx`` sit at fraction ``tau`` (0: source cell, 1: target cell), their mass
        factor, and the derivatives of both in ``tau``.

        Transported pairs move linearly and keep their mass; a destroyed cell stays where it is with
        mass ``(1 - tau)^2`` and a created one appears where it is with mass ``tau^2``: the
        Fisher-Rao (Hellinger) geodesic, whose growth rate ``-2 / (1 - tau)`` has a finite action.
        """
        if self.kind is None:
            ones = np.ones(len(idx))
            return tau, ones, ones, np.zeros(len(idx))
        kind = self.kind[idx]
        pos = np.where(kind == 0, tau, np.where(kind == 1, 0.0, 1.0))
        mass = np.where(kind == 0, 1.0, np.where(kind == 1, (1 - tau) ** 2, tau**2))
        dpos = (kind == 0).astype(np.float64)
        dmass = np.where(kind == 0, 0.0, np.where(kind == 1, -2 * (1 - tau), 2 * tau))
        return pos, mass, dpos, dmass

    @property
    def changes_mass(self) -> bool:
        """Whether any pair gains or loses mass along the gap (geometric factors, created or destroyed cells)."""
        if self.kind is not None and np.any(self.kind != 0):
            return True
        return bool(np.any(np.abs(self.log_ra) > 1e-9) or np.any(np.abs(self.log_rb) > 1e-9))

    @property
    def n_pairs(self) -> int:
        if self.independent is not None:
            return self.independent[0] * self.independent[1]
        return len(self.src)


_MIN_SINKHORN_REG = 0.02  # relative to the mean cost; below: exact OT (the entropic limit)


def _dense_plan(cost, a, b, coupling, reg, reg_m):
    if coupling == "sinkhorn" and reg < _MIN_SINKHORN_REG * cost.mean():
        # The entropic plan is then within a blur of the exact one, and log-domain Sinkhorn needs
        # ~1/reg iterations (minutes per pair at a few thousand cells): use its limit, exact OT.
        logger.info("scam: entropic regularisation %.2g << mean cost %.2g; using the exact OT plan",
                    reg, cost.mean())
        coupling = "ot"
    if coupling == "ot":
        return ot.emd(a, b, cost, numItermax=max(1_000_000, 50 * cost.size))
    if coupling == "sinkhorn":
        return ot.sinkhorn(a, b, cost, reg, method="sinkhorn_log", numItermax=5000, stopThr=1e-7)
    if coupling == "unbalanced":
        return ot.unbalanced.sinkhorn_unbalanced(
            a, b, cost, reg, reg_m, method="sinkhorn_stabilized", numItermax=5000, stopThr=1e-7
        )
    raise ValueError(f"Unknown coupling {coupling!r}; choose one of {COUPLINGS}.")



def progress_bar(fn, n: int, progress: bool, desc: str):
    """``fn`` with a tqdm bar over its calls by :func:`~scam.core.distributed.per_gap` (under
    torch.distributed: this rank's share of the ``n`` items)."""
    rank, size = rank_and_size()
    mine = len(range(rank, n, size))
    bar = tqdm(total=mine, disable=not progress, desc=desc, leave=False)

    def wrapped(k):
        out = fn(k)
        bar.update(1)
        if bar.n == mine:
            bar.close()
        return out

    return wrapped


def _growth_weights(log_growth: np.ndarray, du: float) -> np.ndarray:
    lw = np.asarray(log_growth, dtype=np.float64) * du
    w = np.exp(lw - lw.max())
    return w / w.sum()


def gap_plans(xs: list[np.ndarray], times: np.ndarray, masses: np.ndarray, config: PathConfig, *,
              sigma: float = 0.0, log_growth: list[np.ndarray] | None = None, graph: list[bool],
              rng: np.random.Generator, progress: bool = False) -> list[SegmentPlan]:
    """The plan of every gap for any coupling but ``"weighted"`` (:func:`scam.core.growth_plans.weighted_plans`).

    Parameters
    ----------
    xs
        Snapshots (internal units), sorted by time.
    times
        Their (internal) times.
    masses
        Relative masses of the snapshots.
    config
        The path settings, with a resolved coupling.
    sigma
        Diffusion coefficient (internal units): ``> 0`` uses the Schrödinger-bridge regularisation
        ``2 sigma^2 du`` for entropic plans.
    log_growth
        Optional per-cell prior log growth rates per snapshot: each source cell is weighted by ``exp(g du)``.
    graph
        Per gap: whether the plan is solved through the data and keeps routes.
    rng
        Generator: one stream is spawned per gap, so plans do not depend on who builds them.
    progress
        Show a tqdm bar.

    Returns
    -------
    One :class:`SegmentPlan` per gap.
    """
    from .distributed import per_gap

    gap_rngs = rng.spawn(len(xs) - 1)

    def gap_plan(k: int) -> SegmentPlan:
        g = gap_rngs[k]
        du = times[k + 1] - times[k]
        sub0 = xs[k][g.choice(len(xs[k]), min(len(xs[k]), 500), replace=False)]
        sub1 = xs[k + 1][g.choice(len(xs[k + 1]), min(len(xs[k + 1]), 500), replace=False)]
        mean_cost = float(ot.dist(sub0, sub1).mean())
        return build_plan(
            xs[k], xs[k + 1], masses[k], masses[k + 1], config, cost_scale=mean_cost,
            reg=2 * sigma**2 * du if sigma > 0 else None, rng=g, graph=graph[k],
            source_weights=None if log_growth is None else _growth_weights(log_growth[k], du),
        )

    n_gaps = len(xs) - 1
    return per_gap(progress_bar(gap_plan, n_gaps, progress, f"couplings ({config.coupling})"), n_gaps)


def _n_chunks(n0: int, n1: int, max_plan_size: int) -> int:
    """Number of random chunks an exact plan between ``n0`` and ``n1`` cells is solved in."""
    return min(max(1, math.ceil(math.sqrt(n0 * n1 / max_plan_size))), n0, n1)


def _chunks(n: int, n_chunks: int, rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(n), n_chunks)



def build_plan(
    x0: np.ndarray,
    x1: np.ndarray,
    mass0: float,
    mass1: float,
    config: PathConfig,
    *,
    cost_scale: float = 1.0,
    reg: float | None = None,
    source_weights: np.ndarray | None = None,
    growth: GapGrowth | None = None,
    graph: bool = False,
    rng: np.random.Generator,
) -> SegmentPlan:
    """Transport plan between two snapshots.

    Parameters
    ----------
    x0, x1
        Cells of the source and target snapshot, ``(n0, d)`` and ``(n1, d)``.
    mass0, mass1
        Total masses of the two snapshots (1 and 1 for balanced paths).
    config
        The coupling and its settings: :attr:`~scam.core.paths.PathConfig.coupling` (resolved, not
        ``"auto"``): ``"weighted"`` (exact EMD between source cells weighted by the growth the data show and
        the target cells: :mod:`scam.core.growth`; pure transport when they show none), ``"ot"`` (exact
        EMD), ``"uot"`` (exact unbalanced OT with a total-variation marginal penalty: mass whose squared
        displacement would exceed ``uot_threshold`` times the mean squared displacement of the balanced OT
        plan is destroyed at the source and created at the target instead), ``"sinkhorn"`` (entropic OT),
        ``"unbalanced"`` (entropic unbalanced OT, KL marginal penalty ``reg_m``) or ``"independent"``;
        ``ot_reg``, ``reg_m`` (relative to ``cost_scale``) and ``max_plan_size`` (larger snapshots are
        split into random chunks solved separately).
    cost_scale
        The squared distance that ``ot_reg`` and ``reg_m`` are fractions of (the gap's mean squared
        distance between the snapshots; 1: absolute values).
    reg
        Entropic regularisation in squared-distance units, overriding ``config.ot_reg * cost_scale``
        (the Schrödinger-bridge value ``2 sigma^2 du`` of entropic paths).
    source_weights
        Relative share of the target population descending from each source cell (e.g.
        ``exp(g_i dt)`` from a growth prior); the balanced plans transport these instead of uniform
        masses, so the path's per-cell mass changes follow the prior.
    growth
        ``"weighted"`` only: the gap's growth evidence (:func:`~scam.core.growth.growth_evidence`);
        default: none beyond what unequal total masses force.
    graph
        Pair cells through the data (:mod:`scam.core.graph`): the plan is solved on squared route
        costs through the two snapshots' neighbour graph and every entry keeps its route
        (``"ot"``, ``"weighted"`` and ``"uot"`` only).
    rng
        Random generator (chunking).

    Returns
    -------
    SegmentPlan
    """
    n0, n1 = len(x0), len(x1)
    coupling, max_plan_size, uot_threshold = config.coupling, config.max_plan_size, config.uot_threshold
    reg = config.ot_reg * cost_scale if reg is None else reg
    reg_m = config.reg_m * cost_scale
    if coupling == "independent":
        empty = np.zeros(0)
        return SegmentPlan(empty, empty, empty, mass0, empty, empty, independent=(n0, n1))
    if coupling not in COUPLINGS:
        raise ValueError(f"build_plan needs a resolved coupling, one of {COUPLINGS}; got {coupling!r}.")
    # graph routes keep a (sources x all cells) distance and predecessor table per chunk: 12 bytes an entry
    n_chunks = _n_chunks(n0, n1, min(max_plan_size, GRAPH_MAX_PLAN) if graph else max_plan_size)
    if graph and not explicit_pairs(coupling):
        explicit = tuple(name for name in COUPLINGS if explicit_pairs(name))
        raise ValueError(f"Routes through the data need a coupling with explicit pairs {explicit}, got {coupling!r}.")
    if coupling in ("uot", "weighted") and source_weights is not None:
        raise ValueError(
            f"A per-cell growth prior weights the balanced couplings; with coupling={coupling!r} the "
            "data decide which cells grow. Use coupling='auto' (or 'ot') with a prior."
        )
    src_l, tgt_l, p_l, ra_l, rb_l, kind_l = [], [], [], [], [], []
    route_l = []  # (ptr, nodes, cum) per chunk, graph paths only
    for c0, c1 in zip(_chunks(n0, n_chunks, rng), _chunks(n1, n_chunks, rng)):
        a = np.full(len(c0), mass0 / len(c0))
        b = np.full(len(c1), mass1 / len(c1))
        cost = ot.dist(np.asarray(x0[c0], dtype=np.float64), np.asarray(x1[c1], dtype=np.float64))
        plan_cost, pred = (graph_geodesics(x0[c0], x1[c1]) if graph else (cost, None))
        first_block = len(src_l)  # this chunk's entries are the blocks appended from here on
        if coupling == "uot":
            w2sq = float(np.sum(_dense_plan(plan_cost, a / mass0, b / mass1, "ot", reg, reg_m) * plan_cost))
            plan = tv_unbalanced(a, b, plan_cost, uot_threshold * w2sq)
        elif coupling in ("ot", "sinkhorn", "weighted"):
            if coupling == "weighted":
                threshold = None if growth is None else growth.threshold
                weights = growth_factors(x0[c0], x1[c1], mass0, mass1, cost, threshold, rng=rng)
            else:
                weights = None if source_weights is None else source_weights[c0]
            a_solve = a / mass0 if weights is None else weights / weights.sum()
            plan = _dense_plan(plan_cost, a_solve, b / mass1, "ot" if coupling == "weighted" else coupling, reg,
                               reg_m)
        else:
            plan = _dense_plan(cost, a, b, coupling, reg, reg_m)
        if not np.all(np.isfinite(plan)) or plan.sum() <= 0:
            raise FloatingPointError(
                f"The {coupling!r} coupling failed (non-finite or empty plan); "
                "increase the regularisation or standardise the data."
            )
        if coupling == "uot":
            for src, tgt, mass, kind in _uot_entries(plan, c0, c1):
                src_l.append(src)
                tgt_l.append(tgt)
                p_l.append(mass / n_chunks)
                ra_l.append(np.zeros(len(src)))  # SegmentPlan.profile gives the mass factors
                rb_l.append(np.zeros(len(src)))
                kind_l.append(kind)
            if graph:
                route_l.append(_chunk_routes(pred, x0, x1, c0, c1, src_l[first_block:], tgt_l[first_block:]))
            continue
        keep = plan > 0 if coupling in ("ot", "weighted") else plan > _PRUNE * plan.max()  # exact or pruned
        ii, jj = np.nonzero(keep)
        vals = plan[ii, jj]
        # endpoint factors from the (pruned) plan's own marginals: exact snapshots at both ends
        row = np.bincount(ii, weights=vals, minlength=len(c0))
        col = np.bincount(jj, weights=vals, minlength=len(c1))
        ra = np.log(a[ii]) - np.log(row[ii])
        rb = np.log(b[jj]) - np.log(col[jj])
        src_l.append(c0[ii])
        tgt_l.append(c1[jj])
        p_l.append(vals / n_chunks)
        ra_l.append(ra)
        rb_l.append(rb)
        kind_l.append(np.zeros(len(ii), dtype=np.int8))
        if graph:
            route_l.append(_chunk_routes(pred, x0, x1, c0, c1, src_l[first_block:], tgt_l[first_block:]))
    p = np.concatenate(p_l)
    total = float(p.sum())
    routes_ = _join_routes(route_l) if graph else {}
    return SegmentPlan(
        src=np.concatenate(src_l).astype(np.int64),
        tgt=np.concatenate(tgt_l).astype(np.int64),
        cdf=np.cumsum(p),
        total_mass=total,
        log_ra=np.concatenate(ra_l),
        log_rb=np.concatenate(rb_l),
        kind=np.concatenate(kind_l) if coupling == "uot" else None,
        **routes_,
    )


def _chunk_routes(pred, x0, x1, c0, c1, src_blocks, tgt_blocks):
    """Routes of a chunk's entries (its blocks of source and target cells), nodes in gap-wide numbering."""
    src, tgt = np.concatenate(src_blocks), np.concatenate(tgt_blocks)
    n0 = len(x0)
    inv0 = np.full(n0, -1)
    inv0[c0] = np.arange(len(c0))
    inv1 = np.full(len(x1), -1)
    inv1[c1] = np.arange(len(c1))
    union = np.concatenate([np.asarray(x0[c0], np.float64), np.asarray(x1[c1], np.float64)])
    # placeholders (the absent end of a destroyed or created cell) get any route: they do not move
    s, t = np.maximum(inv0[src], 0), np.maximum(inv1[tgt], 0)
    straight = ~leaves_support(union, union[s], union[len(c0) + t])  # lines inside the data stay lines
    ptr, nodes, cum = routes(pred, union, s, t, len(c0), straight=straight)
    nodes = np.where(nodes < len(c0), c0[np.minimum(nodes, len(c0) - 1)], n0 + c1[np.maximum(nodes - len(c0), 0)])
    return ptr, nodes, cum


def _join_routes(route_l) -> dict:
    ptrs, offset = [np.zeros(1, np.int64)], 0
    for ptr, _, _ in route_l:
        ptrs.append(ptr[1:] + offset)
        offset += ptr[-1]
    ptr = np.concatenate(ptrs)
    cum = np.concatenate([c for _, _, c in route_l])
    return {"route_ptr": ptr, "route_nodes": np.concatenate([nd for _, nd, _ in route_l]), "route_cum": cum,
            "route_key": route_keys(ptr, cum)}


def _uot_entries(plan: np.ndarray, c0: np.ndarray, c1: np.ndarray):
    """Entries of an augmented TV-unbalanced plan: transported pairs, destroyed and created cells.

    Yields ``(src, tgt, mass, kind)`` blocks (``tgt`` of a destroyed cell and ``src`` of a created
    one are placeholders: :meth:`SegmentPlan.profile` keeps them at their own end).
    """
    n0, n1 = len(c0), len(c1)
    core, dead, born = plan[:n0, :n1], plan[:n0, n1], plan[n0, :n1]
    ii, jj = np.nonzero(core > 0)
    di = np.nonzero(dead > 0)[0]
    bj = np.nonzero(born > 0)[0]
    for src, tgt, mass, kind in (
        (c0[ii], c1[jj], core[ii, jj], 0),
        (c0[di], np.zeros(len(di), dtype=np.int64), dead[di], 1),
        (np.zeros(len(bj), dtype=np.int64), c1[bj], born[bj], 2),
    ):
        yield src, tgt, mass, np.full(len(src), kind, dtype=np.int8)


