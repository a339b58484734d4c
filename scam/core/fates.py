"""Fate probabilities on arrays: where the descendants of a cell go, through the cells observed in between.

A deterministic flow moves a cell to one point; a cell's fate is where its *descendants* go, and they spread.
They are carried from observed time to observed time and land on the cells observed there, in one of two
constructions:

- **flow** (:func:`flow_chain`, :func:`flow_absorption`; no noise): each cell is pushed by the model's flow
  over the gap ``t_k -> t_{k+1}``, and its descendants are the observed cells of ``t_{k+1}`` weighted by a
  kernel centred on ``push(x)`` with the distribution of the model's own error (below; a Student t fitted to
  it, :func:`student_fit`, Gaussian where that fits best): the kernel's conditional average over the cells
  that are there, one step per gap, in log space;
- **bridge** (:func:`descendant_chain`, :func:`absorption`; a noise ``sigma``): the gap is cut into steps of
  length ``h`` whose populations are the model's push of the cells of ``t_k``, and consecutive steps are
  joined with the Gaussian kernel ``N(x, sigma^2 h I + R_k)`` (a Schrödinger bridge whose reference process is
  a Brownian motion: Sinkhorn scaling lets every cell of the next step receive its share of the descendant
  mass, and its potentials absorb the drift, so the kernel need not be moved by the flow). Short steps
  matter: one step per gap misses how the drift stretches the noise (near a saddle, descendants spread much
  more than ``sigma^2 dt``).

Either way the fate of a cell at ``t_s`` in the groups observed at ``t_T`` is its absorption probability
through the chain, each path weighted by its descendant mass (growth). The spread is measured on the data:

- the **diffusion** the snapshots imply (:func:`diffusion_from_potential`): a model without noise learns
  the probability-flow velocity ``grad s_t = b - sigma^2 / 2 grad log rho_t``; when the drift ``b`` does
  not change with time, ``s_{t_b} - s_{t_a} = -sigma^2 / 2 (log rho_{t_b} - log rho_{t_a}) + const``, so
  the potential's change between two observed times, set beside the log-density ratio of the two
  snapshots (a nearest-neighbour classifier), gives ``sigma^2``. The estimate is used only where the data
  check the assumption and allow the noise (:func:`descendant_noise`, :func:`diffusion_bound`): with three
  time points a noise and a drift that changes with time give the same snapshots, and differentiating cells
  change their drift as they commit;
- the **model's own error** (:func:`push_residual`): the covariance of the residual between the pushed
  cells of ``t_k`` and their exact-OT partners among the observed cells of ``t_{k+1}`` (what the flow
  misses, plus the matching noise of the plan: the resolution at which the data locate a descendant).

One module of about 600 lines: the noise estimate, its bound, the kernels and both chains share the
conventions of one construction (units, step lengths, subsamples, residual); :mod:`scam.core.fate_estimators`
wraps them behind the estimators' interface.
"""

from __future__ import annotations

import numpy as np
import ot
import scipy.sparse as sp
from scipy.special import gammaln
from sklearn.neighbors import NearestNeighbors

MAX_OT_CELLS = 1500  # cells per side of the exact-OT plan that measures the push residual
RESIDUAL_DRAWS = 4  # independent subsample plans averaged into the residual when a side has more cells
MAX_CLASSIFIER_CELLS = 3000  # cells per snapshot for the log-density ratio
KERNEL_RADIUS = 3.0  # the kernel keeps neighbours up to this many standard deviations (Mahalanobis)
MIN_NEIGHBORS, MAX_NEIGHBORS = 32, 512
N_STEPS = 4  # steps per gap between observed times of the chain of couplings
MAX_CHAIN_CELLS = 3000  # cells per intermediate population of the chain
DOF_GRID = (1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, np.inf)  # the residual kernel's t: candidates
EM_ITER, EM_TOL = 100, 1e-4  # EM of the t's scale per candidate: at most this many steps, relative tolerance


def _subsample(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, m, replace=False)) if n > m else np.arange(n)


def push_residual(pushed: np.ndarray, weights: np.ndarray, observed: np.ndarray, *,
                  rng: np.random.Generator) -> np.ndarray:
    """Covariance of the residual between pushed cells and their exact-OT partners among observed cells.

    Where a side has more than ``MAX_OT_CELLS`` cells, the plan is solved on subsamples, and the covariance
    is the mean over ``RESIDUAL_DRAWS`` independent subsamples: it sets the width of the fates' kernel,
    and one subsample plan's estimate varies between draws enough to move the fates (``docs/fates.md``).

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
    r, p = residual_samples(pushed, weights, observed, rng=rng)
    return (r * p[:, None]).T @ r


def residual_samples(pushed: np.ndarray, weights: np.ndarray, observed: np.ndarray, *,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The residuals of :func:`push_residual`'s plans: every pair of the plans, its residual and its mass.

    Returns
    -------
    ``(n_pairs, d)`` residuals (each plan's about its own plan-weighted mean) and ``(n_pairs,)`` masses
    (each plan's sum to ``1 / n_plans``, so all sum to 1).
    """
    draws = RESIDUAL_DRAWS if max(len(pushed), len(observed)) > MAX_OT_CELLS else 1
    pairs = [_plan_residual(pushed, weights, observed, rng) for _ in range(draws)]
    return np.concatenate([r for r, _ in pairs]), np.concatenate([p for _, p in pairs]) / draws


def _plan_residual(pushed, weights, observed, rng) -> tuple[np.ndarray, np.ndarray]:
    """One exact-OT plan between subsamples of at most ``MAX_OT_CELLS`` a side: its pairs' residuals (about
    their plan-weighted mean) and masses (summing to 1)."""
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
    return r - p @ r, p


def student_fit(residuals: np.ndarray, masses: np.ndarray) -> tuple[np.ndarray, float]:
    """Maximum-likelihood centred multivariate Student t of weighted residuals: its scale matrix and degrees
    of freedom.

    For each ``nu`` of ``DOF_GRID`` (the Gaussian, ``nu = inf``, included) the scale ``S`` is fitted by the
    EM iteration of the t as a scale mixture of Gaussians (``S = sum p_i w_i r_i r_i'`` with
    ``w_i = (nu + d) / (nu + r_i' S^-1 r_i)``); the ``nu`` of the largest weighted log-likelihood wins (a
    profile likelihood, walked from the Gaussian towards heavier tails until it falls). Residuals of a model
    that misplaces some cells by much more than most (cells sent down the wrong branch, mismatched pairs)
    have heavy tails: a Gaussian of their covariance is then too wide for most cells and too narrow for those.

    Parameters
    ----------
    residuals
        ``(n, d)``, centred.
    masses
        ``(n,)`` non-negative weights (normalised here).

    Returns
    -------
    ``(d, d)`` scale (the covariance for ``nu = inf``; ``nu / (nu - 2)`` times smaller than the covariance
    for ``nu > 2``) and ``nu`` (``inf``: Gaussian).
    """
    r = np.asarray(residuals, np.float64)
    p = np.maximum(np.asarray(masses, np.float64), 0.0)
    p = p / p.sum()
    d = r.shape[1]
    cov = (r * p[:, None]).T @ r
    if np.trace(cov) <= 0 or np.count_nonzero(p) <= d:
        return cov, np.inf
    best, scale = (-np.inf, cov, np.inf), cov
    m = np.sum((r @ _whitener(scale).T) ** 2, axis=1)  # squared Mahalanobis distances under ``scale``
    for nu in sorted(DOF_GRID, reverse=True):  # the Gaussian first; each t's EM starts from its lighter-tailed
        for _ in range(EM_ITER if np.isfinite(nu) else 0):  # neighbour's scale (heavier tails: a narrower scale)
            new = (r * (p * (nu + d) / (nu + m))[:, None]).T @ r
            done = np.abs(new - scale).max() <= EM_TOL * np.abs(scale).max()
            scale = new
            m = np.sum((r @ _whitener(scale).T) ** 2, axis=1)
            if done:
                break
        lam = np.linalg.eigvalsh((scale + scale.T) / 2)
        logdet = np.sum(np.log(np.maximum(lam, 1e-6 * max(float(lam.max()), 1e-300))))  # as the whitener's floor
        if np.isfinite(nu):
            ll = (gammaln((nu + d) / 2) - gammaln(nu / 2) - d / 2 * np.log(nu * np.pi)
                  - (nu + d) / 2 * np.log1p(m / nu))
        else:
            ll = -d / 2 * np.log(2 * np.pi) - m / 2
        total = float(p @ ll) - logdet / 2
        if total <= best[0]:  # past the profile likelihood's peak (it has one in nu): heavier tails fit worse
            break
        best = (total, scale, float(nu))
    return best[1], best[2]


def log_density_ratio(xa: np.ndarray, xb: np.ndarray, at: np.ndarray, *, n_neighbors: int | None = None) -> np.ndarray:
    """``log rho_b(x) - log rho_a(x)`` at the points ``at``, from a nearest-neighbour classifier.

    The pooled cells of both samples (equal numbers) are searched for the ``n_neighbors`` nearest to each
    point (default ``sqrt`` of the pooled size); the share ``p`` from ``b`` gives ``logit(p)`` (with half a
    count added to each side, so that the logit stays finite).
    """
    pooled = np.concatenate([xa, xb])
    label = np.r_[np.zeros(len(xa)), np.ones(len(xb))]
    k = min(len(pooled), n_neighbors or max(10, int(np.sqrt(len(pooled)))))
    _, nbr = NearestNeighbors(n_neighbors=k).fit(pooled).kneighbors(at)
    nb = label[nbr].sum(axis=1)
    return np.log((nb + 0.5) / (k - nb + 0.5)) - np.log(len(xb) / len(xa))


def diffusion_from_potential(potential, xs: list[np.ndarray], times: np.ndarray, *,
                             rng: np.random.Generator) -> tuple[float, dict]:
    """The noise ``sigma^2`` that a probability-flow potential implies, if the drift does not change with time.

    Under a drift ``b`` that does not change with time the probability-flow potential is
    ``s_t = -sigma^2 / 2 log rho_t + U`` (``U`` fixed), so between two times the potential's change ``ds``
    and the change of the log-density ``dl`` satisfy ``dl = -2 / sigma^2 ds + c``. The potential is compared
    where the model is faithful: a model fitted on interpolants between consecutive snapshots learns, inside
    each gap, the gap's mean motion, which is the instantaneous one at the gap's *midpoint* and not at its
    ends (at a snapshot time the potential averages the two gaps that meet there, and early fast spreading is
    lost). So with three or more snapshots, for each pair of consecutive gaps ``(t_a, t_b), (t_b, t_c)``,
    ``ds = s_{m_bc}(x) - s_{m_ab}(x)`` at the two gap midpoints, and ``dl = (log rho_c - log rho_a) / 2``
    (the log-density at a midpoint taken as the mean of the gap's ends), at the pooled cells of the three
    snapshots; with two snapshots, ``ds = s_{t_b} - s_{t_a}`` and ``dl = log rho_b - log rho_a``. The ratios
    come from a nearest-neighbour classifier (:func:`log_density_ratio`). Both sides are noisy (the
    classifier's counts, the model's error), so the slope of the model (one intercept per pair) is the
    geometric mean of the two least-squares regressions, ``-sqrt(var dl / var ds)`` with the sign of their
    correlation (reduced major axis): regressing ``dl`` on ``ds`` alone is pulled towards 0 by the model's
    error (a large ``sigma``), the reverse by the classifier's noise (a small one); the geometric mean
    lies between the two (measured on a simulated double well: docs page "Fate probabilities").

    Parameters
    ----------
    potential
        ``potential(x, t) -> (n,)``, in data units (its gradient is the velocity).
    xs
        Observed cells per time, ``(n_k, d)`` each.
    times
        The observed times.
    rng
        Generator (subsamples of at most ``MAX_CLASSIFIER_CELLS`` cells per snapshot; the classifier takes
        equal numbers from its two snapshots, the smaller one's).

    Returns
    -------
    ``sigma^2`` (``>= 0``; 0 when the slope has the wrong sign: the snapshots then show no noise that a
    static drift would explain) and a record (``slope``, ``r`` the correlation of ``ds`` and ``dl``,
    ``n_pairs``, ``noise_times``: ``"gap midpoints"`` or ``"snapshot times"``).
    """
    times = np.asarray(times, np.float64)
    midpoints = len(times) >= 3
    step = 2 if midpoints else 1  # the classifier compares the snapshots `step` apart
    cells = [x[_subsample(len(x), MAX_CLASSIFIER_CELLS, rng)] for x in xs]  # where both sides are taken
    ds_all, dl_all = [], []
    for k in range(len(times) - step):
        m = min(len(xs[k]), len(xs[k + step]), MAX_CLASSIFIER_CELLS)  # equal numbers for the classifier
        xa, xb = xs[k][_subsample(len(xs[k]), m, rng)], xs[k + step][_subsample(len(xs[k + step]), m, rng)]
        at = np.concatenate(cells[k:k + step + 1])
        dl = log_density_ratio(xa, xb, at) / step  # at the midpoints: half the ratio two snapshots apart
        ta, tb = (times[k] + times[k + step - 1]) / 2, (times[k + 1] + times[k + step]) / 2
        ds = potential(at, tb) - potential(at, ta)
        ds_all.append(ds - ds.mean())
        dl_all.append(dl - dl.mean())
    pair_slopes = [_rma_slope(a, b) for a, b in zip(ds_all, dl_all)]
    ds, dl = np.concatenate(ds_all), np.concatenate(dl_all)
    slope = _rma_slope(ds, dl)
    var_s, var_l = float(ds @ ds), float(dl @ dl)
    r = float(ds @ dl) / np.sqrt(var_s * var_l) if var_s > 0 and var_l > 0 else 0.0
    sigma2 = -2.0 / slope if slope < 0 else 0.0
    return sigma2, {"slope": slope, "r": float(r), "n_pairs": len(ds_all), "pair_slopes": pair_slopes,
                    "noise_times": "gap midpoints" if midpoints else "snapshot times"}


def _rma_slope(ds: np.ndarray, dl: np.ndarray) -> float:
    """Reduced-major-axis slope of centred ``dl`` on centred ``ds`` (0 when either is constant)."""
    var_s, var_l, cov = float(ds @ ds), float(dl @ dl), float(ds @ dl)
    return float(np.sign(cov) * np.sqrt(var_l / var_s)) if var_s > 0 and var_l > 0 else 0.0


def diffusion_bound(xs: list[np.ndarray], times: np.ndarray, *, n_steps: int = N_STEPS) -> float:
    """The largest ``sigma^2`` for which a step of the chain still carries information about where a cell goes.

    By the law of total variance, the spread of one cell's descendants over a step of length ``h`` cannot
    exceed the spread of the whole population at the step's end; for a short step that spread is
    ``sigma^2 h`` per dimension, so ``sigma^2 <= tr Cov(x_{k+1}) / (d h)`` for every gap, with
    ``h = (t_{k+1} - t_k) / n_steps``. A larger noise would make every step's coupling the independent one
    (each cell's descendants spread like the whole next population): the snapshots contradict it.

    Parameters
    ----------
    xs
        Observed cells per time, ``(n_k, d)`` each.
    times
        The observed times, increasing.
    n_steps
        Steps per gap of the chain (:func:`descendant_chain`).

    Returns
    -------
    The bound on ``sigma^2`` (data units squared per time unit).
    """
    d = xs[0].shape[1]
    bounds = []
    for k in range(len(times) - 1):
        h = float(times[k + 1] - times[k]) / n_steps
        spread = float(np.sum(np.var(np.asarray(xs[k + 1], np.float64), axis=0)))
        bounds.append(spread / (d * h))
    return min(bounds)


def descendant_noise(potential, xs: list[np.ndarray], times: np.ndarray, *, n_steps: int = N_STEPS,
                     rng: np.random.Generator) -> tuple[float, dict]:
    """The noise ``sigma^2`` of the descendants for :func:`descendant_chain`, and how it was chosen.

    :func:`diffusion_from_potential` estimates it under a drift that does not change with time. The
    estimate is kept only where the data can check that assumption and agree with it: at least two pairs of
    consecutive gaps (four or more time points), each showing the relation with the same sign (a negative
    slope), and a noise within :func:`diffusion_bound`. Otherwise it is rejected (``sigma^2 = 0``: the
    descendants follow the model's flow and land on the observed cells within the model's own error, the
    push residual; :func:`flow_chain`). With three time points a noise and a drift that changes with time
    give the same snapshots (the potential of a noisy process is the probability flow of a deterministic
    one), and real differentiation changes its drift as cells commit: there the assumption can imply a noise
    that spreads one cell's descendants over the whole next population.

    Parameters
    ----------
    potential
        ``potential(x, t) -> (n,)`` in data units.
    xs
        Observed cells per time.
    times
        The observed times, increasing.
    n_steps
        Steps per gap of the chain.
    rng
        Generator (subsamples of the estimate).

    Returns
    -------
    ``sigma^2`` and a record: ``sigma``, ``sigma_source`` (``"estimated"`` or ``"rejected"``),
    ``sigma_check`` (why), the estimate's ``slope``, ``r``, ``n_pairs`` and ``pair_slopes``,
    ``sigma_estimate`` (before the check) and ``sigma_bound``.
    """
    sigma2, record = diffusion_from_potential(potential, xs, times, rng=rng)
    bound = diffusion_bound(xs, times, n_steps=n_steps)
    checked = record["n_pairs"] >= 2 and all(s < 0 for s in record["pair_slopes"])
    kept = checked and sigma2 <= bound
    if not checked:
        check = (f"{record['n_pairs']} pair of gaps: a drift that does not change with time cannot be checked "
                 "(four or more time points are needed)" if record["n_pairs"] < 2
                 else "the pairs of gaps disagree: the drift changes with time")
    else:
        check = "static drift agrees on every pair of gaps" + (
            "" if kept else "; the noise would spread one cell's descendants wider than the next population")
    record = {"sigma": float(np.sqrt(sigma2)) if kept else 0.0,
              "sigma_source": "estimated" if kept else "rejected", "sigma_check": check,
              "sigma_estimate": float(np.sqrt(sigma2)), "sigma_bound": float(np.sqrt(bound)), **record}
    return (sigma2 if kept else 0.0), record


def _whitener(cov: np.ndarray) -> np.ndarray:
    """``W`` with ``W' W = cov^-1`` (a ridge keeps flat directions finite)."""
    lam, u = np.linalg.eigh((cov + cov.T) / 2)
    floor = 1e-6 * max(float(lam.max()), 1e-300)
    return (u / np.sqrt(np.maximum(lam, floor))).T


def _neighbours(rows: np.ndarray, cols: np.ndarray, *, k_max: int = MAX_NEIGHBORS):
    """The ``k`` nearest ``cols`` of every row (whitened coordinates), ``k`` the number within
    ``KERNEL_RADIUS`` of the median row of a pilot (at least ``MIN_NEIGHBORS``, at most ``k_max``)."""
    tree = NearestNeighbors().fit(cols)
    k_max = min(k_max, len(cols))
    pilot = rows[np.linspace(0, len(rows) - 1, min(len(rows), 256)).astype(int)]
    pdist, _ = tree.kneighbors(pilot, n_neighbors=k_max)
    need = int(np.median(np.sum(pdist < KERNEL_RADIUS, axis=1)))
    k = int(min(k_max, max(min(MIN_NEIGHBORS, k_max), 2 ** int(np.ceil(np.log2(max(need, 1)))))))
    return tree.kneighbors(rows, n_neighbors=k)


def _logsumexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(a - top), axis=axis))


def kernel_coupling(pushed: np.ndarray, weights: np.ndarray, observed: np.ndarray, cov: np.ndarray, *,
                    observed_weights: np.ndarray | None = None, n_iter: int = 200,
                    tol: float = 1e-3) -> sp.csr_matrix:
    """Row-stochastic matrix of where the descendants of each cell go among the cells of the next time.

    The entropic coupling between the cells ``pushed`` (row masses ``weights``) and the cells
    ``observed`` (masses ``observed_weights``, uniform by default) with the Gaussian kernel
    ``exp(-(y - x)' cov^-1 (y - x) / 2)``, truncated to the nearest ``k`` cells of each row, ``k`` the
    number within ``KERNEL_RADIUS`` standard deviations (Mahalanobis) of the median row of a pilot of
    rows (at least ``MIN_NEIGHBORS``, at most ``MAX_NEIGHBORS``), scaled by Sinkhorn iterations on the
    sparse kernel until the column masses are within ``tol`` (total variation) or ``n_iter`` runs; each row is
    then normalised to 1: the conditional distribution of a cell's descendants.

    Parameters
    ----------
    pushed
        ``(n, d)`` cells at the earlier time.
    weights
        ``(n,)`` relative descendant masses.
    observed
        ``(m, d)`` cells at the later time.
    cov
        ``(d, d)`` covariance of the descendants about the cell's position.
    observed_weights
        ``(m,)`` relative masses of the later cells (default uniform: a sample of the later population).
    n_iter, tol
        Sinkhorn iterations and tolerance.

    Returns
    -------
    ``(n, m)`` CSR matrix, rows summing to 1.
    """
    n, m = len(pushed), len(observed)
    w = _whitener(np.asarray(cov, np.float64))
    dist, nbr = _neighbours(np.asarray(pushed, np.float64) @ w.T, np.asarray(observed, np.float64) @ w.T)
    k = nbr.shape[1]
    logk = -0.5 * (dist**2 - dist[:, :1] ** 2)  # each row scaled by its largest entry (absorbed by u)
    kmat = sp.csr_matrix((np.exp(np.maximum(logk, -700.0)).ravel(), nbr.ravel(), np.arange(0, n * k + 1, k)),
                         shape=(n, m))
    ra = np.maximum(np.asarray(weights, np.float64), 0.0)
    ra = ra / ra.sum()
    cb = np.ones(m) if observed_weights is None else np.maximum(np.asarray(observed_weights, np.float64), 0.0)
    covered = np.zeros(m, bool)
    covered[nbr.ravel()] = True
    cb = np.where(covered, cb, 0.0)
    cb = cb / cb.sum()
    kt = kmat.T.tocsr()
    v = np.where(covered, 1.0, 0.0)
    for _ in range(n_iter):
        u = ra / np.maximum(kmat @ v, 1e-300)
        col = kt @ u
        if np.abs(v * col - cb).sum() < tol:  # column masses off by less than tol in total variation
            break
        v = np.where(covered, cb / np.maximum(col, 1e-300), 0.0)
    p = kmat @ sp.diags(v)
    total = np.asarray(p.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.where(total > 0, total, 1.0)) @ p)


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


def descendant_chain(trajectory, xs: list[np.ndarray], times: np.ndarray, sigma2: float, *,
                     growth: list[bool] | None = None, n_steps: int = N_STEPS, max_cells: int = MAX_CHAIN_CELLS,
                     rng: np.random.Generator) -> tuple[list[sp.csr_matrix], list[np.ndarray], list[float]]:
    """Couplings that carry the descendants of the first snapshot's cells to the last snapshot's cells.

    Each gap ``t_k -> t_{k+1}`` is cut into ``n_steps`` equal steps of length ``h``. Between two steps the
    population is the model's push of (a subsample of at most ``max_cells``) cells of ``t_k`` (weighted by
    their descendant mass); at the gap's ends it is the observed cells. Consecutive steps are joined by
    :func:`kernel_coupling` with the covariance ``sigma2 h I + R_k``, ``R_k`` the gap's
    :func:`push_residual`: the resolution at which the model and the data locate a descendant, which does
    not shrink with the step (a narrower kernel makes each step an exact matching between finite samples,
    and a chain of those is decided by which cells happen to be sampled). A chain of short entropic
    steps between the right marginals converges, as ``h`` shrinks, to the diffusion with noise ``sigma``
    whose marginals they are (the Sinkhorn potentials of each step supply the drift); a single step per
    gap misses how the drift stretches or squeezes the noise (e.g. cells near a saddle).

    Parameters
    ----------
    trajectory
        ``trajectory(x, grid) -> (positions, log_weights)`` of the model (``(len(grid), n, d)`` and
        ``(len(grid), n)``).
    xs
        Observed cells per time (all cells of ``xs[0]`` are rows of the first coupling; the last
        coupling's columns are all cells of ``xs[-1]``; inner snapshots are subsampled).
    times
        The observed times, increasing.
    sigma2
        Noise ``sigma^2`` (data units squared per time unit).
    growth
        Per gap: whether descendant masses count (default all gaps).
    n_steps
        Steps per gap.
    max_cells
        Cells per intermediate population.
    rng
        Generator (subsamples).

    Returns
    -------
    The chain (row-stochastic matrices), each matrix's row growth over its step (for :func:`absorption`,
    ``masses[1:]``) and the trace of ``R_k`` per gap.
    """
    d = xs[0].shape[1]
    chain, masses, resid = [], [], []
    start = np.asarray(xs[0], np.float64)
    for k in range(len(times) - 1):
        grid = np.linspace(float(times[k]), float(times[k + 1]), n_steps + 1)
        sub = start if len(start) <= max_cells else start[_subsample(len(start), max_cells, rng)]
        pos, logw = trajectory(sub, grid)
        if growth is not None and not growth[k]:
            logw = np.zeros_like(logw)
        if sub is start or (growth is not None and not growth[k]):
            lw_start = logw[1] if sub is start else np.zeros(len(start))
        else:
            lw_start = trajectory(start, grid[:2])[1][1]
        wend = np.exp(logw[-1] - logw[-1].max())
        r = push_residual(pos[-1], wend, xs[k + 1], rng=rng)
        resid.append(float(np.trace(r)))
        last = k == len(times) - 2
        end = np.asarray(xs[k + 1], np.float64)
        if not last and len(end) > max_cells:
            end = end[_subsample(len(end), max_cells, rng)]
        pts = [start] + [pos[j] for j in range(1, n_steps)] + [end]
        for j in range(n_steps):
            h = float(grid[j + 1] - grid[j])
            cov = sigma2 * h * np.eye(d) + r
            if j == 0:
                grow = np.exp(lw_start - lw_start.max())
                row_mass = grow
            else:
                grow = np.exp(logw[j + 1] - logw[j])
                row_mass = np.exp(logw[j + 1] - logw[j + 1].max())
            col = np.exp(logw[j + 1] - logw[j + 1].max()) if j < n_steps - 1 else None
            chain.append(kernel_coupling(pts[j], row_mass, pts[j + 1], cov, observed_weights=col))
            masses.append(grow / grow.mean())
        start = end
    return chain, masses, resid


def flow_chain(trajectory, xs: list[np.ndarray], times: np.ndarray, *, max_cells: int = MAX_CHAIN_CELLS,
               rng: np.random.Generator) -> list[dict]:
    """Descendants that follow the model's flow and land on the observed cells (no noise).

    For each gap ``t_k -> t_{k+1}`` the rows (all cells of ``xs[0]``, then the observed cells the previous
    step lands on) are pushed by the flow to ``t_{k+1}``; their descendants are the observed cells of
    ``t_{k+1}`` weighted by the kernel of the gap's residuals: the pairs of :func:`push_residual`'s plans (what
    the flow misses and the matching noise of the snapshots: the resolution at which the model and the data
    locate a descendant), to which :func:`student_fit` fits a Student t ``t_nu(y; push(x), S_k)`` by maximum
    likelihood, the Gaussian ``N(y; push(x), R_k)`` of their covariance ``R_k`` where that fits best (a model
    that sends a few cells far astray has heavier tails than a Gaussian). One step per gap: without noise the
    flow carries a cell over the whole gap, and cutting it into steps through finite populations only adds the
    hop between neighbouring cells at every step. The transition is the kernel's conditional average over the
    cells that are there (rows normalised), not a balanced coupling: where descendants go, not how the next
    population is shared.
    Descendants stay on the data, as the snapshots' cells are the only places they may be.

    Parameters
    ----------
    trajectory
        ``trajectory(x, grid) -> (positions, log_weights)`` of the model.
    xs
        Observed cells per time (inner snapshots are subsampled to ``max_cells``; the last one is used whole).
    times
        The observed times, increasing.
    max_cells
        Cells per inner snapshot.
    rng
        Generator (subsamples).

    Returns
    -------
    One step per gap: ``images`` (the pushed rows), ``cov`` (the kernel's scale ``S_k``; ``R_k`` for a
    Gaussian), ``dof`` (``nu``; ``inf``: Gaussian), ``cols`` (rows of ``xs[k+1]`` the step lands on),
    ``log_mass`` (each row's log descendant mass over the gap) and ``residual`` (``tr R_k``).
    :func:`flow_absorption` takes them.
    """
    steps = []
    start = np.asarray(xs[0], np.float64)
    for k in range(len(times) - 1):
        pos, logw = trajectory(start, [float(times[k]), float(times[k + 1])])
        end = np.asarray(xs[k + 1], np.float64)
        res, mass = residual_samples(pos[-1], np.exp(logw[-1] - logw[-1].max()), end, rng=rng)
        scale, dof = student_fit(res, mass)
        last = k == len(times) - 2
        cols = np.arange(len(end)) if last or len(end) <= max_cells else _subsample(len(end), max_cells, rng)
        steps.append({"images": pos[-1], "cov": scale, "dof": dof, "cols": cols, "log_mass": logw[-1],
                      "residual": float(mass @ np.sum(res**2, axis=1))})  # tr R_k
        start = end[cols]
    return steps


def _kernel_log(step: dict, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest ``cells`` of each pushed row of a :func:`flow_chain` step and their log kernel values:
    the Student t of the step's residuals, ``-(nu + d) / 2 log(1 + m / nu)`` with
    ``m = (y - push(x))' S^-1 (y - push(x))``, or ``-m / 2`` where ``nu`` is infinite (Gaussian)."""
    w = _whitener(step["cov"])
    dist, nbr = _neighbours(step["images"] @ w.T, cells @ w.T)
    nu = step.get("dof", np.inf)
    if not np.isfinite(nu):
        return -0.5 * dist**2, nbr
    return -(nu + step["images"].shape[1]) / 2 * np.log1p(dist**2 / nu), nbr


def flow_absorption(steps: list[dict], xs: list[np.ndarray], onehot: np.ndarray) -> np.ndarray:
    """Absorption probabilities of the first snapshot's cells into the groups of the last one's, through the
    steps of :func:`flow_chain`, in log space (no fate is undefined because a kernel's tail underflows).

    At the last step the probability of group ``g`` is the kernel's mass on the cells of ``g`` over its mass on
    all labelled cells, each group's sum taken over its own nearest cells (so a group far from a cell's
    descendants gets a small probability, not an exact 0 from a truncated neighbourhood); earlier steps average
    the next cells' log-probabilities with the kernel, each path weighted by the next cells' descendant mass.

    Parameters
    ----------
    steps
        :func:`flow_chain`'s steps.
    xs
        The snapshots it was built on.
    onehot
        ``(n_last, n_groups)``: each last cell's membership (rows may be distributions; all-zero rows are
        unlabelled and ignored).

    Returns
    -------
    ``(n_0, n_groups)``, rows summing to 1.
    """
    onehot = np.asarray(onehot, np.float64)
    last = steps[-1]
    end = np.asarray(xs[-1], np.float64)[last["cols"]]
    logq = np.full((len(last["images"]), onehot.shape[1]), -np.inf)
    for g in range(onehot.shape[1]):
        members = np.nonzero(onehot[last["cols"], g] > 0)[0]
        if len(members):
            logk, nbr = _kernel_log(last, end[members])
            logq[:, g] = _logsumexp(logk + np.log(onehot[last["cols"][members], g])[nbr])
    logq -= _logsumexp(logq)[:, None]
    for k in range(len(steps) - 2, -1, -1):
        st, nxt = steps[k], steps[k + 1]
        logk, nbr = _kernel_log(st, np.asarray(xs[k + 1], np.float64)[st["cols"]])
        logk = logk + (nxt["log_mass"] - nxt["log_mass"].max())[nbr]  # paths through a dividing cell count more
        out = np.empty((len(nbr), logq.shape[1]))
        for a in range(0, len(nbr), 4096):  # (rows, neighbours, groups) blocks of bounded size
            b = slice(a, a + 4096)
            out[b] = _logsumexp(logk[b][:, :, None] + logq[nbr[b]], axis=1)
        logq = out - _logsumexp(out)[:, None]
    return np.exp(logq)


def flow_coupling(step: dict, xs_next: np.ndarray) -> sp.csr_matrix:
    """One step of :func:`flow_chain` as a row-stochastic ``(n_rows, n_next)`` matrix over all ``xs_next``
    (the kernel truncated to each row's nearest cells)."""
    logk, nbr = _kernel_log(step, np.asarray(xs_next, np.float64))
    val = np.exp(logk - logk.max(axis=1, keepdims=True))
    val /= val.sum(axis=1, keepdims=True)
    n, k = nbr.shape
    return sp.csr_matrix((val.ravel(), nbr.ravel(), np.arange(0, n * k + 1, k)), shape=(n, len(xs_next)))
