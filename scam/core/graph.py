"""Paths that follow the data: shortest paths through a neighbour graph of the two snapshots of a gap.

A straight line between coupled cells may cross states no cell was seen in: on a 2-D layout of a
branching system (a force-directed or UMAP embedding, where Euclidean straight lines mean little) the
line from a progenitor to a cell at the tip of a curved branch cuts through the empty middle. The
*graph path* joins the pair through the cells of the two snapshots instead: the union of both is a
k-nearest-neighbour graph whose edges cost their squared length, so that a path prefers many short
hops through dense regions to a few long ones through sparse ones (the graph form of a density
metric, as in metric flow matching), and the shortest path is the pair's route. The couplings are
solved on the squared route lengths, so cells are paired with partners they can reach through the data.

A pair whose straight line stays where cells were seen keeps it (:func:`leaves_support`): routes
are taken only where the line crosses empty space, so that inside the data the graph's hops, which
pass through sample cells, do not bend what needs no bending.

Whether a gap needs routes at all is a question the data answer (:func:`off_support_share`, the
default ``path="support"`` of :class:`~scam.core.PathConfig`): where most of the straight
interpolation between exactly coupled cells lies farther from every cell of the two snapshots than
95% of those cells lie from their nearest neighbour, the straight path predicts states nobody saw and
the gap follows the data; otherwise it stays straight. The cells of one snapshot are off that support
5% of the time by construction; a Gaussian W2 geodesic puts 10-20% of its straight interpolation
there (its tails), a 2-D layout of a branching system between distant days more than half.

A pair moves along its route at constant speed (by arc length), so its velocity is exact and the
pathwise estimator takes it as it is. Only gaps whose couplings have explicit pairs (``"ot"``,
``"weighted"``, ``"uot"``) can follow routes; the noise correction of straight paths does not apply.

Cost: one Dijkstra search per source cell of each chunk (:attr:`PathConfig.max_plan_size`, at most
:data:`GRAPH_MAX_PLAN` with routes), about 1 s per 1,000 x 1,000 chunk in 2-D. scipy's search holds the GIL,
so on Linux a chunk's sources are split over forked processes, one per core this process may use, at most
:data:`MAX_SEARCH_PROCESSES` (:func:`_searches`): the same searches, the same tables.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from sklearn.neighbors import NearestNeighbors, kneighbors_graph

GRAPH_NEIGHBOURS = 15  # neighbours per cell (scanpy's default for the neighbour graph)
GRAPH_MAX_PLAN = 4_000_000  # largest n_source x n_target chunk with routes (its tables: ~100 MB)
SUPPORT_QUANTILE = 0.95  # a point is off the support when farther from every cell than this quantile
# of the cells' own nearest-neighbour distances
SUPPORT_FRACTIONS = (0.25, 0.5, 0.75)  # where along a straight line it is checked
SUPPORT_CELLS = 1000  # cells per snapshot on which a gap's off-support share is measured
SUPPORT_MAJORITY = 0.5  # a gap follows the data when more than this share of its line leaves the support
PARALLEL_SEARCH = 1_000_000  # sources x nodes from which the searches are split over processes (~0.5 s of work)
MAX_SEARCH_PROCESSES = 4


def leaves_support(union: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether the straight lines from ``a`` to ``b`` leave the support of the cells ``union``.

    Parameters
    ----------
    union
        The cells whose support it is, ``(n, d)``.
    a, b
        Start and end points of the lines, ``(m, d)`` each.

    Returns
    -------
    numpy.ndarray
        ``(m,)`` booleans: some point of :data:`SUPPORT_FRACTIONS` along the line is farther from every
        cell of ``union`` than the :data:`SUPPORT_QUANTILE` quantile of the cells' distances to their
        nearest neighbour.
    """
    union = np.asarray(union, np.float64)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) == 0 or len(union) < 3:
        return np.zeros(len(a), dtype=bool)
    nn = NearestNeighbors(n_neighbors=2).fit(union)
    radius = np.quantile(nn.kneighbors(union)[0][:, 1], SUPPORT_QUANTILE)
    gap = np.zeros(len(a))
    for s in SUPPORT_FRACTIONS:
        gap = np.maximum(gap, nn.kneighbors((1 - s) * a + s * b, n_neighbors=1)[0][:, 0])
    return gap > radius


def off_support_share(x0: np.ndarray, x1: np.ndarray, rng: np.random.Generator) -> float:
    """Share of the straight interpolation between two snapshots that leaves their support where the
    data could carry it instead.

    Subsamples of at most :data:`SUPPORT_CELLS` cells of each snapshot are coupled by exact
    (balanced) OT; the share is the plan mass of the pairs whose straight line
    :func:`leaves_support` of the two subsamples and whose two cells the neighbour graph of the
    subsamples connects (a pair the graph does not connect has no route: two clouds far apart with
    nothing between them stay straight).

    Parameters
    ----------
    x0, x1
        Source and target cells.
    rng
        Random generator (the subsamples).

    Returns
    -------
    float
        Between 0 and 1 (about 0.05 for two samples of one population).
    """
    import ot

    def sub(x):
        x = np.asarray(x, np.float64)
        return x if len(x) <= SUPPORT_CELLS else x[np.sort(rng.choice(len(x), SUPPORT_CELLS, replace=False))]

    a, b = sub(x0), sub(x1)
    plan = ot.emd(np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b)), ot.dist(a, b),
                  numItermax=max(1_000_000, 50 * len(a) * len(b)))
    i, j = np.nonzero(plan > 0)
    union = np.concatenate([a, b])
    k = min(GRAPH_NEIGHBOURS, len(union) - 1)
    _, component = connected_components(kneighbors_graph(union, k), directed=False)
    off = leaves_support(union, a[i], b[j]) & (component[i] == component[len(a) + j])
    return float(plan[i, j][off].sum() / plan[i, j].sum())


def graph_geodesics(x0: np.ndarray, x1: np.ndarray, n_neighbors: int = GRAPH_NEIGHBOURS):
    """Route costs between the cells of two snapshots through their joint neighbour graph.

    Parameters
    ----------
    x0, x1
        Source and target cells, ``(n0, d)`` and ``(n1, d)``.
    n_neighbors
        Neighbours of each cell in the graph (symmetrised).

    Returns
    -------
    cost
        ``(n0, n1)``: the squared route cost (sum of squared hop lengths) of the shortest route from
        each source to each target cell; routes between cells the graph does not connect cost the
        largest finite cost plus their squared Euclidean distance.
    predecessors
        ``(n0, n0 + n1)`` Dijkstra predecessors from each source over the union (sources first).
    """
    union = np.concatenate([np.asarray(x0, np.float64), np.asarray(x1, np.float64)])
    n0 = len(x0)
    k = min(n_neighbors, len(union) - 1)
    dist, ind = NearestNeighbors(n_neighbors=k + 1).fit(union).kneighbors(union)
    rows = np.repeat(np.arange(len(union)), k)
    weights = dist[:, 1:].ravel() ** 2 + 1e-12  # duplicates of one cell stay distinct nodes
    graph = csr_matrix((weights, (rows, ind[:, 1:].ravel())), shape=(len(union), len(union)))
    graph = graph.maximum(graph.T)
    hops, predecessors = _searches(graph, n0)
    route = hops[:, n0:]
    cost = route**2
    unreachable = ~np.isfinite(cost)
    if unreachable.any():
        euclid = ((union[:n0, None, :] - union[None, n0:, :]) ** 2).sum(-1)
        top = cost[~unreachable].max() if (~unreachable).any() else 0.0
        cost = np.where(unreachable, top + euclid, cost)
    return cost, predecessors


def _search_workers(n_sources: int, n_nodes: int) -> int:
    """Processes for the searches: the cores this process may run on, at most :data:`MAX_SEARCH_PROCESSES`;
    1 below :data:`PARALLEL_SEARCH` or where processes cannot be forked (not Linux, or inside a daemonic
    process). Not reduced by the load average as torch's threads are: a search process that waits for a
    core does not spin (OpenMP's threads do), so a busy core costs a share of it, not a multiple."""
    import multiprocessing

    if n_sources * n_nodes < PARALLEL_SEARCH or not sys.platform.startswith("linux"):
        return 1
    if multiprocessing.current_process().daemon:  # e.g. a worker of the user's own pool: no children
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_SEARCH_PROCESSES, n_sources))


def _searches(graph: csr_matrix, n0: int) -> tuple[np.ndarray, np.ndarray]:
    """Dijkstra from each of the first ``n0`` nodes: distances and predecessors, ``(n0, n_nodes)`` each.

    scipy's search holds the GIL; where :func:`_search_workers` allows, the sources are split over that many
    processes (forked: nothing is imported again; they run scipy's search alone, no OpenMP), the parent
    searching the last share. Each source's search is independent: the tables are those of one call.
    """
    workers = _search_workers(n0, graph.shape[0])
    parts = np.array_split(np.arange(n0), workers)
    if workers == 1:
        return dijkstra(graph, directed=False, indices=parts[0], return_predecessors=True)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with warnings.catch_warnings():  # Python >= 3.12 warns of fork in a threaded process: the child runs no
        warnings.simplefilter("ignore", DeprecationWarning)  # lock-taking code, only scipy's search
        with ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(dijkstra, graph, directed=False, indices=part, return_predecessors=True)
                       for part in parts[:-1]]
            last = dijkstra(graph, directed=False, indices=parts[-1], return_predecessors=True)
            done = [f.result() for f in futures] + [last]
    return np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done])


def routes(predecessors: np.ndarray, union: np.ndarray, src: np.ndarray, tgt: np.ndarray, n0: int,
           straight: np.ndarray | None = None):
    """The routes of pairs ``(src, tgt)`` (indices into the two snapshots) as node lists.

    Parameters
    ----------
    predecessors
        From :func:`graph_geodesics`.
    union
        The two snapshots stacked (sources first), ``(n0 + n1, d)``.
    src, tgt
        Pairs of source and target cells.
    n0
        Number of source cells.
    straight
        Pairs that keep their straight line (two nodes) whatever the graph says; default: none.

    Returns
    -------
    ptr, nodes, cum
        Pair ``p``'s route is ``nodes[ptr[p]:ptr[p + 1]]`` (indices into ``union``, from its source to
        its target) with arc-length fractions ``cum[ptr[p]:ptr[p + 1]]`` (0 to 1). Unconnected pairs,
        and pairs at one place, get the straight route (two nodes).
    """
    src, tgt = np.asarray(src, dtype=np.int64), np.asarray(tgt, dtype=np.int64)
    keep = np.zeros(len(src), dtype=bool) if straight is None else np.asarray(straight, dtype=bool)
    if len(keep) != len(src) or len(src) != len(tgt):
        raise ValueError(f"routes needs one source, target (and straight flag) per pair; got {len(src)} sources, "
                         f"{len(tgt)} targets and {len(keep)} flags.")
    # every pair walks its predecessors back from its target at once, a hop per round
    node = n0 + tgt
    walk = [node]
    active = ~keep
    while active.any():
        node = node.copy()
        node[active] = predecessors[src[active], node[active]]
        walk.append(node)
        active &= (node != src) & (node >= 0)
    if len(walk) == 1:  # every pair kept straight: room for the straight route [target, source]
        walk.append(src)
    walk = np.stack(walk, axis=1)  # (pairs, rounds), target first; a finished walk repeats its last node
    at_source = walk == src[:, None]
    reached = at_source.any(axis=1) & ~keep
    walk[~reached, 1] = src[~reached]  # not connected, or kept straight: the straight route
    length = np.where(reached, np.argmax(at_source, axis=1) + 1, 2)
    # each route from its source to its target: the walk's first ``length`` nodes, reversed
    back = length[:, None] - 1 - np.arange(walk.shape[1])
    nodes = np.take_along_axis(walk, np.maximum(back, 0), axis=1)[back >= 0]
    cum, total = _arc_fractions(union, nodes, length)
    flat = total <= 0  # a pair at one place: its two ends alone, fractions 0 and 1
    if flat.any():
        ends = np.cumsum(length)
        inner = np.ones(len(nodes), dtype=bool)
        inner[ends - length] = inner[ends - 1] = False
        nodes = nodes[~(np.repeat(flat, length) & inner)]
        length = np.where(flat, 2, length)
        cum, _ = _arc_fractions(union, nodes, length)
        cum[np.repeat(flat, length)] = np.tile([0.0, 1.0], int(flat.sum()))
    return np.concatenate([[0], np.cumsum(length)]).astype(np.int64), nodes, cum


def _arc_fractions(union: np.ndarray, nodes: np.ndarray, length: np.ndarray):
    """Arc-length fractions along routes stored one after another (``length`` nodes each), and their lengths."""
    ends = np.cumsum(length)
    seg = np.zeros(len(nodes))
    seg[1:] = np.linalg.norm(np.diff(union[nodes], axis=0), axis=1)
    seg[ends - length] = 0.0  # a route's first node: no hop into it
    cum = np.cumsum(seg)
    cum -= np.repeat(cum[ends - length], length)
    total = cum[ends - 1].copy()
    cum /= np.repeat(np.where(total > 0, total, 1.0), length)
    cum[ends - 1] = 1.0
    return cum, total


def route_keys(ptr: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Pair ``p``'s arc-length fractions offset by ``p``: one sorted array in which :func:`along`
    finds every pair's hop with a single search."""
    return np.arange(len(ptr) - 1, dtype=np.float64).repeat(np.diff(ptr)) + cum


def along(ptr: np.ndarray, cum: np.ndarray, key: np.ndarray, pair: np.ndarray, pos: np.ndarray):
    """Where on their routes pairs ``pair`` are at arc-length fractions ``pos``.

    ``key`` is :func:`route_keys` of ``ptr`` and ``cum``.

    Returns
    -------
    a, b, f, length
        Indices (into the routes' node array) of the hop each pair is on, the fraction ``f`` of that
        hop, and the hop's share ``cum[b] - cum[a]`` of the route (the velocity is the hop vector
        divided by it).
    """
    start, end = ptr[pair], ptr[pair + 1]
    a = np.searchsorted(key, pair + np.clip(pos, 0.0, 1.0), side="right") - 1
    a = np.clip(a, start, end - 2)
    b = a + 1
    share = np.maximum(cum[b] - cum[a], 1e-12)
    f = np.clip((pos - cum[a]) / share, 0.0, 1.0)
    return a, b, f, share
