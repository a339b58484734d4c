"""Paths that follow the data: shortest paths through a neighbour graph of the two snapshots of a gap.

A straight line between coupled cells may cross states no cell was seen in: on a 2-D layout of a
branching system (a force-directed or UMAP embedding, where Euclidean straight lines mean little) the
line from a progenitor to a cell at the tip of a curved branch cuts through the empty middle. The
*graph path* joins the pair through the cells of the two snapshots instead: the union of both is a
k-nearest-neighbour graph whose edges cost their squared length, so that a path prefers many short
hops through dense regions to a few long ones through sparse ones (the graph form of a density
metric, as in metric flow matching), and the shortest path is the pair's route. The couplings are
solved on the squared route lengths, so cells are paired with partners they can reach through the data.

A pair moves along its route at constant speed (by arc length), so its velocity is exact and the
pathwise estimator takes it as it is. Only gaps whose couplings have explicit pairs (``"ot"``,
``"weighted"``, ``"uot"``) can follow routes; the noise correction of straight paths does not apply.

Cost: one Dijkstra search per source cell of each chunk (:attr:`PathConfig.max_plan_size`, at most
:data:`GRAPH_MAX_PLAN` with routes), about 1 s per 1,000 x 1,000 chunk in 2-D.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from sklearn.neighbors import NearestNeighbors

GRAPH_NEIGHBOURS = 15  # neighbours per cell (scanpy's default for the neighbour graph)
GRAPH_MAX_PLAN = 4_000_000  # largest n_source x n_target chunk with routes (its tables: ~100 MB)


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
    hops, predecessors = dijkstra(graph, directed=False, indices=np.arange(n0), return_predecessors=True)
    route = hops[:, n0:]
    cost = route**2
    unreachable = ~np.isfinite(cost)
    if unreachable.any():
        euclid = ((union[:n0, None, :] - union[None, n0:, :]) ** 2).sum(-1)
        top = cost[~unreachable].max() if (~unreachable).any() else 0.0
        cost = np.where(unreachable, top + euclid, cost)
    return cost, predecessors


def routes(predecessors: np.ndarray, union: np.ndarray, src: np.ndarray, tgt: np.ndarray, n0: int):
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

    Returns
    -------
    ptr, nodes, cum
        Pair ``p``'s route is ``nodes[ptr[p]:ptr[p + 1]]`` (indices into ``union``, from its source to
        its target) with arc-length fractions ``cum[ptr[p]:ptr[p + 1]]`` (0 to 1). Unconnected pairs,
        and pairs at one place, get the straight route (two nodes).
    """
    chains, fractions = [], []
    for i, j in zip(src, tgt):
        node, chain = n0 + int(j), [n0 + int(j)]
        while node != i and node >= 0:
            node = int(predecessors[i, node])
            chain.append(node)
        if node != i:  # not connected
            chain = [n0 + int(j), int(i)]
        chain = np.asarray(chain[::-1], dtype=np.int64)
        seg = np.linalg.norm(np.diff(union[chain], axis=0), axis=1)
        total = seg.sum()
        if total <= 0:
            chain, cum = chain[[0, -1]], np.array([0.0, 1.0])
        else:
            cum = np.concatenate([[0.0], np.cumsum(seg)]) / total
            cum[-1] = 1.0
        chains.append(chain)
        fractions.append(cum)
    ptr = np.concatenate([[0], np.cumsum([len(c) for c in chains])]).astype(np.int64)
    return ptr, np.concatenate(chains), np.concatenate(fractions)


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
