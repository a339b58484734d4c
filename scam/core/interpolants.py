"""Interpolants: how a coupled pair of cells moves through its gap.

A coupling (:mod:`scam.core.couplings`) says which cell of one snapshot goes with which cell of the next;
an interpolant says where such a pair is at a fraction ``tau`` of the gap and how fast it moves there.
Every family implements one method, :meth:`Interpolant.sample`: the pairs of one gap in, the points and
their velocities out. :class:`~scam.core.paths.SnapshotPath` asks each gap's interpolant and knows no family.

Families (registered in :data:`INTERPOLANTS` under the name :attr:`PathConfig.path
<scam.core.paths.PathConfig.path>` takes):

- :class:`Straight` (``"straight"``): every pair on its straight line at the same fraction of the gap;
- :class:`Asynchronous` (``"asynchronous"``): every pair at its own pace (:mod:`scam.core.pace`);
- :class:`GraphRoute` (``"graph"``): pairs along shortest routes through the data (:mod:`scam.core.graph`);
- :class:`~scam.core.curved.Curved` (``"curved"``): pairs bent along the turning of the neighbouring
  snapshots (:mod:`scam.core.curved`; bound to the whole path by :meth:`Interpolant.bind`);

and two wrappers around any of them, which the path puts on where the fit asks for them:

- :class:`BrownianBridge`: entropic paths (``sigma > 0``) add the bridge's noise;
- :class:`MomentCorrected`: exact plans' matching error corrected for (:mod:`scam.core.noise`).

A new family is one subclass and one :func:`register_interpolant` call; ``PathConfig(path=name)`` then
uses it on every gap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .graph import along
from .pace import pace_warp

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .couplings import SegmentPlan
    from .noise import MomentCorrection
    from .path_choice import PathChoice


@dataclass
class Pairs:
    """The sampled pairs of one gap, as an interpolant receives them.

    Attributes
    ----------
    x0, x1
        Snapshot cells of the gap's two ends (internal units), ``(n_0, d)`` and ``(n_1, d)`` tensors.
    src, tgt
        Index of each pair's source cell in ``x0`` and target cell in ``x1``, ``(B,)``.
    idx
        Entries of ``plan`` the pairs were drawn as, ``(B,)``.
    tau
        Fraction of the gap at which each pair is wanted (real time), ``(B,)``.
    pos, dpos
        The plan's profile at ``tau``: where along the pair the point sits (0 source, 1 target; a
        destroyed cell stays at 0, a created one at 1) and its derivative in ``tau``.
    du
        Length of the gap (internal time).
    plan
        The gap's coupling (routes, for :class:`GraphRoute`).
    union
        ``union()`` returns ``x0`` and ``x1`` stacked (the nodes of the gap's routes).
    """

    x0: torch.Tensor
    x1: torch.Tensor
    src: np.ndarray
    tgt: np.ndarray
    idx: np.ndarray
    tau: np.ndarray
    pos: np.ndarray
    dpos: np.ndarray
    du: float
    plan: SegmentPlan
    union: Any = None

    def ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The source and target cell of every pair, ``(B, d)`` each."""
        import torch

        device = self.x0.device
        return (self.x0[torch.as_tensor(self.src, device=device)],
                self.x1[torch.as_tensor(self.tgt, device=device)])


@dataclass
class PathPoints:
    """What an interpolant returns for the pairs of one gap.

    Attributes
    ----------
    x
        Points of the path, ``(B, d)``.
    v
        Their velocities ``dx/du`` along each pair (``None`` where the path has no pathwise velocity:
        the noise of a Brownian bridge).
    start, end
        The straight segment each point lies on (the pair's cells, or the hop of a route), ``(B, d)``.
    pos
        Fraction of that segment, ``(B,)``.
    speed
        ``d pos / du``, ``(B,)``.
    """

    x: torch.Tensor
    v: torch.Tensor | None
    start: torch.Tensor
    end: torch.Tensor
    pos: np.ndarray
    speed: np.ndarray


def _as_tensor(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.as_tensor(values, dtype=torch.float32, device=like.device)


def on_segment(start: torch.Tensor, end: torch.Tensor, pos: np.ndarray, speed: np.ndarray) -> PathPoints:
    """Points at fractions ``pos`` of the segments ``start -> end`` moving at ``speed`` (fraction per unit u)."""
    pos_t = _as_tensor(pos, start)[:, None]
    x = (1 - pos_t) * start + pos_t * end
    v = _as_tensor(speed, start)[:, None] * (end - start)
    return PathPoints(x, v, start, end, pos, speed)


class Interpolant(ABC):
    """How the pairs of a gap move: one class per family.

    Class attributes
    ----------------
    name
        The registry name (:attr:`PathConfig.path <scam.core.paths.PathConfig.path>`).
    routes
        The family moves pairs along routes through the data: the gap's coupling is then solved on route
        costs and keeps every pair's route (:func:`~scam.core.couplings.build_plan` with ``graph=True``).
        Routes are deterministic: no Brownian bridge, no moment correction.
    """

    name: ClassVar[str] = ""
    routes: ClassVar[bool] = False

    @classmethod
    def from_choice(cls, choice: PathChoice) -> Interpolant:
        """The family's interpolant with the parameters a path choice settled (default: none)."""
        return cls()

    def bind(self, xs: list, times: np.ndarray, plans: list, gap: int, cache: dict) -> Interpolant:
        """This family for gap ``gap`` of a built path (default: itself, unchanged).

        Families whose pairs depend on more than their own gap (:class:`~scam.core.curved.Curved`: the
        neighbouring snapshots' plans) override it; :class:`~scam.core.paths.SnapshotPath` calls it once per
        gap after its plans are solved.

        Parameters
        ----------
        xs
            Every snapshot (internal units), numpy arrays.
        times
            Internal times.
        plans
            Every gap's coupling.
        gap
            The gap this interpolant will serve.
        cache
            Shared by the gaps of one path (what a family computes once per path).
        """
        return self

    def corrected(self, correction: MomentCorrection) -> Interpolant:
        """This family with the gap's moment correction (:mod:`scam.core.noise`); default: the
        :class:`MomentCorrected` wrapper, which replaces the point by the corrected straight segment."""
        return MomentCorrected(self, correction)

    @abstractmethod
    def sample(self, pairs: Pairs, rng: np.random.Generator) -> PathPoints:
        """Points of the pairs at their fractions ``pairs.tau`` and their velocities.

        Parameters
        ----------
        pairs
            The gap's sampled pairs.
        rng
            Generator (families that draw, e.g. a pace per pair).

        Returns
        -------
        PathPoints
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Straight(Interpolant):
    """Every pair on its straight line at the plan's profile: ``x = (1 - tau) x0 + tau x1``,
    ``v = (x1 - x0) / du`` (a destroyed or created cell stays where it is)."""

    name = "straight"

    def sample(self, pairs: Pairs, rng: np.random.Generator) -> PathPoints:
        start, end = pairs.ends()
        return on_segment(start, end, pairs.pos, pairs.dpos / pairs.du)


class Asynchronous(Interpolant):
    """Transported pairs each at their own pace ``sigmoid(logit(tau) + spread z)``, ``z ~ N(0, 1)``
    (:func:`~scam.core.pace.pace_warp`); the mass profile keeps real time.

    Parameters
    ----------
    spread
        Spread of the pairs' log-odds fractions (> 0).
    """

    name = "asynchronous"

    def __init__(self, spread: float):
        if not (np.isfinite(spread) and spread > 0):
            raise ValueError(f"An asynchronous pace needs a spread > 0, got {spread!r}.")
        self.spread = float(spread)

    @classmethod
    def from_choice(cls, choice: PathChoice) -> Interpolant:
        return cls(choice.pace_spread)

    def sample(self, pairs: Pairs, rng: np.random.Generator) -> PathPoints:
        warped, speed_factor = pace_warp(pairs.tau, self.spread, rng)
        moving = pairs.dpos > 0
        pos = np.where(moving, warped, pairs.pos)
        dpos = np.where(moving, pairs.dpos * speed_factor, pairs.dpos)
        start, end = pairs.ends()
        return on_segment(start, end, pos, dpos / pairs.du)

    def __repr__(self) -> str:
        return f"Asynchronous(spread={self.spread:g})"


class GraphRoute(Interpolant):
    """Pairs along their routes through the neighbour graph of the gap's two snapshots, at constant speed
    in arc length (:func:`~scam.core.graph.along`); the plan must carry routes."""

    name = "graph"
    routes = True

    def sample(self, pairs: Pairs, rng: np.random.Generator) -> PathPoints:
        import torch

        plan = pairs.plan
        if plan.route_ptr is None:
            raise ValueError("Graph routes need a coupling solved with routes (build_plan(..., graph=True)).")
        a, b, f, share = along(plan.route_ptr, plan.route_cum, plan.route_key, pairs.idx, pairs.pos)
        union = pairs.union()
        device = union.device
        start = union[torch.as_tensor(plan.route_nodes[a], device=device)]
        end = union[torch.as_tensor(plan.route_nodes[b], device=device)]
        return on_segment(start, end, f, pairs.dpos / pairs.du / share)


class BrownianBridge(Interpolant):
    """A Brownian bridge around another family's points: noise ``sigma sqrt(p (1 - p) du) N(0, I)`` at
    fraction ``p`` of the segment (entropic paths, ``sigma > 0``); no pathwise velocity.

    Parameters
    ----------
    inner
        The deterministic family the bridge spreads (not one with routes).
    sigma
        Diffusion coefficient (internal units).
    """

    def __init__(self, inner: Interpolant, sigma: float):
        if inner.routes:
            raise ValueError(f"{type(inner).__name__} follows deterministic routes; it takes no Brownian bridge "
                             "(use sigma=0 with it, or path='straight').")
        self.inner, self.sigma = inner, float(sigma)

    def sample(self, pairs: Pairs, rng: np.random.Generator) -> PathPoints:
        out = self.inner.sample(pairs, rng)
        p = out.pos
        noise = rng.standard_normal((len(p), out.x.shape[1])) * (self.sigma * np.sqrt(p * (1 - p) * pairs.du))[:, None]
        out.x = out.x + _as_tensor(noise.astype(np.float32), out.x)
        out.v = None
        return out

    def __repr__(self) -> str:
        return f"BrownianBridge({self.inner!r}, sigma={self.sigma:g})"


class MomentCorrected(Interpolant):
    """Another family's straight segments, corrected for the plan's matching error
    (:class:`~scam.core.noise.MomentCorrection`); the velocity is the corrected one at the same pace.

    Parameters
    ----------
    inner
        A family whose segments are the pairs themselves (not one with routes).
    correction
        The gap's correction.
    """

    def __init__(self, inner: Interpolant, correction: MomentCorrection):
        if inner.routes:
            raise ValueError(f"{type(inner).__name__} moves along routes through the data: nothing to correct.")
        self.inner, self.correction = inner, correction

    def sample(self, pairs: Pairs, rng: np.random.Generator) -> PathPoints:
        out = self.inner.sample(pairs, rng)
        x, vt = self.correction.apply(out.start, out.end, out.pos)
        out.x, out.v = x, _as_tensor(out.speed, x)[:, None] * vt
        return out

    def __repr__(self) -> str:
        return f"MomentCorrected({self.inner!r})"


INTERPOLANTS: dict[str, type[Interpolant]] = {}
"""The path families by name (:attr:`PathConfig.path <scam.core.paths.PathConfig.path>`); filled by
:func:`register_interpolant`."""


def register_interpolant(cls: type[Interpolant]) -> type[Interpolant]:
    """Make a family available as ``PathConfig(path=cls.name)`` (usable as a class decorator).

    Parameters
    ----------
    cls
        A subclass of :class:`Interpolant` with a new, non-empty ``name``.

    Returns
    -------
    The class, unchanged.
    """
    if not (isinstance(cls, type) and issubclass(cls, Interpolant)):
        raise TypeError(f"Only Interpolant subclasses can be registered, got {cls!r}.")
    if not cls.name or cls.name in ("support", "auto"):
        raise ValueError(f"An interpolant needs a name other than 'support' and 'auto', got {cls.name!r}.")
    if cls.name in INTERPOLANTS and INTERPOLANTS[cls.name] is not cls:
        raise ValueError(f"An interpolant named {cls.name!r} is registered already.")
    INTERPOLANTS[cls.name] = cls
    return cls


for _family in (Straight, Asynchronous, GraphRoute):
    register_interpolant(_family)
