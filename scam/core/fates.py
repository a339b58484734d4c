"""Fate probabilities on arrays: where the descendants of a cell go, through a chain of couplings.

A deterministic flow moves a cell to one point; a cell's fate is where its *descendants* go, and they
spread. Between two consecutive observed times ``t_k < t_{k+1}`` the descendants of a cell ``x`` are
spread over the observed cells of ``t_{k+1}`` by an entropic coupling with the Gaussian kernel
``N(x, C_k)`` (a Schrödinger bridge whose reference process is a Brownian motion: Sinkhorn scaling lets
every observed cell of ``t_{k+1}`` receive its share of the descendant mass, and its potentials absorb a
gradient drift, so the kernel need not be moved by the flow), with row masses the model's descendant
masses (growth). The fate of a cell at ``t_s`` in the groups observed at ``t_T`` is its absorption
probability through the chain of these couplings, each path weighted by its descendant mass.

The covariance ``C_k`` is the uncertainty of where descendants go, measured on the data:

- the **diffusion** the snapshots imply (:func:`diffusion_from_potential`): a model without noise learns
  the probability-flow velocity ``grad s_t = b - sigma^2 / 2 grad log rho_t``; when the drift ``b`` does
  not change with time, ``s_{t_b} - s_{t_a} = -sigma^2 / 2 (log rho_{t_b} - log rho_{t_a}) + const``, so
  the potential's change between two observed times, set beside the log-density ratio of the two
  snapshots (a nearest-neighbour classifier), gives ``sigma^2``; descendants spread by
  ``sigma^2 (t_{k+1} - t_k) I``;
- the **model's own error** (:func:`push_residual`): the covariance of the residual between the pushed
  cells of ``t_k`` and their exact-OT partners among the observed cells of ``t_{k+1}`` (what the flow
  misses, plus the matching noise of the plan: the resolution at which the data locate a descendant).
"""

from __future__ import annotations

import numpy as np
import ot
import scipy.sparse as sp
from scipy.special import logsumexp
from sklearn.neighbors import NearestNeighbors

MAX_OT_CELLS = 1500  # cells per side of the exact-OT plan that measures the push residual
MAX_CLASSIFIER_CELLS = 3000  # cells per snapshot for the log-density ratio
KERNEL_RADIUS = 3.0  # the kernel keeps neighbours up to this many standard deviations (Mahalanobis)
MIN_NEIGHBORS, MAX_NEIGHBORS = 32, 512


def _subsample(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, m, replace=False)) if n > m else np.arange(n)


def push_residual(pushed: np.ndarray, weights: np.ndarray, observed: np.ndarray, *,
                  rng: np.random.Generator) -> np.ndarray:
    """Covariance of the residual between pushed cells and their exact-OT partners among observed cells.

    Parameters
    ----------
    pushed
        Cells of ``t_k`` moved by the model to ``t_{k+1}``, ``(n, d)``.
    weights
        Their relative descendant masses, ``(n,)`` (ones for balanced models).
    observed
        Observed cells of ``t_{k+1}``, ``(m, d)``.
    rng
        Generator (subsamples of at most ``MAX_OT_CELLS`` cells per side).

    Returns
    -------
    ``(d, d)`` covariance (plan-weighted, about the mean residual: a shift of the whole population is
    the model's bias, not a spread of descendants).
    """
    i = _subsample(len(pushed), MAX_OT_CELLS, rng)
    j = _subsample(len(observed), MAX_OT_CELLS, rng)
    a, b = np.asarray(pushed[i], np.float64), np.asarray(observed[j], np.float64)
    w = np.asarray(weights, np.float64)[i]
    w = w / w.sum()
    cost = ot.dist(a, b)
    plan = ot.emd(w, np.full(len(b), 1.0 / len(b)), cost, numItermax=max(1_000_000, 50 * cost.size))
    ii, jj = np.nonzero(plan > 0)
    p = plan[ii, jj] / plan[ii, jj].sum()
    r = b[jj] - a[ii]
    r -= p @ r
    return (r * p[:, None]).T @ r


def log_density_ratio(xa: np.ndarray, xb: np.ndarray, at: np.ndarray, *, n_neighbors: int | None = None) -> np.ndarray:
    """``log rho_b(x) - log rho_a(x)`` at the points ``at``, from a nearest-neighbour classifier.

    The pooled cells of both samples (equal numbers) are searched for the ``n_neighbors`` nearest to each
    point (default ``sqrt`` of the pooled size); the share ``p`` from ``b`` gives ``logit(p)`` (with half a
    count added to each side, so that the logit stays finite).
    """
    pooled = np.concatenate([xa, xb])
    label = np.r_[np.zeros(len(xa)), np.ones(len(xb))]
    k = n_neighbors or max(10, int(np.sqrt(len(pooled))))
    _, nbr = NearestNeighbors(n_neighbors=k).fit(pooled).kneighbors(at)
    nb = label[nbr].sum(axis=1)
    return np.log((nb + 0.5) / (k - nb + 0.5)) - np.log(len(xb) / len(xa))


def diffusion_from_potential(potential, xs: list[np.ndarray], times: np.ndarray, *,
                             rng: np.random.Generator) -> tuple[float, dict]:
    """The noise ``sigma^2`` that a probability-flow potential implies, if the drift does not change with time.

    For each pair of consecutive observed times the potential's change ``ds = s_{t_b}(x) - s_{t_a}(x)`` and
    the log-density ratio ``dl`` of the two snapshots are taken at the pooled cells of both; the model
    ``dl = -2 / sigma^2 ds + c`` (one intercept per pair) is fitted by least squares of ``dl`` on ``ds``
    (the ratio is the noisy side: as the response it does not bias the slope).

    Parameters
    ----------
    potential
        ``potential(x, t) -> (n,)``, in data units (its gradient is the velocity).
    xs
        Observed cells per time, ``(n_k, d)`` each.
    times
        The observed times.
    rng
        Generator (subsamples of at most ``MAX_CLASSIFIER_CELLS`` cells per snapshot).

    Returns
    -------
    ``sigma^2`` (``>= 0``; 0 when the slope has the wrong sign: the snapshots then show no noise that a
    static drift would explain) and a record (``slope``, ``r`` the correlation of ``ds`` and ``dl``,
    ``n_pairs``).
    """
    ds_all, dl_all = [], []
    for k in range(len(times) - 1):
        m = min(len(xs[k]), len(xs[k + 1]), MAX_CLASSIFIER_CELLS)
        xa = xs[k][_subsample(len(xs[k]), m, rng)]
        xb = xs[k + 1][_subsample(len(xs[k + 1]), m, rng)]
        at = np.concatenate([xa, xb])
        ds = potential(at, times[k + 1]) - potential(at, times[k])
        dl = log_density_ratio(xa, xb, at)
        ds_all.append(ds - ds.mean())
        dl_all.append(dl - dl.mean())
    ds, dl = np.concatenate(ds_all), np.concatenate(dl_all)
    var = float(ds @ ds)
    cov = float(ds @ dl)
    slope = cov / var if var > 0 else 0.0
    r = cov / np.sqrt(var * float(dl @ dl)) if var > 0 and dl @ dl > 0 else 0.0
    sigma2 = -2.0 / slope if slope < 0 else 0.0
    return sigma2, {"slope": slope, "r": float(r), "n_pairs": len(times) - 1}


def _whitener(cov: np.ndarray) -> np.ndarray:
    """``W`` with ``W' W = cov^-1`` (a ridge keeps flat directions finite)."""
    lam, u = np.linalg.eigh((cov + cov.T) / 2)
    floor = 1e-6 * max(float(lam.max()), 1e-300)
    return (u / np.sqrt(np.maximum(lam, floor))).T


def kernel_coupling(pushed: np.ndarray, weights: np.ndarray, observed: np.ndarray, cov: np.ndarray, *,
                    n_iter: int = 50, tol: float = 1e-3) -> sp.csr_matrix:
    """Row-stochastic matrix of where the descendants of each pushed cell go among the observed cells.

    The entropic coupling between the pushed cells (row masses ``weights``) and the observed cells
    (uniform masses) with the Gaussian kernel ``exp(-(y - x)' cov^-1 (y - x) / 2)``, truncated to the
    observed cells within ``KERNEL_RADIUS`` standard deviations (at least ``MIN_NEIGHBORS``, at most
    ``MAX_NEIGHBORS`` per row), scaled by log-domain Sinkhorn iterations until the column masses are
    within ``tol`` (relative) or ``n_iter`` runs; each row is then normalised to 1: the conditional
    distribution of a cell's descendants.

    Parameters
    ----------
    pushed
        ``(n, d)`` cells moved by the model to the observed time.
    weights
        ``(n,)`` relative descendant masses.
    observed
        ``(m, d)`` observed cells.
    cov
        ``(d, d)`` covariance of the descendants about the pushed point.
    n_iter, tol
        Sinkhorn iterations and tolerance.

    Returns
    -------
    ``(n, m)`` CSR matrix, rows summing to 1.
    """
    n, m = len(pushed), len(observed)
    w = _whitener(np.asarray(cov, np.float64))
    a, b = np.asarray(pushed, np.float64) @ w.T, np.asarray(observed, np.float64) @ w.T
    tree = NearestNeighbors().fit(b)
    k = min(MIN_NEIGHBORS, m)
    while True:
        dist, nbr = tree.kneighbors(a, n_neighbors=k)
        if k >= min(MAX_NEIGHBORS, m) or np.median(dist[:, -1]) >= KERNEL_RADIUS:
            break
        k = min(2 * k, MAX_NEIGHBORS, m)
    logk = -0.5 * dist**2
    logk -= logk.max(axis=1, keepdims=True)
    loga = np.log(np.maximum(np.asarray(weights, np.float64), 1e-300))
    loga -= logsumexp(loga)
    cols = nbr.ravel()
    order = np.argsort(cols, kind="stable")
    sorted_cols = cols[order]
    covered, starts = np.unique(sorted_cols, return_index=True)
    logb = np.full(len(covered), -np.log(len(covered)))
    g = np.zeros(m)
    flat = logk.ravel()
    for _ in range(n_iter):
        f = loga - logsumexp(logk + g[nbr], axis=1)
        vals = (flat + np.repeat(f, k))[order]
        mx = np.maximum.reduceat(vals, starts)
        lse = mx + np.log(np.add.reduceat(np.exp(vals - np.repeat(mx, np.diff(np.r_[starts, len(vals)]))), starts))
        if np.max(np.abs(np.expm1(lse - logb))) < tol:
            break
        g[covered] = logb - lse
    logp = logk + g[nbr]
    p = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
    return sp.csr_matrix((p.ravel(), (np.repeat(np.arange(n), k), cols)), shape=(n, m))


def absorption(chain: list[sp.csr_matrix], onehot: np.ndarray, masses: list[np.ndarray] | None = None) -> np.ndarray:
    """Absorption probabilities through a chain of row-stochastic matrices into labelled end cells.

    ``chain[0] @ diag(masses[0]) @ chain[1] @ ... @ onehot``, evaluated right to left (a dense
    ``(cells, groups)`` block at each step); rows are renormalised to sum to 1.

    Parameters
    ----------
    chain
        Row-stochastic matrices ``(n_0, n_1), (n_1, n_2), ...``.
    onehot
        ``(n_last, n_groups)``: the group of each end cell (rows may also be distributions).
    masses
        Optional relative descendant masses of the intermediate cells (``n_1, ..., n_{last-1}``), so that
        a path through a proliferating cell counts more than one through a dying cell.

    Returns
    -------
    ``(n_0, n_groups)``.
    """
    out = np.asarray(onehot, np.float64)
    for k in range(len(chain) - 1, -1, -1):
        if masses is not None and k < len(chain) - 1:
            out = out * np.asarray(masses[k], np.float64)[:, None]
        out = chain[k] @ out
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)
