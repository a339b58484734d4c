"""Synthetic time courses with closed-form ground truth (used by tests, benchmarks and tutorials).

Each generator returns a :class:`SyntheticTimeCourse`: snapshots, times, relative masses, and the true
velocity / growth fields and marginals, so a fitted model can be checked against the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.linalg import sqrtm

from ..core._utils import make_rng


@dataclass
class SyntheticTimeCourse:
    """Snapshots with known dynamics.

    Attributes
    ----------
    xs
        One ``(n, d)`` array per time point.
    times
        Time of each snapshot.
    masses
        Relative population size at each time (1 at the first time).
    velocity
        ``velocity(x, t) -> (n, d)``: the true velocity field (drift).
    growth_rate
        ``growth_rate(x, t) -> (n,)``: the true growth rate (zeros when mass is conserved).
    marginal
        ``marginal(t) -> (mean, cov)`` for Gaussian marginals, else ``None``.
    sigma
        Diffusion coefficient of the true process.
    """

    xs: list[np.ndarray]
    times: np.ndarray
    masses: np.ndarray
    velocity: Callable
    growth_rate: Callable
    marginal: Callable | None = None
    sigma: float = 0.0
    info: dict = field(default_factory=dict)

    def sample_marginal(self, t: float, n: int, rng=0) -> np.ndarray:
        """Draw ``n`` cells from the true (normalised) marginal at time ``t`` (Gaussian cases)."""
        if self.marginal is None:
            raise ValueError("This time course has no closed-form marginal.")
        mean, cov = self.marginal(t)
        return make_rng(rng).multivariate_normal(mean, cov, size=n)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    return np.real(sqrtm(a))


def gaussian_geodesic(
    n_cells: int = 1000,
    *,
    times=(0.0, 1.0),
    mean0=(0.0, 0.0),
    cov0=((1.0, 0.3), (0.3, 0.5)),
    mean1=(3.0, 1.0),
    cov1=((0.4, -0.2), (-0.2, 1.5)),
    rng=0,
) -> SyntheticTimeCourse:
    """The W2 geodesic between two Gaussians, observed at ``times`` (first = 0, last = 1 of the geodesic).

    The velocity of the McCann interpolation is linear:
    ``v_t(y) = (A - I) ((1 - t) I + t A)^{-1} (y - m_t) + (m_1 - m_0)`` with the OT map ``A``.

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times in ``[0, 1]`` (0 and 1 are the endpoints of the geodesic).
    mean0, cov0, mean1, cov1
        The two Gaussians.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
    """
    rng = make_rng(rng)
    m0, m1 = np.asarray(mean0, float), np.asarray(mean1, float)
    s0, s1 = np.asarray(cov0, float), np.asarray(cov1, float)
    r0 = _psd_sqrt(s0)
    r0i = np.linalg.inv(r0)
    a = r0i @ _psd_sqrt(r0 @ s1 @ r0) @ r0i  # OT map x -> m1 + A (x - m0)
    eye = np.eye(len(m0))

    def marginal(t):
        mt = (1 - t) * m0 + t * m1
        bt = (1 - t) * eye + t * a
        return mt, bt @ s0 @ bt.T

    def velocity(x, t):
        t = np.broadcast_to(np.asarray(t, float), (len(x),))
        out = np.empty_like(np.asarray(x, float))
        for tv in np.unique(t):
            sel = t == tv
            mt = (1 - tv) * m0 + tv * m1
            bt = (1 - tv) * eye + tv * a
            out[sel] = (x[sel] - mt) @ np.linalg.solve(bt, (a - eye)).T + (m1 - m0)
        return out

    times = np.asarray(times, float)
    xs = []
    for t in times:
        mean, cov = marginal(t)
        xs.append(rng.multivariate_normal(mean, cov, size=n_cells))
    return SyntheticTimeCourse(
        xs=xs, times=times, masses=np.ones(len(times)), velocity=velocity,
        growth_rate=lambda x, t: np.zeros(len(x)), marginal=marginal, info={"ot_map": a},
    )


def ornstein_uhlenbeck(
    n_cells: int = 1000,
    *,
    times=(0.0, 1.0, 2.0),
    dim: int = 2,
    theta: float = 1.0,
    sigma: float = 1.0,
    mean0: float = 0.0,
    std0: float = 0.1,
    rng=0,
) -> SyntheticTimeCourse:
    """``dX = -theta X dt + sigma dW`` from ``N(mean0, std0^2 I)``; Gaussian marginals in closed form.

    Parameters
    ----------
    n_cells
        Cells per snapshot.
    times
        Observation times (>= 0).
    dim
        Dimension.
    theta, sigma
        Mean reversion and diffusion.
    mean0, std0
        Initial mean (every coordinate) and standard deviation.
    rng
        Seed or Generator.

    Returns
    -------
    SyntheticTimeCourse
        ``velocity`` is the drift ``-theta x``.
    """
    rng = make_rng(rng)

    def marginal(t):
        mean = np.full(dim, mean0 * np.exp(-theta * t))
        var = std0**2 * np.exp(-2 * theta * t) + sigma**2 / (2 * theta) * (1 - np.exp(-2 * theta * t))
        return mean, var * np.eye(dim)

    times = np.asarray(times, float)
    xs = [rng.multivariate_normal(*marginal(t), size=n_cells) for t in times]
    return SyntheticTimeCourse(
        xs=xs, times=times, masses=np.ones(len(times)), velocity=lambda x, t: -theta * np.asarray(x),
        growth_rate=lambda x, t: np.zeros(len(x)), marginal=marginal, sigma=sigma,
        info={"theta": theta},
    )
