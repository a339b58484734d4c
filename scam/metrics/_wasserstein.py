"""Exact Wasserstein distances between point clouds (POT) and the Gaussian closed form."""

from __future__ import annotations

import warnings

import numpy as np
import ot

from ._checks import prepare

_MIN_ITER = 10_000_000


def _num_iter_max(n: int, m: int) -> int:
    """Iteration cap of the network simplex: at least 1e7, growing with the problem size."""
    return int(max(_MIN_ITER, 10 * n * m))


def wasserstein(
    x,
    y,
    *,
    p: int = 1,
    a=None,
    b=None,
    max_cells: int | None = None,
    rng: int | np.random.Generator | None = 0,
    num_itermax: int | None = None,
) -> float:
    """Exact Wasserstein-``p`` distance between two (weighted) point clouds.

    Solves the discrete optimal transport problem exactly with POT's network simplex (:func:`ot.emd2`).
    ``p=1`` uses the Euclidean ground cost and returns the optimal cost; ``p=2`` uses the squared
    Euclidean cost and returns the square root of the optimal cost.

    Parameters
    ----------
    x, y
        Points, arrays of shape ``(n, d)`` and ``(m, d)`` (dense or scipy sparse; a 1-D array is read as
        ``n`` points on the line). Must be finite and non-empty, with the same ``d``.
    p
        Order of the distance: 1 or 2.
    a, b
        Optional non-negative weights of the points of ``x`` (length ``n``) and ``y`` (length ``m``);
        each is normalised to sum 1. ``None`` means uniform weights.
    max_cells
        If given, each side with more than ``max_cells`` points is subsampled uniformly without
        replacement to ``max_cells`` points; the weights of the kept points are renormalised. The exact
        solver needs an ``n x m`` cost matrix, so this bounds memory (``8 n m`` bytes) and time.
    rng
        Seed or :class:`numpy.random.Generator` for the subsampling (no global seeding).
    num_itermax
        Iteration cap of the network simplex; default ``max(1e7, 10 n m)``, enough to reach the exact
        solution (a lower cap warns and returns an upper bound).

    Returns
    -------
    float
        ``W_p(x, y)``, in the units of the points.

    Warns
    -----
    UserWarning
        If the network simplex stopped at its iteration cap (``numItermax``) before reaching
        optimality; the returned value is then an upper bound of the true distance.

    Notes
    -----
    ``W_1 <= W_2`` for any pair of distributions. On finite samples the empirical distance is biased
    upwards with respect to the distance between the underlying distributions, notably in high
    dimension; compare methods on equal sample sizes.

    Examples
    --------
    >>> import numpy as np
    >>> from scam.metrics import wasserstein
    >>> x = np.zeros((5, 2))
    >>> round(wasserstein(x, x + [3.0, 4.0]), 6)
    5.0
    """
    if p not in (1, 2) or isinstance(p, bool):
        raise ValueError(f"`p` must be 1 or 2, got {p!r}.")
    xa, ya, wa, wb = prepare(x, y, a, b, max_cells, rng)
    metric = "euclidean" if p == 1 else "sqeuclidean"
    cost = ot.dist(xa, ya, metric=metric)
    num_itermax = _num_iter_max(xa.shape[0], ya.shape[0]) if num_itermax is None else int(num_itermax)
    with warnings.catch_warnings():
        # POT warns on its own; we re-issue one clearer warning below from the log.
        warnings.filterwarnings("ignore", message="numItermax reached", category=UserWarning)
        value, log = ot.emd2(wa, wb, cost, numItermax=num_itermax, log=True)
    if log.get("warning"):
        warnings.warn(
            f"scam.metrics.wasserstein: the exact OT solver stopped before optimality "
            f"(numItermax={num_itermax} reached for {xa.shape[0]} x {ya.shape[0]} points; POT: "
            f"{log['warning']!r}). The returned W{p} is an upper bound; subsample with `max_cells`.",
            UserWarning,
            stacklevel=2,
        )
    value = max(float(value), 0.0)
    return value if p == 1 else float(np.sqrt(value))


def _psd_sqrt(mat: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    vals, vecs = np.linalg.eigh(mat)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def _check_gaussian(mean, cov, name: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    c = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    if m.ndim != 1:
        raise ValueError(f"`mean{name}` must be 1-D, got shape {m.shape}.")
    d = m.shape[0]
    if c.shape != (d, d):
        raise ValueError(f"`cov{name}` must have shape ({d}, {d}) to match `mean{name}`, got {c.shape}.")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(c))):
        raise ValueError(f"`mean{name}` and `cov{name}` must be finite.")
    scale = max(np.abs(c).max(), 1.0)
    if not np.allclose(c, c.T, rtol=0.0, atol=1e-10 * scale):
        raise ValueError(f"`cov{name}` must be symmetric.")
    c = (c + c.T) / 2
    if np.linalg.eigvalsh(c).min() < -1e-10 * scale:
        raise ValueError(f"`cov{name}` must be positive semi-definite.")
    return m, c


def gaussian_w2(mean0, cov0, mean1, cov1) -> float:
    """Closed-form Wasserstein-2 (Bures-Wasserstein) distance between two Gaussians.

    .. math::

        W_2^2 = \\lVert m_0 - m_1 \\rVert^2
        + \\operatorname{tr}\\bigl(C_0 + C_1 - 2 (C_0^{1/2} C_1 C_0^{1/2})^{1/2}\\bigr)

    Parameters
    ----------
    mean0, mean1
        Means, shape ``(d,)``.
    cov0, cov1
        Covariances, symmetric positive semi-definite, shape ``(d, d)``.

    Returns
    -------
    float
        ``W_2(N(mean0, cov0), N(mean1, cov1))``.

    Examples
    --------
    >>> from scam.metrics import gaussian_w2
    >>> round(gaussian_w2([0, 0], [[1, 0], [0, 1]], [3, 4], [[1, 0], [0, 1]]), 6)
    5.0
    """
    m0, c0 = _check_gaussian(mean0, cov0, "0")
    m1, c1 = _check_gaussian(mean1, cov1, "1")
    if m0.shape != m1.shape:
        raise ValueError(f"The two Gaussians must have the same dimension, got {m0.shape[0]} and {m1.shape[0]}.")
    r0 = _psd_sqrt(c0)
    cross = _psd_sqrt(r0 @ c1 @ r0)
    w2sq = float(np.sum((m0 - m1) ** 2) + np.trace(c0) + np.trace(c1) - 2.0 * np.trace(cross))
    return float(np.sqrt(max(w2sq, 0.0)))
