"""Fate estimators: where the descendants (or ancestors) of cells go, on a fitted model and its snapshots.

One interface (:class:`FateEstimator`): built on the model and the observed snapshots, it gives the fates of the
cells of one observed time in labelled groups of another (:meth:`FateEstimator.fates`) and the cell-to-cell
coupling between two consecutive observed times (:meth:`FateEstimator.coupling`, what CellRank's
RealTimeKernel takes). :func:`scam.tl.fate_probabilities` and :func:`scam.tl.couplings` pick one by name from
:data:`FATE_ESTIMATORS`:

- :class:`DescendantChain` (``"descendants"``): descendants carried through the observed cells, along the flow
  with the kernel of the model's own error, or through short entropic couplings when a noise is used
  (:mod:`scam.core.fates`): graded fates, forward in time;
- :class:`Push` (``"push"``): cells moved by the model's flow (or its SDE) to the other time and spread over
  their nearest observed cells there; forward or backward (ancestors).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from . import fates as _fates
from .model import ActionModel


def _spread(nbr: np.ndarray, values: np.ndarray, n_rows: int) -> np.ndarray:
    """Rows ``i`` of ``nbr`` (``(m, k)`` neighbour indices) add ``values[i] / k`` to each of their neighbours' rows
    of an ``(n_rows, ...)`` array (``values``: ``(m,)`` or ``(m, g)``)."""
    k = nbr.shape[1]
    values = np.asarray(values, np.float64)
    out = np.zeros((n_rows,) + values.shape[1:])
    np.add.at(out, nbr.ravel(), np.repeat(values / k, k, axis=0))
    return out


def _spread_rows(nbr: np.ndarray, onehot: np.ndarray, k: int) -> np.ndarray:
    """Each row ``i``: the mean over its ``k`` neighbours ``nbr[i]`` of their rows of ``onehot``."""
    out = np.zeros((len(nbr), onehot.shape[1]))
    np.add.at(out, np.repeat(np.arange(len(nbr)), k), onehot[nbr.ravel()] * (1.0 / k))
    return out


class FateEstimator(ABC):
    """Fates and couplings on a fitted model and its observed snapshots.

    Parameters
    ----------
    model
        The fitted model (data units).
    xs
        Observed cells per time, ``(n_k, d)`` each, within the model's time range.
    times
        The observed times, increasing.
    """

    name: ClassVar[str] = ""
    forward_only: ClassVar[bool] = False

    def __init__(self, model: ActionModel, xs: list[np.ndarray], times: np.ndarray):
        self.model = model
        self.xs = [np.asarray(x) for x in xs]
        self.times = np.asarray(times, np.float64)
        self.record: dict = {}

    def _index(self, t: float) -> int:
        k = np.nonzero(np.isclose(self.times, float(t)))[0]
        if not len(k):
            raise ValueError(f"Time {t:g} is not among the observed times {self.times.tolist()}.")
        return int(k[0])

    @abstractmethod
    def fates(self, source_time: float, target_time: float, onehot: np.ndarray, *,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
        """Fates of the cells observed at ``source_time`` in the groups of the cells observed at ``target_time``.

        Parameters
        ----------
        source_time, target_time
            Observed times.
        onehot
            ``(n_target, n_groups)``: the group of each target cell (rows may be distributions).
        rng
            Generator.

        Returns
        -------
        probs
            ``(n_source, n_groups)``, rows summing to 1.
        weights
            ``(n_source,)``: each source cell's relative descendant mass, summing to 1.
        record
            What the estimate decided (for ``params``).
        """

    @abstractmethod
    def coupling(self, t1: float, t2: float, *, rng: np.random.Generator) -> sp.csr_matrix:
        """Cell-to-cell transitions between consecutive observed times ``t1 < t2``.

        Returns
        -------
        ``(n_t1, n_t2)`` CSR matrix: where each cell's descendants go, each row scaled by the cell's relative
        descendant mass (mean 1 over the rows).
        """


class DescendantChain(FateEstimator):
    """Descendants carried through the observed cells: along the flow (:func:`scam.core.fates.flow_chain`) when
    the noise is 0, else through a chain of short entropic couplings (:func:`scam.core.fates.descendant_chain`).

    Parameters
    ----------
    model, xs, times
        See :class:`FateEstimator`.
    sigma
        Noise of the descendants (data units); None: estimated from the fit over every snapshot and kept only
        where the snapshots allow it (:func:`scam.core.fates.descendant_noise`, ``record["sigma_source"]``).
    rng
        Generator of the noise estimate.
    """

    name = "descendants"
    forward_only = True

    def __init__(self, model: ActionModel, xs: list[np.ndarray], times: np.ndarray, *, sigma: float | None = None,
                 rng: np.random.Generator):
        super().__init__(model, xs, times)
        if sigma is not None:
            self.sigma2, self.record = float(sigma) ** 2, {"sigma": float(sigma), "sigma_source": "given"}
        else:
            self.sigma2, self.record = _fates.descendant_noise(model.potential, self.xs, self.times, rng=rng)

    def _trajectory(self, x, grid):
        return self.model.trajectory(x, grid, stochastic=False)

    def _chain(self, k0: int, k1: int, rng: np.random.Generator):
        return _fates.descendant_chain(self._trajectory, self.xs[k0:k1 + 1], self.times[k0:k1 + 1], self.sigma2,
                                       rng=rng)

    def _flow(self, k0: int, k1: int, rng: np.random.Generator) -> list[dict]:
        return _fates.flow_chain(self._trajectory, self.xs[k0:k1 + 1], self.times[k0:k1 + 1], rng=rng)

    def fates(self, source_time, target_time, onehot, *, rng):
        k0, k1 = self._index(source_time), self._index(target_time)
        if not k1 > k0:
            raise ValueError("Descendants go forward: `target_time` must be later than `source_time`.")
        if self.sigma2 == 0:  # no noise: the flow, landing on the observed cells within the model's error
            steps = self._flow(k0, k1, rng)
            probs = _fates.flow_absorption(steps, self.xs[k0:k1 + 1], onehot)
            mass = np.exp(steps[0]["log_mass"] - steps[0]["log_mass"].max())
            record = {**self.record, "chain": "flow", "n_steps": 1,
                      "residual_variance": [s["residual"] for s in steps],
                      "residual_dof": [s["dof"] for s in steps], "times": self.times[k0:k1 + 1]}
            return probs, mass / mass.sum(), record
        chain, masses, resid = self._chain(k0, k1, rng)
        probs = _fates.absorption(chain, onehot, masses[1:])
        record = {**self.record, "chain": "bridge", "n_steps": _fates.N_STEPS, "residual_variance": resid,
                  "times": self.times[k0:k1 + 1]}
        return probs, masses[0] / masses[0].sum(), record

    def coupling(self, t1, t2, *, rng):
        k = self._index(t1)
        if self.sigma2 == 0:
            step = self._flow(k, k + 1, rng)[0]
            mass = np.exp(step["log_mass"] - step["log_mass"].max())
            return sp.csr_matrix(sp.diags(mass / mass.mean()) @ _fates.flow_coupling(step, self.xs[k + 1]))
        chain, masses, _ = self._chain(k, k + 1, rng)
        mat = chain[0].multiply(masses[0][:, None]).tocsr()
        for step, mass in zip(chain[1:], masses[1:]):
            mat = (mat @ sp.diags(mass) @ step).tocsr()
        return sp.csr_matrix(mat / np.asarray(mat.sum(axis=1)).mean())  # relative descendant masses: mean 1


class Push(FateEstimator):
    """Cells moved by the model (``n_samples`` SDE draws for noisy models forward, the flow otherwise) and spread
    over the ``n_neighbors`` nearest observed cells at the other time.

    Parameters
    ----------
    model, xs, times
        See :class:`FateEstimator`.
    n_neighbors
        Observed cells each moved cell is spread over.
    n_samples
        SDE draws per cell (noisy models, forward only).
    """

    name = "push"

    def __init__(self, model: ActionModel, xs: list[np.ndarray], times: np.ndarray, *, n_neighbors: int = 15,
                 n_samples: int = 10, rng: np.random.Generator | None = None):
        super().__init__(model, xs, times)
        self.n_neighbors, self.n_samples = int(n_neighbors), int(n_samples)

    def push(self, x: np.ndarray, t0: float, t1: float, rng: np.random.Generator | None = None):
        """Positions ``(n_draws, n, d)`` and log descendant masses ``(n_draws, n)`` of ``x`` moved from ``t0``
        to ``t1`` by :meth:`~scam.core.ActionModel.trajectory` (``n_samples`` draws for noisy models going
        forward, one otherwise)."""
        pos, lw = [], []
        for _ in range(self.n_samples if self.model.sigma > 0 and t1 > t0 else 1):
            p, w = self.model.trajectory(x, [t0, t1], rng=rng)
            pos.append(p[-1])
            lw.append(w[-1])
        return np.stack(pos), np.stack(lw)

    def fates(self, source_time, target_time, onehot, *, rng):
        k0, k1 = self._index(source_time), self._index(target_time)
        target = self.xs[k1]
        pos, logw = self.push(self.xs[k0], float(source_time), float(target_time), rng)
        k = min(self.n_neighbors, len(target))
        nn = NearestNeighbors(n_neighbors=k).fit(target)
        probs = np.zeros((len(self.xs[k0]), onehot.shape[1]))
        for p in pos:
            _, nbr = nn.kneighbors(p)
            probs += _spread_rows(nbr, onehot, k) / len(pos)
        lw = np.log(np.mean(np.exp(logw - logw.max()), axis=0))
        weights = np.exp(lw - lw.max())
        return probs, weights / weights.sum(), {"n_neighbors": k, "n_samples": self.n_samples}

    def ancestors(self, target_time: float, source_time: float, members: list[np.ndarray]) -> np.ndarray:
        """The share of each group's ancestral mass carried by each cell observed at ``source_time``.

        Parameters
        ----------
        target_time, source_time
            Observed times, ``source_time < target_time``.
        members
            Per group, the cells (rows of the snapshot at ``target_time``) that form it.

        Returns
        -------
        ``(n_source, n_groups)``, columns summing to 1 (late cells weighted by ``exp(-int g dt)``).
        """
        source = self.xs[self._index(source_time)]
        target = self.xs[self._index(target_time)]
        k = min(self.n_neighbors, len(source))
        nn = NearestNeighbors(n_neighbors=k).fit(source)
        out = np.zeros((len(source), len(members)))
        for c, rows in enumerate(members):
            pos, logw = self.model.trajectory(target[rows], [float(target_time), float(source_time)], stochastic=False)
            _, nbr = nn.kneighbors(pos[-1])
            out[:, c] = _spread(nbr, np.exp(logw[-1] - logw[-1].max()), len(source))
            out[:, c] /= out[:, c].sum()
        return out

    def coupling(self, t1, t2, *, rng=None, threshold: float = 0.0):
        """See :meth:`FateEstimator.coupling`: Gaussian kernel weights over the ``n_neighbors`` nearest observed
        cells (bandwidth: the median distance to the nearest one); entries below ``threshold`` times the row's
        largest are dropped."""
        source, target = self.xs[self._index(t1)], self.xs[self._index(t2)]
        pos, logw = self.model.trajectory(source, [float(t1), float(t2)], stochastic=False)
        k = min(self.n_neighbors, len(target))
        dist, nbr = NearestNeighbors(n_neighbors=k).fit(target).kneighbors(pos[-1])
        bw = np.median(dist[:, min(1, k - 1)]) + 1e-12
        vals = np.exp(-((dist / bw) ** 2) / 2)
        vals /= vals.sum(axis=1, keepdims=True)
        w = np.exp(logw[-1] - logw[-1].max())
        vals *= (w / w.mean())[:, None]
        vals[vals < threshold * vals.max(axis=1, keepdims=True)] = 0
        rows = np.repeat(np.arange(len(source)), k)
        return sp.csr_matrix((vals.ravel(), (rows, nbr.ravel())), shape=(len(source), len(target)))


FATE_ESTIMATORS: dict[str, type[FateEstimator]] = {cls.name: cls for cls in (DescendantChain, Push)}
"""The fate estimators by name (``method=`` of :func:`scam.tl.fate_probabilities` and :func:`scam.tl.couplings`)."""
