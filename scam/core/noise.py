"""Matching noise of empirical OT plans, and the second-moment correction of the path.

An exact OT plan between two finite samples pairs each cell with a partner that misses its
population-level destination by a *matching error* ``e``: even two samples of one population are
not paired cell to itself. In a few dimensions the error is small; in many (50 PCs of an isotropic
cloud) it is most of the pair's displacement, because samples of ``n`` cells are
``~ n^(-1/d)`` apart.

The error biases a velocity learned from the straight-line path. Both ends of the plan are the
snapshots, so ``Var(x_0 + e) = Var(x_0)`` up to the population's own change, which forces
``Cov(x_0, e) = -E / 2`` with ``E = Cov(e)``; the interpolant ``x_0 + tau (x_1 - x_0)`` then has the
covariance of the noise-free path *minus* ``tau (1 - tau) E``: the path contracts inside every gap
and expands again, and the velocity that generates it points inwards at the start of a gap and
outwards at its end, by ``E / 2 (x - m)`` at the cells (for a Gaussian cloud drifting at constant
velocity: a 4x error in 50 dimensions at 2,500 cells per plan).

:class:`MomentCorrection` removes that bias. ``E`` is measured by the same solver between two
disjoint subsamples of one snapshot (a null plan whose true map is the identity), at two sizes and
extrapolated to the size of the real plan's chunks (the error shrinks with the number of cells as a
power law); the path point at fraction ``tau`` is mapped by the linear OT map ``A(tau)`` from the
interpolant's covariance ``V(tau)`` to ``V(tau) + tau (1 - tau) E`` about the path's mean:

    x_tau = m_tau + A(tau) (x_lin - m_tau),

with ``A(0) = A(1) = I``: every pair keeps its place in the cloud, and for jointly Gaussian pairs
the learned velocity is unbiased at every ``tau``.

Contracting aside, the error is also *noise*: in 50 dimensions it is nearly all of each pair's
displacement, and no network averages it away from a few thousand pairs. Each pair's target is
therefore split into the Gaussian OT map of its source cell (from the snapshots' moments, without the
covariance change their own sampling noise makes: :func:`denoised_gaussian_map`) and the pair's
departure from it, of which only the share that is not matching error is kept (a Wiener factor per
principal direction of the departures: :func:`wiener_factor`). Where the plans are exact (few
dimensions, structure far above the noise) the factor is the identity and nothing changes; where
they pair cells at random it is zero and the path is the Gaussian map. The kept target is not
exactly a target cell, so the corrected path is for the ``"pathwise"`` estimator (pair velocities),
not for the ``"boundary"`` one, whose end terms need the snapshots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import ot

from .._utils import logger

NULL_CELLS = 1000  # cells per side of the larger null plan (the smaller one has half as many)
NULL_REPEATS = 4  # null plans of each size (disjoint draws), averaged
TAU_GRID = 33  # grid of the path fraction on which A(tau) is tabulated (linear in between)
MIN_CELLS = 40  # snapshots smaller than this: no null plan (too few cells to measure the error)


def _pair_noise(xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Covariance of the pair differences of the exact OT plan between two samples of one population."""
    n = len(xa)
    w = np.full(n, 1.0 / n)
    cost = ot.dist(np.asarray(xa, np.float64), np.asarray(xb, np.float64))
    plan = ot.emd(w, w, cost, numItermax=max(1_000_000, 50 * cost.size))
    ii, jj = np.nonzero(plan > 0)
    diff = np.asarray(xb, np.float64)[jj] - np.asarray(xa, np.float64)[ii]
    p = plan[ii, jj] / plan[ii, jj].sum()
    diff = diff - p @ diff
    return (diff * p[:, None]).T @ diff


def matching_noise(x: np.ndarray, plan_cells: int, *, rng: np.random.Generator) -> np.ndarray:
    """Covariance ``E`` of the matching error of an exact OT plan of ``plan_cells`` cells per side
    between samples of the population ``x``.

    Measured on null plans between disjoint subsamples of ``x`` of ``m`` and ``m / 2`` cells
    (``m = min(NULL_CELLS, n / 2)``, ``NULL_REPEATS`` draws of each, averaged); its size is
    extrapolated to ``plan_cells`` by the power law the two sizes show (exponent clipped to
    ``[-1, 0]``).

    Parameters
    ----------
    x
        Cells of one snapshot, ``(n, d)``.
    plan_cells
        Cells per side of the plan whose error is wanted.
    rng
        Random generator (the subsamples).

    Returns
    -------
    ``(d, d)`` positive semi-definite matrix (zeros when ``x`` has fewer than ``MIN_CELLS`` cells).
    """
    n, d = x.shape
    m = min(NULL_CELLS, n // 2)
    if m < MIN_CELLS // 2:
        return np.zeros((d, d))
    big, small = np.zeros((d, d)), np.zeros((d, d))
    for _ in range(NULL_REPEATS):
        perm = rng.permutation(n)
        big += _pair_noise(x[perm[:m]], x[perm[m : 2 * m]]) / NULL_REPEATS
        small += _pair_noise(x[perm[: m // 2]], x[perm[m : m + m // 2]]) / NULL_REPEATS
    tb, ts = np.trace(big), np.trace(small)
    slope = float(np.clip(np.log(tb / ts) / np.log(m / (m // 2)), -1.0, 0.0)) if tb > 0 and ts > 0 else 0.0
    return big * (max(plan_cells, 1) / m) ** slope


def snapshot_moments(x: np.ndarray, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean, covariance and number of the cells of a snapshot (float64, in chunks: no float64 copy)."""
    n, d = x.shape
    total, outer = np.zeros(d), np.zeros((d, d))
    for s in range(0, n, chunk):
        block = np.asarray(x[s : s + chunk], np.float64)
        total += block.sum(axis=0)
        outer += block.T @ block
    mean = total / n
    return mean, outer / n - np.outer(mean, mean), n


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


def gaussian_map(cov_from: np.ndarray, cov_to: np.ndarray) -> np.ndarray:
    """The symmetric matrix of the linear OT map from ``N(0, cov_from)`` to ``N(0, cov_to)``."""
    d = len(cov_from)
    ridge = 1e-9 * max(np.trace(cov_from) / d, 1e-12)
    r = _sqrtm_psd(cov_from + ridge * np.eye(d))
    w, v = np.linalg.eigh(r)
    # the eigenvalues of r are >= sqrt(ridge); a singular cov_from (fewer cells than dimensions) can carry
    # rounding noise below -ridge, which would leave r a zero eigenvalue and r_inv an overflow
    r_inv = (v / np.maximum(w, 0.5 * np.sqrt(ridge))) @ v.T
    return r_inv @ _sqrtm_psd(r @ cov_to @ r) @ r_inv


def denoised_gaussian_map(cov0: np.ndarray, cov1: np.ndarray, n0: int, n1: int) -> np.ndarray:
    """The Gaussian OT map between two sample covariances, without the part their sampling noise makes.

    In coordinates whitened by the pooled covariance, the map between two sample covariances of one
    population is ``I + B`` with ``B`` of spectral radius ``sqrt(d (1/n0 + 1/n1))`` (half the edge of
    the difference of two Wishart matrices). Eigen-directions of ``B`` inside that radius (times
    1.1, for the edge's own fluctuation) are set to the identity; the map is then the OT map from
    ``cov0`` to the covariance the kept directions imply (the exact map when every direction is
    kept, the identity when none is).
    """
    d = len(cov0)
    pooled = (cov0 + cov1) / 2 + 1e-12 * max(np.trace(cov0) / d, 1e-300) * np.eye(d)
    w, v = np.linalg.eigh(pooled)
    w = np.maximum(w, 1e-300)
    half, half_inv = (v * np.sqrt(w)) @ v.T, (v / np.sqrt(w)) @ v.T
    w0, w1 = half_inv @ cov0 @ half_inv, half_inv @ cov1 @ half_inv
    b = gaussian_map(w0, w1) - np.eye(d)
    lam, u = np.linalg.eigh((b + b.T) / 2)
    radius = 1.1 * np.sqrt(d * (1.0 / max(n0, 1) + 1.0 / max(n1, 1)))
    kept = np.eye(d) + (u * np.where(np.abs(lam) > radius, lam, 0.0)) @ u.T
    target = half @ kept @ w0 @ kept @ half
    return gaussian_map(cov0, target)


def wiener_factor(residual_cov: np.ndarray, noise: np.ndarray, n_pairs: int) -> np.ndarray:
    """The share of residuals of covariance ``V`` (estimated from ``n_pairs`` pairs) that is not
    noise of covariance ``E``.

    In each principal direction ``u`` of ``V`` (variance ``lambda``) the kept share is
    ``1 - (1 + sqrt(d / n_pairs))^2 u'Eu / lambda``, clipped to ``[0, 1]``: a Wiener filter whose
    noise level is raised to the upper edge of the Marchenko-Pastur spread of ``V``'s sample
    eigenvalues, so that directions holding only noise are dropped, not kept by their sampling
    fluctuation.
    """
    d = len(residual_cov)
    lam, u = np.linalg.eigh((residual_cov + residual_cov.T) / 2)
    noise_var = np.einsum("ik,ij,jk->k", u, noise, u)
    edge = (1 + np.sqrt(d / max(n_pairs, 1))) ** 2
    keep = np.clip(1.0 - edge * noise_var / np.maximum(lam, 1e-300), 0.0, 1.0)
    return (u * keep) @ u.T


def denoised_mean_shifts(xs, moments=None) -> tuple[list[np.ndarray], int]:
    """The change of the population's mean over every gap, without the part the snapshots' sampling makes.

    A snapshot's mean misses its population's by sampling noise of covariance ``C / n`` (``C`` the cells'
    covariance); by continuity a path through the snapshots moves its mean by their differences, noise and
    all (in stationary directions the velocity then has a floor: ``benchmarks/ground_truth.py``, row
    ``rotation_10d``). The means of all snapshots, whitened by the pooled covariance and scaled by
    ``sqrt(n_k)`` so that their noise is isotropic with unit variance, form a ``(K + 1, d)`` matrix after
    centring; its singular directions above the noise's edge (``sqrt(K) + sqrt(d)``, the largest singular
    value of a ``K x d`` matrix of unit noise) carry the mean's motion, the others only noise. The means
    are projected onto the kept directions. Motion well above the noise in every direction (few
    dimensions, many cells) keeps every direction: the shifts are the snapshots' own.

    Parameters
    ----------
    xs
        Snapshots (internal units), sorted by time.
    moments
        Mean, covariance and size of every whole snapshot when ``xs`` are subsamples of them.

    Returns
    -------
    shifts
        One ``(d,)`` shift per gap.
    directions
        How many directions were kept (at most ``min(K, d)``; all of them: every shift is the snapshots'
        own).
    """
    if moments is None:
        moments = [snapshot_moments(x) for x in xs]
    means = np.stack([np.asarray(m, np.float64) for m, _, _ in moments])
    sizes = np.array([n for _, _, n in moments], np.float64)
    n_gaps, d = len(means) - 1, means.shape[1]
    pooled = sum(n * np.asarray(c, np.float64) for (_, c, n) in moments) / sizes.sum()
    pooled = pooled + 1e-12 * max(np.trace(pooled) / d, 1e-300) * np.eye(d)
    w, v = np.linalg.eigh(pooled)
    w = np.maximum(w, 1e-300)
    half, half_inv = (v * np.sqrt(w)) @ v.T, (v / np.sqrt(w)) @ v.T
    z = means @ half_inv
    centre = sizes @ z / sizes.sum()
    y = np.sqrt(sizes)[:, None] * (z - centre)
    _, sv, vt = np.linalg.svd(y, full_matrices=False)
    kept = vt[sv > np.sqrt(n_gaps) + np.sqrt(d)]
    z_kept = centre + (z - centre) @ kept.T @ kept
    return list(np.diff(z_kept @ half, axis=0)), int(len(kept))


@dataclass
class MomentCorrection:
    """The corrected path of one gap (see the module docstring).

    Attributes
    ----------
    m0, m1
        Plan-weighted means of the source and target cells, ``(d,)``.
    gauss
        ``(d, d)``: the linear OT map between Gaussians with the plan's source and target moments.
    wiener
        ``(d, d)``: the share of each pair's departure from the Gaussian map that is kept.
    maps
        ``(TAU_GRID, d, d)``: ``A`` at ``tau = 0, 1/(TAU_GRID-1), ..., 1``.
    noise_share
        ``tr E / E|x_1 - x_0|^2``: the share of the pairs' mean squared displacement that is matching
        error (0: exact pairs; near 1: the plan is close to random pairing).
    mean_directions
        Directions in which the snapshots' means move beyond their sampling noise, when ``m1 - m0`` is the
        denoised shift (:func:`denoised_mean_shifts`); None when it is the plan's own.
    """

    m0: np.ndarray
    m1: np.ndarray
    gauss: np.ndarray
    wiener: np.ndarray
    maps: np.ndarray
    noise_share: float
    mean_directions: int | None = None

    @classmethod
    def from_plan(cls, x0: np.ndarray, x1: np.ndarray, src: np.ndarray, tgt: np.ndarray, p: np.ndarray,
                  noise: np.ndarray, moments=None, shift: np.ndarray | None = None) -> MomentCorrection:
        """Correction of the plan with pairs ``(src, tgt)`` of probabilities ``p`` and matching-error
        covariance ``noise``; ``moments``: ``((mean0, cov0, n0), (mean1, cov1, n1))`` of the whole
        snapshots (more precise than the plan's cells when they are a subsample; balanced plans
        only). The Gaussian map keeps only the covariance change that exceeds its sampling noise
        (:func:`denoised_gaussian_map`)."""
        p = np.asarray(p, np.float64) / np.sum(p)
        a = np.asarray(x0, np.float64)[src]
        b = np.asarray(x1, np.float64)[tgt]
        m0, m1 = p @ a, p @ b
        msd = float(p @ np.sum((b - a) ** 2, axis=1))

        def cov(u, v):
            return (u * p[:, None]).T @ v

        if moments is None:
            a -= m0
            b -= m1
            n_eff = 1.0 / np.sum(p**2)  # cells the plan's moments rest on
            gauss = denoised_gaussian_map(cov(a, a), cov(b, b), min(n_eff, len(x0)), min(n_eff, len(x1)))
        else:
            (m0, c0, n0), (m1, c1, n1) = moments
            a -= m0
            b -= m1
            gauss = denoised_gaussian_map(c0, c1, n0, n1)
        resid = b - a @ gauss.T  # departure of each pair from the Gaussian map
        wiener = wiener_factor(cov(resid, resid), noise, len(src))
        if shift is not None:  # the mean's motion without its sampling noise (denoised_mean_shifts)
            m1 = m0 + np.asarray(shift, np.float64)
        y = a @ gauss.T + resid @ wiener.T  # kept target, centred
        s00, s11, s01 = cov(a, a), cov(y, y), cov(a, y)
        left = wiener @ noise @ wiener.T  # matching error that the kept targets still carry
        taus = np.linspace(0.0, 1.0, TAU_GRID)
        maps = np.empty((TAU_GRID, len(m0), len(m0)))
        for g, tau in enumerate(taus):
            v = (1 - tau) ** 2 * s00 + tau**2 * s11 + tau * (1 - tau) * (s01 + s01.T)
            maps[g] = np.eye(len(m0)) if tau in (0.0, 1.0) else gaussian_map(v, v + tau * (1 - tau) * left)
        share = float(np.trace(noise) / msd) if msd > 0 else 0.0
        return cls(m0, m1, gauss, wiener, maps, share)

    def _tensors(self, device, dtype):
        key = (str(device), dtype)
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            import torch

            as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
            cache[key] = (as_t(self.maps), as_t(self.m0), as_t(self.m1), as_t(self.gauss.T), as_t(self.wiener.T))
        return cache[key]

    def apply(self, x0, x1, tau):
        """Corrected path points and their velocities ``d x / d tau`` (torch tensors ``(B, d)``; ``tau``
        a ``(B,)`` numpy array)."""
        import torch

        maps, m0, m1, gauss_t, wiener_t = self._tensors(x0.device, x0.dtype)
        g = np.clip(tau, 0.0, 1.0) * (TAU_GRID - 1)
        lo = np.minimum(np.floor(g).astype(np.int64), TAU_GRID - 2)
        frac = torch.as_tensor(g - lo, dtype=x0.dtype, device=x0.device)[:, None]
        lo_t = torch.as_tensor(lo, device=x0.device)
        a_lo, a_hi = maps[lo_t], maps[lo_t + 1]
        pushed = m1 + (x0 - m0) @ gauss_t
        y = pushed + (x1 - pushed) @ wiener_t  # the pair's kept target
        dm = m1 - m0
        tau_t = torch.as_tensor(tau, dtype=x0.dtype, device=x0.device)[:, None]
        dev_lin = (1 - tau_t) * x0 + tau_t * y - (m0 + tau_t * dm)
        step = y - x0 - dm
        both = torch.stack([dev_lin, step], dim=2)  # (B, d, 2)
        lo_part, hi_part = torch.bmm(a_lo, both), torch.bmm(a_hi, both)
        mixed = lo_part + frac[:, :, None] * (hi_part - lo_part)
        slope = (hi_part[:, :, 0] - lo_part[:, :, 0]) * (TAU_GRID - 1)
        x = m0 + tau_t * dm + mixed[:, :, 0]
        v = dm + slope + mixed[:, :, 1]
        return x, v


def plan_corrections(xs, plans, max_plan_size: int, rng: np.random.Generator, progress: bool = False,
                     moments=None) -> list[MomentCorrection | None]:
    """The matching-error correction of every gap whose pairs keep their mass and move on straight lines.

    Parameters
    ----------
    xs
        Snapshots (internal units) the plans join.
    plans
        One :class:`~scam.core.couplings.SegmentPlan` per gap.
    max_plan_size
        The plans' chunk size (:attr:`PathConfig.max_plan_size <scam.core.paths.PathConfig.max_plan_size>`):
        the matching noise is measured at the plans' size.
    rng
        Generator (one stream spawned per snapshot and one more).
    progress
        Show a tqdm bar.
    moments
        Mean, covariance and size of every whole snapshot when ``xs`` are subsamples of them.

    Returns
    -------
    Per gap a :class:`MomentCorrection`, or None for gaps left as they are (pairs that change mass,
    routes, placeholders of created or destroyed cells).
    """
    from .couplings import _n_chunks, progress_bar
    from .distributed import per_gap

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
              if plan.kind is None and plan.route_ptr is None and not plan.changes_mass]
    needed = sorted({j for k in moving for j in (k, k + 1)})
    if not needed:
        return [None] * n_gaps
    noise_of = lambda i: snapshot_noise(needed[i])  # noqa: E731
    found = per_gap(progress_bar(noise_of, len(needed), progress, "matching noise"), len(needed))
    noises = dict(zip(needed, found))
    out: list[MomentCorrection | None] = [None] * n_gaps
    # the means' motion without the drift their sampling makes (balanced plans: the plan's means are
    # the snapshots')
    shifts, directions = denoised_mean_shifts(xs, moments)
    logger.info("scam: the snapshots' means move in %d of at most %d directions beyond their sampling noise",
                directions, min(len(xs) - 1, xs[0].shape[1]))
    for k in moving:
        plan = plans[k]
        out[k] = MomentCorrection.from_plan(
            xs[k], xs[k + 1], plan.src, plan.tgt, np.diff(plan.cdf, prepend=0.0), 0.5 * (noises[k] + noises[k + 1]),
            moments=(moments[k], moments[k + 1]) if moments else None, shift=shifts[k],
        )
        out[k].mean_directions = directions
        logger.info("scam: gap %d: matching error is %.0f%% of the pairs' squared displacement (corrected)",
                    k, 100 * out[k].noise_share)
    return out

