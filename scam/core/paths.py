"""Probability paths between snapshots.

Data give only snapshots q_{t_0}, ..., q_{t_K}; the Action Matching loss needs samples of q_t at any t
in between. Each pair of consecutive snapshots is joined by a *coupling* (a sparse or dense transport
plan between their cells); a point of the path at fraction ``tau`` of the gap is the interpolant
``(1 - tau) x_i + tau y_j`` of a sampled pair ``(i, j)`` (plus a Brownian-bridge term for entropic
paths).

Unbalanced paths carry mass: with source masses ``a_i`` (snapshot mass ``M_k / n_k`` each), target
masses ``b_j`` and plan ``pi``, pair ``(i, j)`` carries

    w_ij(tau) = pi_ij * (a_i / pi_i.)^(1 - tau) * (b_j / pi_.j)^tau,

so that the path reproduces both snapshots (with their masses) exactly at the ends and the mass of
every pair changes exponentially, i.e. with a constant growth rate along the pair. For balanced
plans the factors are one.

The exact unbalanced coupling ``"uot"`` (an OT linear program with a total-variation penalty on the
marginals) splits each snapshot into mass that is transported and mass that is destroyed (source)
or created (target). Transported pairs keep their mass; a destroyed cell stays in place with mass
``a_i (1 - tau)^2`` and a created one appears in place with mass ``b_j tau^2`` (the Fisher-Rao
geodesic, the cheapest way to remove or add mass under the ``lambda/2 s^2`` action).

Plans are computed once per segment. Exact EMD (POT) is used while ``n_k * n_{k+1}`` fits under
``max_plan_size``; beyond that both snapshots are split into random chunks that are solved
separately (minibatch OT), so memory stays linear in the number of cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import ot
from tqdm import tqdm

from .._utils import check_types, logger
from .distributed import per_gap, rank_and_size
from .graph import GRAPH_MAX_PLAN, along, graph_geodesics, leaves_support, route_keys, routes
from .growth import GapGrowth, growth_evidence, growth_factors, placed_growth, tv_unbalanced
from .noise import MomentCorrection, matching_noise
from .pace import pace_warp

COUPLINGS = ("weighted", "ot", "uot", "sinkhorn", "unbalanced", "independent")
PATHS = ("support", "straight", "graph", "asynchronous", "auto")

# Entries of dense (Sinkhorn) plans below this fraction of the largest entry are dropped.
_PRUNE = 1e-7


@dataclass(frozen=True)
class PathConfig:
    """How snapshots are joined into a path (the couplings); the defaults of :func:`build_plan` and
    :class:`SnapshotPath` are these.

    Parameters
    ----------
    coupling
        ``"auto"`` (resolved by :meth:`scam.core.TrainConfig.resolved_coupling` from the objective) or
        one of :data:`COUPLINGS`; see :class:`scam.core.TrainConfig`.
    ot_reg, reg_m
        Entropic regularisation and marginal relaxation of Sinkhorn/unbalanced plans, as fractions of
        the mean squared distance between the two snapshots (``ot_reg`` is ignored when ``sigma > 0``,
        where the Schrödinger-bridge value ``2 sigma^2 du`` is used).
    uot_threshold
        ``"uot"`` only: mass whose squared displacement would exceed ``uot_threshold`` times the
        balanced plan's mean squared displacement is destroyed / created instead.
    max_plan_size
        Largest ``n_source x n_target`` solved as one exact plan; larger snapshots are split into random
        chunks solved separately (memory linear in the number of cells). The network simplex costs
        0.13 ms a cell at 1,000 x 1,000 and 0.48 ms at 2,500 x 2,500 (2-D), and held-out W1 on
        LARRY-130k is the same with either (``benchmarks/README.md``, scale); the matching error the
        smaller chunks add is corrected for (``noise_correction``).
    path
        How a coupled pair moves through its gap (docs page "Paths between snapshots"): ``"support"``
        (the default: each gap is ``"straight"`` unless most of its straight interpolation between
        exactly coupled cells runs where neither snapshot has cells, and then ``"graph"``:
        :func:`scam.core.off_support_share`; straight for entropic paths and couplings without
        explicit pairs), ``"straight"``
        (every pair at the same fraction of its straight line), ``"graph"`` (pairs
        coupled on, and moving along, shortest routes through the neighbour graph of the gap's two
        snapshots wherever their straight line leaves the data: :mod:`scam.core.graph`; for
        embeddings where straight lines cross empty space, such as 2-D layouts of branching
        systems), ``"asynchronous"`` (each sampled pair at its own
        fraction, ``sigmoid(logit(tau) + pace_spread * z)``: :mod:`scam.core.pace`) or ``"auto"``:
        the candidate (straight, asynchronous spreads, graph) that predicts held-out inner training
        time points better than the straight path by more than twice its standard error
        (:func:`scam.core.path_choice.choose_path`); straight with two time points (nothing to
        validate on) and for entropic paths (``sigma > 0``), asynchronous candidates left out where
        the path changes mass (a change in make-up is left to growth). ``"auto"`` is not the default
        because the ground truth asks so: on a noisy double well it finds the escape from the saddle
        asynchronous (held-out W1 0.92x) but the noise then estimated from the potential for fate
        probabilities falls from 0.68-0.84 to 0.56 (true 0.77). ``"graph"`` everywhere bends the
        Gaussian W2 geodesic; ``"support"`` keeps it straight (10-20% of its straight interpolation
        off the support).
    pace_spread
        ``path="asynchronous"`` only: the spread of the pairs' log-odds fractions; ``None`` (the
        default) chooses it on held-out inner time points like ``"auto"`` (the best spread of
        :data:`scam.core.pace.PACE_GRID` above 0, without the significance test).
    max_cells
        Plans are sized to what training consumes: a snapshot with more cells than this enters the
        couplings as a uniform random subsample of ``max_cells`` cells (drawn from the fit's ``rng``;
        the masses and the scaling still use every cell). Training draws ``n_steps x batch_size``
        path points in all (512,000 by default), so each kept cell is still used several times, and
        the plans' cost, which grows with the number of chunks, stops growing with the atlas.
        ``None``: every cell. See ``benchmarks/README.md`` (scale) for held-out W1 with and without.
    noise_correction
        Correct the path of exact plans (``"ot"``, ``"weighted"``) for their matching error
        (:mod:`scam.core.noise`): in many dimensions the paired cells are partly random partners and
        the straight-line path contracts inside each gap, which biases the velocity at the cells
        (4x on a 50-D drifting cloud). Close to the identity where the plans are exact (few
        dimensions). Used with the ``"pathwise"`` estimator only: the corrected pairs end at their
        kept targets, not exactly at the target cells, and the ``"boundary"`` form needs paths that
        end at the snapshots.
    """

    coupling: str = "auto"
    ot_reg: float = 0.01
    reg_m: float = 1.0
    uot_threshold: float = 3.0
    max_plan_size: int = 1_000_000
    max_cells: int | None = 20_000
    noise_correction: bool = True
    path: str = "support"
    pace_spread: float | None = None

    def __post_init__(self):
        check_types(self, ints=("max_plan_size",), numbers=("ot_reg", "reg_m", "uot_threshold"),
                    strings=("coupling",))
        for name in ("ot_reg", "reg_m", "uot_threshold", "max_plan_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PathConfig.{name} must be > 0, got {getattr(self, name)}.")
        if not isinstance(self.noise_correction, (bool, np.bool_)):
            raise TypeError(f"PathConfig.noise_correction must be True or False, got {self.noise_correction!r}.")
        if self.max_cells is not None:
            check_types(self, ints=("max_cells",))
            if self.max_cells < 2:
                raise ValueError(f"PathConfig.max_cells must be >= 2 or None, got {self.max_cells}.")
        if self.coupling != "auto" and self.coupling not in COUPLINGS:
            raise ValueError(f"Unknown coupling {self.coupling!r}; choose 'auto' or one of {COUPLINGS}.")
        if self.path not in PATHS:
            raise ValueError(f"Unknown path {self.path!r}; choose one of {PATHS}.")
        if self.pace_spread is not None:
            if self.path != "asynchronous":
                raise ValueError(
                    f"pace_spread is the spread of path='asynchronous' (got path={self.path!r}); set "
                    "path='asynchronous' with it, or drop pace_spread."
                )
            check_types(self, numbers=("pace_spread",))
            if not (np.isfinite(self.pace_spread) and self.pace_spread > 0):
                raise ValueError(f"PathConfig.pace_spread must be a finite number > 0, got {self.pace_spread}.")


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


def _growth_weights(log_growth: np.ndarray, du: float) -> np.ndarray:
    lw = np.asarray(log_growth, dtype=np.float64) * du
    w = np.exp(lw - lw.max())
    return w / w.sum()


def _progress(fn, n: int, progress: bool, desc: str):
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
    *,
    coupling: str = "ot",
    reg: float = 0.05,
    reg_m: float = PathConfig.reg_m,
    max_plan_size: int = PathConfig.max_plan_size,
    source_weights: np.ndarray | None = None,
    uot_threshold: float = PathConfig.uot_threshold,
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
    coupling
        ``"weighted"`` (exact EMD between source cells weighted by the growth the data show and the
        target cells: :mod:`scam.core.growth`; pure transport when they show none), ``"ot"`` (exact
        EMD), ``"uot"`` (exact unbalanced OT with a total-variation marginal penalty:
        see ``uot_threshold``), ``"sinkhorn"`` (entropic OT with regularisation ``reg``),
        ``"unbalanced"`` (entropic unbalanced OT, KL marginal penalty ``reg_m``) or ``"independent"``.
    reg
        Entropic regularisation (same units as the squared-Euclidean cost).
    reg_m
        Marginal relaxation of unbalanced OT: small values make mass creation cheap.
    max_plan_size
        Largest ``n0 * n1`` solved as one problem; larger snapshots are split into chunks.
    source_weights
        Relative share of the target population descending from each source cell (e.g.
        ``exp(g_i dt)`` from a growth prior); the balanced plans transport these instead of uniform
        masses, so the path's per-cell mass changes follow the prior.
    uot_threshold
        ``"uot"`` only: mass whose squared displacement would exceed ``uot_threshold`` times the
        mean squared displacement of the balanced OT plan (``W2^2``) is destroyed at the source and
        created at the target instead of being transported. Large values give the balanced plan.
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
    if coupling == "independent":
        empty = np.zeros(0)
        return SegmentPlan(empty, empty, empty, mass0, empty, empty, independent=(n0, n1))
    if coupling not in COUPLINGS:
        raise ValueError(f"Unknown coupling {coupling!r}; choose one of {COUPLINGS}.")
    # graph routes keep a (sources x all cells) distance and predecessor table per chunk: 12 bytes an entry
    n_chunks = _n_chunks(n0, n1, min(max_plan_size, GRAPH_MAX_PLAN) if graph else max_plan_size)
    if graph and coupling not in ("ot", "weighted", "uot"):
        raise ValueError(
            f"Graph paths need a coupling with explicit pairs ('ot', 'weighted' or 'uot'), got {coupling!r}."
        )
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
        keep = plan > _PRUNE * plan.max() if coupling not in ("ot", "weighted") else plan > 0
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


def _weighted_plans(xs, times, masses, max_plan_size, rng, progress=False, graph=None):
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
    """
    n_gaps = len(xs) - 1
    graph = [False] * n_gaps if graph is None else graph
    du = np.diff(times)
    evidence_rngs, plan_rngs = rng.spawn(n_gaps), rng.spawn(n_gaps)

    def gap_evidence(k: int) -> GapGrowth:
        return growth_evidence(xs[k], xs[k + 1], masses[k], masses[k + 1], rng=evidence_rngs[k])

    evidence = per_gap(_progress(gap_evidence, n_gaps, progress, "growth evidence"), n_gaps)
    for k, gap in enumerate(evidence):
        logger.info(
            "scam: gap %d: mass destroyed beyond a pure-transport null: %.3f -> %s", k, gap.excess,
            "growth" if gap.threshold is not None else "transport",
        )

    def plan(k, weights=None, stream=None):
        if weights is not None:
            return build_plan(xs[k], xs[k + 1], masses[k], masses[k + 1], coupling="ot", graph=graph[k],
                              source_weights=weights, max_plan_size=max_plan_size, rng=stream or rng)
        return build_plan(xs[k], xs[k + 1], masses[k], masses[k + 1], coupling="weighted", graph=graph[k],
                          growth=evidence[k], max_plan_size=max_plan_size, rng=stream or rng)

    def evidence_plan(k):
        g = plan_rngs[k]
        s0, s1 = _subsample(len(xs[k]), g), _subsample(len(xs[k + 1]), g)
        a, b = np.asarray(xs[k][s0], np.float64), np.asarray(xs[k + 1][s1], np.float64)
        factors, agreement = placed_growth(a, b, masses[k], masses[k + 1], ot.dist(a, b), evidence[k].threshold,
                                           rng=g)
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
                    sub = build_plan(xs[k][s0], xs[k + 1][s1], masses[k], masses[k + 1], coupling="ot",
                                     source_weights=weights, max_plan_size=max_plan_size, rng=g)
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


def _corrections(xs, plans, max_plan_size, rng, progress=False, moments=None) -> list[MomentCorrection | None]:
    """The matching-error correction of every gap whose pairs keep their mass (:mod:`scam.core.noise`;
    None for the others); ``moments``: mean, covariance and size of every whole snapshot."""
    n_gaps = len(plans)
    streams = rng.spawn(n_gaps + 1)
    sizes = [len(x) for x in xs]
    cells = [math.sqrt(sizes[k] * sizes[k + 1]) / _n_chunks(sizes[k], sizes[k + 1], max_plan_size)
             for k in range(n_gaps)]

    def snapshot_noise(k: int) -> np.ndarray:  # at the plan size of the gaps the snapshot is in
        size = np.mean([cells[g] for g in (k - 1, k) if 0 <= g < n_gaps])
        return matching_noise(xs[k], int(size), rng=streams[k])

    # gaps whose pairs change mass keep their straight lines: the Gaussian map and the Wiener factor
    # know nothing of growth, and moving a growing pair's target towards the population's map moves
    # its mass there too (the model's mass then misses the data's: measured, 1.73 for 2.63)
    # and routes through the data are not lines to correct
    moving = [k for k, plan in enumerate(plans)
              if plan.kind is None and plan.route_ptr is None and not _changes_mass(plan)]
    needed = sorted({j for k in moving for j in (k, k + 1)})
    if not needed:
        return [None] * n_gaps
    noise_of = lambda i: snapshot_noise(needed[i])  # noqa: E731
    found = per_gap(_progress(noise_of, len(needed), progress, "matching noise"), len(needed))
    noises = dict(zip(needed, found))
    out: list[MomentCorrection | None] = [None] * n_gaps
    for k in moving:
        plan = plans[k]
        out[k] = MomentCorrection.from_plan(
            xs[k], xs[k + 1], plan.src, plan.tgt, np.diff(plan.cdf, prepend=0.0), 0.5 * (noises[k] + noises[k + 1]),
            moments=(moments[k], moments[k + 1]) if moments else None,
        )
        logger.info("scam: gap %d: matching error is %.0f%% of the pairs' squared displacement (corrected)",
                    k, 100 * out[k].noise_share)
    return out


def _changes_mass(plan: SegmentPlan) -> bool:
    return bool(np.any(np.abs(plan.log_ra) > 1e-9) or np.any(np.abs(plan.log_rb) > 1e-9))


class SnapshotPath:
    """A path through all snapshots: one plan per pair of consecutive time points.

    Parameters
    ----------
    xs
        Snapshots in internal units, a list of ``(n_k, d)`` arrays.
    times
        Internal times, increasing from 0 to 1.
    masses
        Relative masses ``M_k`` (all ones for balanced paths).
    coupling
        See :func:`build_plan`.
    sigma
        Diffusion coefficient (internal units). ``> 0`` makes the path a Brownian bridge between the
        paired cells, and entropic plans use the Schrödinger-bridge regularisation ``2 sigma^2 du``.
    ot_reg, reg_m, max_plan_size, uot_threshold
        See :class:`PathConfig` (its defaults are these).
    log_growth
        Optional per-cell prior log growth rates (per internal time unit), one array per snapshot;
        the cells of each source snapshot are weighted by ``exp(g_i du)`` in the plans.
    noise_correction
        See :class:`PathConfig` (deterministic exact plans only: ``"ot"``, ``"weighted"``).
    moments
        Mean, covariance and number of cells of every snapshot when ``xs`` are subsamples of them
        (:func:`scam.core.noise.snapshot_moments`): the noise correction's Gaussian maps use them.
    pace_spread
        Asynchronous pace (:func:`scam.core.pace.pace_warp`) of the transported pairs; 0: straight.
    graph
        Pairs follow routes through the data (:mod:`scam.core.graph`) instead of straight lines
        (couplings ``"ot"``, ``"weighted"``, ``"uot"``; deterministic paths only): True, False, or
        one of them per gap.
    rng
        Random generator.
    progress
        Show tqdm bars.
    """

    def __init__(
        self,
        xs: list[np.ndarray],
        times: np.ndarray,
        masses: np.ndarray,
        *,
        coupling: str,
        sigma: float = 0.0,
        ot_reg: float = PathConfig.ot_reg,
        reg_m: float = PathConfig.reg_m,
        max_plan_size: int = PathConfig.max_plan_size,
        log_growth: list[np.ndarray] | None = None,
        uot_threshold: float = PathConfig.uot_threshold,
        noise_correction: bool = PathConfig.noise_correction,
        moments: list[tuple[np.ndarray, np.ndarray, int]] | None = None,
        pace_spread: float = 0.0,
        graph: bool | list[bool] = False,
        rng: np.random.Generator,
        progress: bool = False,
    ):
        import torch

        self.pace_spread = float(pace_spread)
        n_gaps = len(xs) - 1
        self.graph_gaps = [bool(graph)] * n_gaps if np.ndim(graph) == 0 else [bool(g) for g in graph]
        if len(self.graph_gaps) != n_gaps:
            raise ValueError(f"graph needs one value per gap ({n_gaps}), got {len(self.graph_gaps)}.")
        self.graph = any(self.graph_gaps)
        if self.graph and sigma > 0:
            raise ValueError("Graph paths are deterministic routes; use sigma=0 with them (or path='straight').")
        self.times = np.asarray(times, dtype=np.float64)
        self.masses = np.asarray(masses, dtype=np.float64)
        self.sigma = float(sigma)
        self.plans: list[SegmentPlan] = []
        self.growth: list[GapGrowth] | None = None
        if coupling == "weighted":
            self.plans, self.growth = _weighted_plans(xs, self.times, self.masses, max_plan_size, rng, progress,
                                                      graph=self.graph_gaps)
        if coupling != "weighted":
            gap_rngs = rng.spawn(len(xs) - 1)  # one stream per gap: the plans do not depend on who builds them

            def gap_plan(k: int) -> SegmentPlan:
                g = gap_rngs[k]
                du = self.times[k + 1] - self.times[k]
                sub0 = xs[k][g.choice(len(xs[k]), min(len(xs[k]), 500), replace=False)]
                sub1 = xs[k + 1][g.choice(len(xs[k + 1]), min(len(xs[k + 1]), 500), replace=False)]
                mean_cost = float(ot.dist(sub0, sub1).mean())
                reg = 2 * self.sigma**2 * du if self.sigma > 0 else ot_reg * mean_cost
                return build_plan(
                    xs[k], xs[k + 1], self.masses[k], self.masses[k + 1],
                    coupling=coupling, reg=reg, reg_m=reg_m * mean_cost,
                    max_plan_size=max_plan_size, rng=g, uot_threshold=uot_threshold,
                    source_weights=None if log_growth is None else _growth_weights(log_growth[k], du),
                    graph=self.graph_gaps[k],
                )

            self.plans = per_gap(_progress(gap_plan, len(xs) - 1, progress, f"couplings ({coupling})"), len(xs) - 1)
        self.corrections: list[MomentCorrection | None] | None = None  # None: a gap left uncorrected
        if noise_correction and self.sigma == 0 and coupling in ("ot", "weighted") and not all(self.graph_gaps):
            self.corrections = _corrections(xs, self.plans, max_plan_size, rng, progress, moments)
        self._torch = torch
        self.xs = [torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in xs]

    @property
    def changes_mass(self) -> bool:
        """Whether any pair of the path gains or loses mass (False: pure transport, equal masses)."""
        for plan in self.plans:
            if plan.kind is not None and np.any(plan.kind != 0):
                return True
            if _changes_mass(plan):
                return True
        return not np.allclose(self.masses, self.masses[0])

    def to(self, device) -> SnapshotPath:
        self.xs = [x.to(device) for x in self.xs]
        self._unions = {}
        return self

    def _union(self, seg: int):
        """Both snapshots of gap ``seg`` stacked (the nodes of its routes), cached."""
        unions = self.__dict__.setdefault("_unions", {})
        if seg not in unions:
            unions[seg] = self._torch.cat([self.xs[seg], self.xs[seg + 1]])
        return unions[seg]

    def sample_path(self, u: np.ndarray, rng: np.random.Generator):
        """Points of the path at internal times ``u``, their mass estimators ``w``, and along each
        sampled pair the velocity ``dx/du`` (sigma = 0 only: the noise of a Brownian bridge has no
        pathwise velocity; None otherwise) and the mass derivative ``dw/du``."""
        torch = self._torch
        u = np.asarray(u, dtype=np.float64)
        n, dim = len(u), self.xs[0].shape[1]
        k = np.clip(np.searchsorted(self.times, u, side="right") - 1, 0, len(self.plans) - 1)
        device = self.xs[0].device
        deterministic = self.sigma == 0  # only then do pairs have a velocity and mass derivative
        # the bookkeeping per gap in numpy, the points in a few whole-batch tensor operations
        pos, speed, w, w_dot = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
        noise = None if deterministic else np.empty((n, dim), dtype=np.float32)
        x0 = torch.empty(n, dim, device=device)
        x1 = torch.empty_like(x0)
        gaps = []
        for seg in np.unique(k):
            sel = np.nonzero(k == seg)[0]
            plan = self.plans[seg]
            du = self.times[seg + 1] - self.times[seg]
            tau = (u[sel] - self.times[seg]) / du
            idx = plan.sample(len(sel), rng)
            i, j, lra, lrb = plan.pairs(idx)
            p, factor, dpos, dfactor = plan.profile(idx, tau)
            if self.pace_spread > 0:  # transported pairs at their own pace (mass profiles keep real time)
                warped, speed_factor = pace_warp(tau, self.pace_spread, rng)
                moving = dpos > 0
                p, dpos = np.where(moving, warped, p), np.where(moving, dpos * speed_factor, dpos)
            pos[sel], speed[sel] = p, dpos / du
            growth = np.exp((1 - tau) * lra + tau * lrb)
            w[sel] = plan.total_mass * factor * growth
            w_dot[sel] = plan.total_mass * (dfactor + factor * (lrb - lra)) * growth / du
            if noise is not None:  # a Brownian bridge between the pair
                noise[sel] = rng.standard_normal((len(sel), dim)) * (self.sigma * np.sqrt(p * (1 - p) * du))[:, None]
            sel_t = torch.as_tensor(sel, device=device)
            if plan.route_ptr is not None:  # on a route: the hop it is on, at fraction f of the hop
                a, b, f, share = along(plan.route_ptr, plan.route_cum, plan.route_key, idx, p)
                pos[sel], speed[sel] = f, dpos / du / share
                union = self._union(seg)
                x0[sel_t] = union[torch.as_tensor(plan.route_nodes[a], device=device)]
                x1[sel_t] = union[torch.as_tensor(plan.route_nodes[b], device=device)]
                gaps.append((seg, sel, sel_t))
                continue
            x0[sel_t] = self.xs[seg][torch.as_tensor(i, device=device)]
            x1[sel_t] = self.xs[seg + 1][torch.as_tensor(j, device=device)]
            gaps.append((seg, sel, sel_t))
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
        tau_t = as_t(pos)[:, None]
        x = (1 - tau_t) * x0 + tau_t * x1
        speed_t = as_t(speed)[:, None]
        v = speed_t * (x1 - x0) if deterministic else None
        for seg, sel, sel_t in gaps:
            if self.corrections is not None and self.corrections[seg] is not None:
                xt, vt = self.corrections[seg].apply(x0[sel_t], x1[sel_t], pos[sel])
                x[sel_t] = xt
                if deterministic:
                    v[sel_t] = speed_t[sel_t] * vt
        if noise is not None:
            x = x + as_t(noise)
        return x, as_t(w), v, as_t(w_dot)

    def sample(self, batch_size: int, rng: np.random.Generator):
        """A :class:`~scam.core.losses.PathBatch` with stratified (low-discrepancy) times."""
        from .losses import PathBatch

        torch = self._torch
        u = (rng.random() + np.arange(batch_size)) / batch_size
        x, w, v, w_dot = self.sample_path(u, rng)
        device = x.device
        first, last = self.xs[0], self.xs[-1]
        i0 = torch.as_tensor(rng.integers(0, len(first), batch_size), device=device)
        i1 = torch.as_tensor(rng.integers(0, len(last), batch_size), device=device)
        return PathBatch(
            t=torch.as_tensor(u, dtype=torch.float32, device=device),
            x=x,
            w=w,
            x_start=first[i0],
            x_end=last[i1],
            mass_start=float(self.masses[0]),
            mass_end=float(self.masses[-1]),
            v=v,
            w_dot=w_dot,
        )
