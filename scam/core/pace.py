"""The pace of cells through a gap: synchronous (straight lines at constant speed) or asynchronous.

A straight-line path moves every pair of coupled cells at the same pace: at fraction ``tau`` of a gap
each pair is at fraction ``tau`` of its way. Differentiating cells are not synchronous (at any time a
population holds cells early and late in the same programme), so an *asynchronous* path lets each
sampled pair be at its own fraction

    pos = sigmoid(logit(tau) + spread * z),    z ~ N(0, 1) truncated at +-3,

of its straight line, with speed ``dpos/dtau = pos (1 - pos) / (tau (1 - tau))`` times the pair's
displacement (its velocity is exact, so the pathwise estimator takes it as it is). Both ends stay the
snapshots; ``spread = 0`` is the straight path, a large spread tends to the mixture of the two
snapshots (each cell either not yet started or already arrived).

Whether the data are asynchronous, and how much, is decided on the training snapshots themselves
(:func:`scam.core.path_choice.choose_path`, over the spreads of :data:`PACE_GRID`).
"""

from __future__ import annotations

import numpy as np

PACE_GRID = (0.5, 1.0, 1.5, 2.0, 3.0)  # spreads compared on the training snapshots (0 is the straight path)
MAX_Z = 3.0  # the log-odds shift is a standard normal truncated here (bounded speeds)
_EPS = 1e-6


def pace_warp(tau: np.ndarray, spread: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Asynchronous fractions of a gap and their derivatives.

    Parameters
    ----------
    tau
        Fractions of the gap in ``[0, 1]`` (one per sampled pair).
    spread
        Standard deviation of the pairs' log-odds shift (0: every pair at ``tau``).
    rng
        Random generator (one shift per entry).

    Returns
    -------
    pos, dpos
        Each pair's fraction of its own way and ``d pos / d tau``.
    """
    tau = np.asarray(tau, dtype=np.float64)
    if spread == 0:
        return tau, np.ones_like(tau)
    p = np.clip(tau, _EPS, 1 - _EPS)
    z = np.clip(rng.standard_normal(p.shape), -MAX_Z, MAX_Z)
    pos = 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + spread * z)))
    dpos = pos * (1 - pos) / (p * (1 - p))
    return np.where(tau <= 0, 0.0, np.where(tau >= 1, 1.0, pos)), dpos
