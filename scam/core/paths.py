"""Probability paths between snapshots.

Data give only snapshots q_{t_0}, ..., q_{t_K}; the Action Matching loss needs samples of q_t at any t in
between. :class:`SnapshotPath` joins each pair of consecutive snapshots by a *coupling* (a sparse or dense
transport plan between their cells: :mod:`scam.core.couplings`, :mod:`scam.core.growth_plans`) and moves
each sampled pair through its gap by that gap's *interpolant* (:mod:`scam.core.interpolants`), chosen once
by :func:`scam.core.path_choice.resolve_path`. It samples pairs and their masses and asks the interpolant
where they are; it knows no path family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._utils import check_types
from . import curved  # noqa: F401  (registers the "curved" family)
from .couplings import COUPLING_KINDS, COUPLINGS, gap_plans
from .growth import GapGrowth
from .growth_plans import gap_evidence, weighted_plans
from .interpolants import INTERPOLANTS, BrownianBridge, Interpolant, Pairs
from .noise import MomentCorrection, plan_corrections
from .path_choice import PathChoice


def paths() -> tuple[str, ...]:
    """The values :attr:`PathConfig.path` takes: ``"support"``, ``"auto"`` and every registered family."""
    return ("support", *INTERPOLANTS, "auto")



@dataclass(frozen=True)
class PathConfig:
    """How snapshots are joined into a path: the couplings (:mod:`scam.core.couplings`) and how pairs move
    (:mod:`scam.core.interpolants`); passed whole to :func:`~scam.core.couplings.build_plan` and
    :class:`SnapshotPath`.

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
        chunks solved separately (memory linear in the number of cells; the network simplex's cost per
        cell grows with the chunk: ``benchmarks/README.md``, scale); the matching error the smaller
        chunks add is corrected for (``noise_correction``).
    path
        How a coupled pair moves through its gap (docs page "Paths between snapshots"), decided once by
        :func:`scam.core.path_choice.resolve_path`: ``"support"``
        (the default: each gap is ``"straight"`` unless most of its straight interpolation between
        exactly coupled cells runs where neither snapshot has cells, and then ``"graph"``:
        :func:`scam.core.off_support_share`; with four or more time points the straight gaps then bend
        (``"curved"``) where bending predicts held-out inner time points better by more than twice its
        standard error, and the routed gaps where it also beats the graph path there,
        :func:`scam.core.curved.curved_choice`; straight for entropic paths and couplings
        without explicit pairs), ``"curved"`` (every gap bent along the turning of its neighbouring snapshots, for
        populations that turn across three or more snapshots: :mod:`scam.core.curved`), ``"straight"``
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
        the path changes mass (a change in make-up is left to growth); where that is straight or graph,
        with four or more time points, the gaps bend (``"curved"``) if bending predicts held-out inner
        time points better than the straight path, and than the graph path where that was chosen, by more
        than twice the standard error (:func:`scam.core.curved.curved_choice`). ``"auto"`` is not the default
        because the ground truth asks so (on a noisy double well it finds the escape from the saddle
        asynchronous, and the noise then estimated from the potential for fate probabilities is too
        small); ``"graph"`` everywhere bends the Gaussian W2 geodesic, which ``"support"`` keeps
        straight (docs page "Paths between snapshots" for the measurements). Any other family
        registered with :func:`scam.core.interpolants.register_interpolant` is taken by its name, on
        every gap.
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
        (several-fold in tens of dimensions: ``benchmarks/README.md``). Close to the identity where the
        plans are exact (few dimensions). Used with the ``"pathwise"`` estimator only: the corrected pairs end at their
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
        if self.path not in paths():
            raise ValueError(f"Unknown path {self.path!r}; choose one of {paths()}.")
        if self.pace_spread is not None:
            if self.path != "asynchronous":
                raise ValueError(
                    f"pace_spread is the spread of path='asynchronous' (got path={self.path!r}); set "
                    "path='asynchronous' with it, or drop pace_spread."
                )
            check_types(self, numbers=("pace_spread",))
            if not (np.isfinite(self.pace_spread) and self.pace_spread > 0):
                raise ValueError(f"PathConfig.pace_spread must be a finite number > 0, got {self.pace_spread}.")



class SnapshotPath:
    """A path through all snapshots: one coupling and one interpolant per pair of consecutive time points.

    Parameters
    ----------
    xs
        Snapshots in internal units, a list of ``(n_k, d)`` arrays.
    times
        Internal times, increasing from 0 to 1.
    masses
        Relative masses ``M_k`` (all ones for balanced paths).
    config
        The couplings, with ``coupling`` resolved (not ``"auto"``); ``noise_correction`` corrects exact
        plans (``"ot"``, ``"weighted"``) for their matching error on gaps whose pairs keep their mass.
    choice
        The family of each gap (:func:`~scam.core.path_choice.resolve_path`); default: straight everywhere.
    sigma
        Diffusion coefficient (internal units). ``> 0`` makes every gap a Brownian bridge between the
        paired cells, and entropic plans use the Schrödinger-bridge regularisation ``2 sigma^2 du``.
    log_growth
        Optional per-cell prior log growth rates (per internal time unit), one array per snapshot;
        the cells of each source snapshot are weighted by ``exp(g_i du)`` in the plans.
    moments
        Mean, covariance and number of cells of every snapshot when ``xs`` are subsamples of them
        (:func:`scam.core.noise.snapshot_moments`): the noise correction's Gaussian maps use them.
    evidence
        ``"weighted"`` coupling: the growth evidence of every gap
        (:func:`scam.core.growth_plans.gap_evidence`), computed here when not given.
    rng
        Random generator.
    progress
        Show tqdm bars.

    Attributes
    ----------
    plans
        One :class:`~scam.core.couplings.SegmentPlan` per gap.
    interpolants
        One :class:`~scam.core.interpolants.Interpolant` per gap.
    growth
        ``"weighted"``: the growth evidence of every gap (else None).
    corrections
        Per gap the :class:`~scam.core.noise.MomentCorrection` in use or None (None: no gap corrected).
    """

    def __init__(
        self,
        xs: list[np.ndarray],
        times: np.ndarray,
        masses: np.ndarray,
        config: PathConfig,
        *,
        choice: PathChoice | None = None,
        sigma: float = 0.0,
        log_growth: list[np.ndarray] | None = None,
        moments: list[tuple[np.ndarray, np.ndarray, int]] | None = None,
        evidence: list[GapGrowth] | None = None,
        rng: np.random.Generator,
        progress: bool = False,
    ):
        import torch

        n_gaps = len(xs) - 1
        self.choice = choice or PathChoice.every_gap("straight", n_gaps, "straight by default")
        if len(self.choice.gaps) != n_gaps:
            raise ValueError(f"The path choice has {len(self.choice.gaps)} gaps, the snapshots {n_gaps}.")
        families = [self.choice.interpolant(k) for k in range(n_gaps)]  # before any work: bad parameters fail here
        if sigma > 0:
            [BrownianBridge(f, sigma) for f in families]  # fails early for families that take no bridge
        routes = self.choice.route_gaps
        coupling = config.coupling
        self.times = np.asarray(times, dtype=np.float64)
        self.masses = np.asarray(masses, dtype=np.float64)
        self.sigma = float(sigma)
        self.growth: list[GapGrowth] | None = None
        if coupling == "weighted":
            evidence = gap_evidence(xs, self.masses, rng, progress) if evidence is None else evidence
            self.plans, self.growth = weighted_plans(xs, self.times, self.masses, config, evidence, graph=routes,
                                                     rng=rng, progress=progress)
        else:
            self.plans = gap_plans(xs, self.times, self.masses, config, sigma=self.sigma, log_growth=log_growth,
                                   graph=routes, rng=rng, progress=progress)
        self._xs_np = [np.asarray(x) for x in xs]
        self._bind_cache: dict = {}
        families = [f.bind(self._xs_np, self.times, self.plans, k, self._bind_cache) for k, f in enumerate(families)]
        if self.sigma > 0:
            families = [BrownianBridge(f, self.sigma) for f in families]
        self.corrections: list[MomentCorrection | None] | None = None
        if config.noise_correction and self.sigma == 0 and COUPLING_KINDS[coupling].correctable and not all(routes):
            self.corrections = plan_corrections(xs, self.plans, config.max_plan_size, rng, progress, moments)
            families = [f if c is None else f.corrected(c) for f, c in zip(families, self.corrections)]
        self.interpolants: list[Interpolant] = families
        self._torch = torch
        self.xs = [torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in xs]
        self._unions = {}

    def with_choice(self, choice: PathChoice) -> SnapshotPath:
        """The same couplings with other families (a shallow copy; families that need routes need plans
        solved with them, and the copy has no moment correction or bridge)."""
        if choice.route_gaps != self.choice.route_gaps:
            raise ValueError("The couplings were solved for other routes; build a SnapshotPath for this choice.")
        other = object.__new__(SnapshotPath)
        other.__dict__.update(self.__dict__)
        other.choice = choice
        other.interpolants = [choice.interpolant(k).bind(self._xs_np, self.times, self.plans, k, self._bind_cache)
                              for k in range(len(self.plans))]
        return other

    @property
    def changes_mass(self) -> bool:
        """Whether any pair of the path gains or loses mass (False: pure transport, equal masses)."""
        return any(plan.changes_mass for plan in self.plans) or not np.allclose(self.masses, self.masses[0])

    def to(self, device) -> SnapshotPath:
        """Move the snapshots to ``device`` (in place)."""
        self.xs = [x.to(device) for x in self.xs]
        self._unions = {}
        return self

    def _union(self, seg: int):
        """Both snapshots of gap ``seg`` stacked (the nodes of its routes), cached."""
        if seg not in self._unions:
            self._unions[seg] = self._torch.cat([self.xs[seg], self.xs[seg + 1]])
        return self._unions[seg]

    def sample_path(self, u: np.ndarray, rng: np.random.Generator):
        """Points of the path at internal times ``u``, their mass estimators ``w``, and along each
        sampled pair the velocity ``dx/du`` (None where a gap has no pathwise velocity: the noise of a
        Brownian bridge) and the mass derivative ``dw/du``."""
        torch = self._torch
        u = np.asarray(u, dtype=np.float64)
        n, dim = len(u), self.xs[0].shape[1]
        k = np.clip(np.searchsorted(self.times, u, side="right") - 1, 0, len(self.plans) - 1)
        device = self.xs[0].device
        w, w_dot = np.empty(n), np.empty(n)
        x = torch.empty(n, dim, device=device)
        v = torch.empty_like(x)
        has_v = True
        for seg in np.unique(k):
            sel = np.nonzero(k == seg)[0]
            plan = self.plans[seg]
            du = self.times[seg + 1] - self.times[seg]
            tau = (u[sel] - self.times[seg]) / du
            idx = plan.sample(len(sel), rng)
            i, j, lra, lrb = plan.pairs(idx)
            p, factor, dpos, dfactor = plan.profile(idx, tau)
            growth = np.exp((1 - tau) * lra + tau * lrb)
            w[sel] = plan.total_mass * factor * growth
            w_dot[sel] = plan.total_mass * (dfactor + factor * (lrb - lra)) * growth / du
            pairs = Pairs(self.xs[seg], self.xs[seg + 1], i, j, idx, tau, p, dpos, du, plan,
                          union=lambda seg=seg: self._union(seg))
            points = self.interpolants[seg].sample(pairs, rng)
            sel_t = torch.as_tensor(sel, device=device)
            x[sel_t] = points.x
            if points.v is None:
                has_v = False
            else:
                v[sel_t] = points.v
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
        return x, as_t(w), v if has_v else None, as_t(w_dot)

    def sample(self, batch_size: int, rng: np.random.Generator):
        """A :class:`~scam.core.losses.PathBatch` with stratified (low-discrepancy) times."""
        return self.sample_batches(batch_size, 1, rng)[0]

    def sample_batches(self, batch_size: int, n_batches: int, rng: np.random.Generator) -> list:
        """``n_batches`` independent :class:`~scam.core.losses.PathBatch` of ``batch_size`` samples, each
        with its own stratified times, drawn in one pass over the plans (a training step's batch costs
        a fraction of a separate draw: the per-gap work is shared)."""
        from .losses import PathBatch

        torch = self._torch
        u = ((rng.random(n_batches)[:, None] + np.arange(batch_size)) / batch_size).ravel()
        x, w, v, w_dot = self.sample_path(u, rng)
        device = x.device
        first, last = self.xs[0], self.xs[-1]
        n = n_batches * batch_size
        x_start = first[torch.as_tensor(rng.integers(0, len(first), n), device=device)]
        x_end = last[torch.as_tensor(rng.integers(0, len(last), n), device=device)]
        t = torch.as_tensor(u, dtype=torch.float32, device=device)
        out = []
        for k in range(n_batches):
            sl = slice(k * batch_size, (k + 1) * batch_size)
            out.append(PathBatch(
                t=t[sl], x=x[sl], w=w[sl], x_start=x_start[sl], x_end=x_end[sl],
                mass_start=float(self.masses[0]), mass_end=float(self.masses[-1]),
                v=None if v is None else v[sl], w_dot=w_dot[sl],
            ))
        return out
