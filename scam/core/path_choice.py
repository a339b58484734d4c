"""Choosing the path between snapshots on the training snapshots themselves.

Held-out time points are what users judge a model by, and the training data can stand in for them:
every inner training time point (at most :data:`MAX_VALIDATED`, evenly spread) is held out in turn,
predicted from its two neighbours by each candidate path (no training: the path's own points at the
held-out time, drawn by :meth:`~scam.core.SnapshotPath.sample_path` from exact-OT couplings between
subsamples of the neighbours) and scored by exact W1 against its cells, relative to the straight
path of the same draw. The candidates are the straight path, the asynchronous paths of every spread
of :data:`~scam.core.pace.PACE_GRID` (:mod:`scam.core.pace`) and the graph path
(:mod:`scam.core.graph`). A candidate replaces the straight path only where its mean ratio over
:data:`VALIDATION_REPEATS` independent draws per held-out time is below 1 by more than twice its
standard error.

Two time points hold nothing to validate on: the path stays straight (a Gaussian W2 geodesic, pure
transport at constant speed, is straight). Where the model changes mass, asynchronous candidates are
left out: a population whose make-up changes between time points can be explained by growth or by
cells moving at different paces, and the change is left to growth, whose rates users read as biology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import ot

from .._utils import side_stream
from .couplings import explicit_pairs
from .distributed import on_rank0, per_gap
from .graph import SUPPORT_MAJORITY, off_support_share
from .interpolants import INTERPOLANTS, Interpolant
from .pace import PACE_GRID

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig

VALIDATION_CELLS = 1000  # cells per snapshot in each validation draw
VALIDATION_REPEATS = 3  # independent draws per held-out inner time point
MAX_VALIDATED = 3  # inner time points held out at most
_SAMPLES = 3000  # path points drawn per candidate and draw


@dataclass
class PathChoice:
    """What :func:`choose_path` decided, and on what evidence.

    Attributes
    ----------
    path
        ``"straight"``, ``"asynchronous"``, ``"graph"`` or ``"curved"`` (``"graph"``/``"curved"``: some gap
        has that family, ``gaps`` says which).
    pace_spread
        The asynchronous pace's spread (0 otherwise).
    reason
        Why, in words.
    held_out
        Times of the inner time points held out.
    candidates
        Labels of the candidates compared (``"straight"``, ``"asynchronous 1.5"``, ``"graph"``, ...).
    ratio
        ``(n_held_out * repeats, n_candidates)``: held-out W1 relative to the straight path's.
    gaps
        The family of each gap (a name of :data:`~scam.core.interpolants.INTERPOLANTS`: ``"straight"``,
        ``"graph"``, ...): chosen gap by gap with ``path="support"``, ``path`` on every gap otherwise.
    off_support
        ``path="support"``: per gap, the share of the straight interpolation off the snapshots'
        support (:func:`scam.core.off_support_share`).
    """

    path: str
    pace_spread: float
    reason: str
    held_out: list[float] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    ratio: np.ndarray | None = None
    gaps: list[str] = field(default_factory=list)
    off_support: list[float] = field(default_factory=list)
    curve_ratio: np.ndarray | None = None  # [1, curved / straight] held-out W1 per validation draw (curved_choice)

    def to_dict(self) -> dict:
        """Plain JSON values (the model's metadata)."""
        return {
            "path": self.path, "pace_spread": float(self.pace_spread), "reason": self.reason,
            "held_out": list(map(float, self.held_out)), "candidates": list(self.candidates),
            "ratio": [] if self.ratio is None else np.asarray(self.ratio, float).tolist(),
            "gaps": list(self.gaps), "off_support": list(map(float, self.off_support)),
            "curve_ratio": [] if self.curve_ratio is None else np.asarray(self.curve_ratio, float).tolist(),
        }

    @classmethod
    def every_gap(cls, path: str, n_gaps: int, reason: str, pace_spread: float = 0.0, **evidence) -> PathChoice:
        """One family for every one of ``n_gaps`` gaps."""
        return cls(path, float(pace_spread), reason, gaps=[path] * n_gaps, **evidence)

    def interpolant(self, k: int) -> Interpolant:
        """The interpolant of gap ``k`` (its family with the parameters chosen here)."""
        return INTERPOLANTS[self.gaps[k]].from_choice(self)

    @property
    def route_gaps(self) -> list[bool]:
        """Per gap: whether its pairs follow routes through the data (its coupling then keeps routes)."""
        return [INTERPOLANTS[g].routes for g in self.gaps]


def support_choice(xs: list[np.ndarray], rng: np.random.Generator) -> PathChoice:
    """Straight or graph path for each gap, by how much of its straight interpolation leaves the data.

    Parameters
    ----------
    xs
        Snapshots (internal units), sorted by time.
    rng
        Random generator (subsamples).

    Returns
    -------
    PathChoice
        ``path`` is ``"graph"`` if any gap follows routes, ``gaps`` says which.
    """
    streams = rng.spawn(len(xs) - 1)  # one per gap: gaps are measured in threads, and across ranks
    # (every rank gathers the same shares, so all make the same decision)
    shares = per_gap(lambda k: off_support_share(xs[k], xs[k + 1], streams[k]), len(xs) - 1)
    gaps = ["graph" if s > SUPPORT_MAJORITY else "straight" for s in shares]
    listed = ", ".join(f"{s:.2f}" for s in shares)
    reason = (f"path='support': share of each gap's straight interpolation off the snapshots' support {listed}; "
              f"graph routes where it is above {SUPPORT_MAJORITY:g}")
    return PathChoice("graph" if "graph" in gaps else "straight", 0.0, reason, gaps=gaps, off_support=shares)


def resolve_path(config: TrainConfig, xs: list[np.ndarray], times: np.ndarray, *, changes_mass: bool,
                 rng: np.random.Generator) -> PathChoice:
    """The one decision of how pairs move through each gap, and why (:attr:`PathConfig.path
    <scam.core.paths.PathConfig.path>`).

    ``"support"``: graph routes for the gaps whose straight interpolation mostly leaves the data
    (:func:`support_choice`), the other gaps bent where held-out inner time points validate it (four or more
    time points: :func:`scam.core.curved.curved_choice`; a routed gap bends where the curve also beats its
    routes there), straight for entropic paths and couplings without
    explicit pairs; a family
    name: that family on every gap; ``"auto"`` and ``"asynchronous"`` without a ``pace_spread``: validated
    on held-out inner time points (:func:`choose_path`; decided on rank 0 under torch.distributed).
    Randomness comes from side streams of ``rng`` (:func:`scam._utils.side_stream`): the fit's own
    streams are the same whatever is decided.

    Parameters
    ----------
    config
        Training settings with the coupling resolved (``config.path.coupling`` not ``"auto"``).
    xs
        Snapshots (internal units), sorted by time.
    times
        Their times.
    changes_mass
        Whether the path will change mass (asynchronous candidates are then left out of ``"auto"``:
        changes in make-up are left to growth).
    rng
        The fit's generator (only side streams are drawn).

    Returns
    -------
    PathChoice
        With ``gaps`` filled: one family per gap.
    """
    pc, sigma, n_gaps = config.path, config.objective.sigma, len(xs) - 1
    if pc.path == "support":
        if sigma > 0:
            return PathChoice.every_gap("straight", n_gaps,
                                        "path='support' with an entropic path (sigma > 0): straight")
        if not explicit_pairs(pc.coupling):
            return PathChoice.every_gap(
                "straight", n_gaps, f"path='support' with coupling={pc.coupling!r} (no explicit pairs): straight")
        return _with_curves(support_choice(xs, side_stream(rng, 0)), xs, times, side_stream(rng, 2))
    if pc.path == "asynchronous" and pc.pace_spread is not None:
        return PathChoice.every_gap("asynchronous", n_gaps, "path='asynchronous' with the given pace_spread",
                                    pace_spread=pc.pace_spread)
    if pc.path not in ("auto", "asynchronous"):
        return PathChoice.every_gap(pc.path, n_gaps, f"path={pc.path!r}")
    if pc.path == "auto" and sigma > 0:
        return PathChoice.every_gap(
            "straight", n_gaps, "entropic path (sigma > 0): the Brownian bridge spreads the pairs; straight")
    stream = side_stream(rng, 1)
    if pc.path == "asynchronous":
        return on_rank0(lambda: choose_path(xs, times, stream, only="asynchronous"))
    choice = on_rank0(lambda: choose_path(xs, times, stream, asynchronous=not changes_mass,
                                          graph=explicit_pairs(pc.coupling)))
    if changes_mass:
        choice.reason += "; asynchronous paths left out: the path changes mass (changes in make-up are left to growth)"
    if choice.path in ("straight", "graph") and explicit_pairs(pc.coupling):
        choice = _with_curves(choice, xs, times, side_stream(rng, 2))
    return choice


def _with_curves(choice: PathChoice, xs, times, rng: np.random.Generator) -> PathChoice:
    """``choice`` with its straight gaps bent where :func:`scam.core.curved.curved_choice` validates it
    (four or more time points; decided on rank 0); the evidence is added to the reason, per gap in ``gaps``."""
    from .curved import curved_choice

    if len(xs) < 4 or not {"straight", "graph"} & set(choice.gaps):
        return choice
    bent = on_rank0(lambda: curved_choice(xs, times, rng, base=choice.gaps))
    choice.gaps = bent.gaps
    choice.reason += "; curvature: " + bent.reason
    choice.curve_ratio = bent.ratio
    if "curved" in bent.gaps and choice.path == "straight":
        choice.path = "curved"
    return choice


def _w1(points: np.ndarray, target: np.ndarray) -> float:
    # repeated points (the same pair drawn again at one time, frequent on small snapshots) become one point with
    # their summed weight: the same W1, without the degenerate ties that stall the network simplex
    points, counts = np.unique(np.asarray(points, dtype=np.float64), axis=0, return_counts=True)
    cost = ot.dist(points, target, metric="euclidean")
    a, b = counts / counts.sum(), np.full(len(target), 1.0 / len(target))
    return float(ot.emd2(a, b, cost, numItermax=max(1_000_000, 50 * cost.size)))


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def candidate_scores(x0, x1, held, tau: float, candidates: list[str], rng: np.random.Generator) -> np.ndarray:
    """W1 between ``held`` and each candidate path from ``x0`` to ``x1`` at fraction ``tau``.

    Parameters
    ----------
    x0, x1, held
        The two neighbours and the held-out cells.
    tau
        Fraction of the gap at which ``held`` was observed.
    candidates
        Labels: ``"straight"``, ``"asynchronous <spread>"``, ``"graph"``.
    rng
        Random generator.

    Returns
    -------
    numpy.ndarray
        One W1 per candidate.
    """
    from .paths import PathConfig, SnapshotPath

    times, ones, config = np.array([0.0, 1.0]), np.ones(2), PathConfig(coupling="ot", noise_correction=False)
    paths = {}  # one coupling per kind of pairing (straight pairs or routes), shared by the families using it
    out = []
    for label in candidates:
        choice = _candidate(label)
        routes = choice.route_gaps[0]
        if routes not in paths:
            paths[routes] = SnapshotPath([x0, x1], times, ones, config, choice=choice, rng=rng)
        path = paths[routes].with_choice(choice)
        x, _, _, _ = path.sample_path(np.full(_SAMPLES, tau), rng)
        out.append(_w1(x.cpu().numpy().astype(np.float64), held))
    return np.asarray(out)


def held_out_ratios(xs: list[np.ndarray], times: np.ndarray, inner, candidates: list[str],
                    rng: np.random.Generator) -> np.ndarray:
    """Held-out W1 of each candidate relative to the first one's (the straight path), same draw: every inner
    time point of ``inner`` predicted from its two neighbours, :data:`VALIDATION_REPEATS` draws of
    :data:`VALIDATION_CELLS` cells each (:func:`candidate_scores`).

    Returns
    -------
    numpy.ndarray
        ``(len(inner) * VALIDATION_REPEATS, len(candidates))``.
    """
    times = np.asarray(times, dtype=np.float64)
    rows = []
    for k in inner:
        tau = (times[k] - times[k - 1]) / (times[k + 1] - times[k - 1])
        for _ in range(VALIDATION_REPEATS):
            x0, x1, held = (_subsample(xs[m], VALIDATION_CELLS, rng) for m in (k - 1, k + 1, k))
            s = candidate_scores(x0, x1, held, tau, candidates, rng)
            rows.append(s / s[0])
    return np.asarray(rows)


def _candidate(label: str) -> PathChoice:
    """The one-gap path a candidate label stands for (``"asynchronous 1.5"``: family and spread)."""
    family, _, spread = label.partition(" ")
    return PathChoice.every_gap(family, 1, label, pace_spread=float(spread) if spread else 0.0)


def choose_path(xs: list[np.ndarray], times: np.ndarray, rng: np.random.Generator, *,
                asynchronous: bool = True, graph: bool = True, only: str | None = None) -> PathChoice:
    """Choose the path by holding out inner training time points.

    Parameters
    ----------
    xs
        Snapshots (Euclidean distances are compared: internal units), sorted by time.
    times
        Their times.
    rng
        Random generator (subsamples, couplings, paces).
    asynchronous, graph
        Whether those candidates take part (the straight path always does).
    only
        ``"asynchronous"``: only its spreads compete and the best is taken whatever the evidence
        (``path="asynchronous"`` without a ``pace_spread``).

    Returns
    -------
    PathChoice
    """
    times, n_gaps = np.asarray(times, dtype=np.float64), len(xs) - 1
    if only == "asynchronous" and len(xs) < 3:
        spread = PACE_GRID[len(PACE_GRID) // 2]
        return PathChoice.every_gap("asynchronous", n_gaps,
                                    f"two time points: nothing to validate on; spread {spread:g}", pace_spread=spread)
    if len(xs) < 3:
        return PathChoice.every_gap("straight", n_gaps,
                                    "two time points: no inner one to validate the path on; straight")
    candidates = ["straight"]
    if asynchronous or only == "asynchronous":
        candidates += [f"asynchronous {s:g}" for s in PACE_GRID]
    if graph and only is None:
        candidates.append("graph")
    inner = np.arange(1, len(xs) - 1)
    if len(inner) > MAX_VALIDATED:
        inner = inner[np.round(np.linspace(0, len(inner) - 1, MAX_VALIDATED)).astype(int)]
    ratio = held_out_ratios(xs, times, inner, candidates, rng)
    mean = ratio.mean(axis=0)
    se = ratio.std(axis=0, ddof=1) / np.sqrt(len(ratio))
    held_out = [float(times[k]) for k in inner]
    best = 1 + int(np.argmin(mean[1:])) if only else int(np.argmin(mean))
    label = candidates[best]
    evidence = f"W1 {mean[best]:.3f}x the straight path's (+- {se[best]:.3f}) for {label}"
    if best == 0 or (not only and mean[best] + 2 * se[best] >= 1.0):
        label = "straight"
        reason = f"held-out inner time points: nothing beats the straight path by 2 standard errors (best: {evidence})"
    else:
        reason = f"held-out inner time points: {evidence}"
    chosen = _candidate(label)
    return PathChoice.every_gap(chosen.path, n_gaps, reason, pace_spread=chosen.pace_spread, held_out=held_out,
                                candidates=candidates, ratio=ratio)
