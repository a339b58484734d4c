"""Training settings, by concern: :class:`OptimConfig` (the optimiser) and :class:`TrainConfig`, which groups it
with :class:`~scam.core.paths.PathConfig` (the couplings and paths) and :class:`~scam.core.losses.ObjectiveConfig`
(the loss). Each setting is defined, with its default and its checks, in exactly one of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from .._utils import check_types
from .couplings import explicit_pairs
from .interpolants import INTERPOLANTS
from .losses import ObjectiveConfig
from .paths import PathConfig


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings of :func:`fit`.

    Parameters
    ----------
    n_steps
        Maximum number of optimiser steps. Default 2000, enough for the ``"pathwise"`` estimator in a few
        dimensions; the ``"boundary"`` estimator (entropic AM) is noisier and gains from more, as do
        embeddings with many dimensions (measurements: ``benchmarks/README.md``).
    batch_size
        Path samples per step (times are stratified over ``[t_0, t_K]``). At most ``2**20`` (1,048,576):
        training holds the network's activations and their gradients for every sample (tens of kB
        each with the default network, so ``2**20`` samples already need tens of GB); larger values
        are rejected before any work.
    lr, weight_decay
        AdamW learning rate and weight decay. ``lr=None`` (default) is resolved by the fit
        (:meth:`TrainConfig.resolved`): ``LR["separate"]`` (2e-3) with a separate growth network, which goes
        with the default network width (:class:`~scam.core.PotentialConfig`, 128; the wider 256 of the
        defaults until 2026-12-07 was trained at 1e-3), and ``LR["potential"]`` (1e-3) for the paper's single
        potential, whose ``lambda/2 s^2`` term makes the potential's values, not only its gradient, part of
        the loss and recovers its growth field better with the smaller step (``benchmarks/README.md``).
    warmup
        Linear learning-rate warm-up steps (then cosine decay to ``LR_FLOOR * lr``).
    ema_decay
        Exponential moving average of the weights (the EMA weights are returned).
    grad_clip
        Maximum gradient norm (0: no clipping).
    eval_every, patience
        Every ``eval_every`` steps the EMA model is scored on a fixed validation batch; training
        stops after ``patience`` evaluations without improvement and the best weights are kept.
    """

    n_steps: int = 2000
    batch_size: int = 256
    lr: float | None = None
    weight_decay: float = 1e-4
    warmup: int = 200
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    eval_every: int = 100
    patience: int = 10

    def __post_init__(self):
        check_types(self, ints=("n_steps", "batch_size", "eval_every", "patience", "warmup"),
                    numbers=("weight_decay", "ema_decay", "grad_clip") + (() if self.lr is None else ("lr",)))
        for name in ("n_steps", "batch_size", "eval_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"OptimConfig.{name} must be >= 1, got {getattr(self, name)}.")
        if self.batch_size > 2**20:
            raise ValueError(
                f"OptimConfig.batch_size must be <= 2**20 (1,048,576), got {self.batch_size:,}: every path sample "
                "of a batch holds network activations and gradients (tens of kB each), so such a batch would need "
                "tens of GB of memory. The default 256 suits most data; pass e.g. config={'batch_size': 4096} for "
                "more samples per step."
            )
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"OptimConfig.lr must be > 0, got {self.lr}.")
        for name in ("weight_decay", "warmup", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"OptimConfig.{name} must be >= 0, got {getattr(self, name)}.")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"OptimConfig.ema_decay must be in [0, 1), got {self.ema_decay}.")


LR = {"separate": 2e-3, "potential": 1e-3}  # the learning rate lr=None resolves to, per growth model

_GROUPS = {"path": PathConfig, "objective": ObjectiveConfig, "optim": OptimConfig}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`fit`, by concern: how snapshots are joined (:class:`~scam.core.paths.PathConfig`),
    what the loss asks (:class:`~scam.core.losses.ObjectiveConfig`), how it is optimised
    (:class:`OptimConfig`). Each setting is defined (with its default) in exactly one of them; build
    from flat names with :meth:`from_flat`.

    ``coupling="auto"`` (:attr:`PathConfig.coupling`) resolves (:meth:`resolved_coupling`) to:
    for unbalanced models with a separate growth network (the default) and no per-cell prior,
    ``"weighted"``: exact OT between source cells weighted by the growth the data show
    (:mod:`scam.core.growth`: mass that an unbalanced plan destroys beyond what a pure-transport
    null does; none: pure transport) and the target cells, each pair growing at a constant rate.
    For the paper's single potential (``growth_model="potential"``), exact unbalanced OT
    (``"uot"``) with equal total masses. With a per-cell growth prior, or unequal masses under
    ``"potential"``, exact OT with the prior's weights / geometric pair masses. Sinkhorn with the
    Schrödinger-bridge regularisation when ``sigma > 0`` (or exact OT when that regularisation is
    below 2% of the mean squared distance, where the two plans nearly agree and Sinkhorn would take
    minutes per pair). Or one of ``"ot"``, ``"uot"`` (exact OT with a total-variation marginal
    penalty: cells that would have to move further than ``uot_threshold`` allows die at the source
    and appear at the target along the Fisher-Rao profile ``(1 - tau)^2`` / ``tau^2``),
    ``"sinkhorn"``, ``"unbalanced"`` (entropic unbalanced OT, KL penalty ``reg_m``: slower, and the
    path's total mass sags inside each gap), ``"independent"``. With unequal masses the balanced
    plans interpolate each pair's mass geometrically, so the path's total mass follows the given
    masses; the unbalanced objective then decides how much of the change is growth.

    Parameters
    ----------
    path
        Couplings between snapshots.
    objective
        Diffusion, growth model and loss estimator.
    optim
        Optimiser, schedule and early stopping.
    """

    path: PathConfig = field(default_factory=PathConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self):
        for name, cls in _GROUPS.items():
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"TrainConfig.{name} must be a {cls.__name__}, got {getattr(self, name)!r}.")
        family = INTERPOLANTS.get(self.path.path)
        if family is not None and family.routes:
            if self.objective.sigma > 0:
                raise ValueError(f"path={self.path.path!r} follows deterministic routes; it needs sigma=0 "
                                 "(or path='straight').")
            if self.path.coupling != "auto" and not explicit_pairs(self.path.coupling):
                raise ValueError(f"path={self.path.path!r} needs a coupling with explicit pairs, "
                                 f"got coupling={self.path.coupling!r}.")

    @classmethod
    def from_flat(cls, argument: str = "config", **settings) -> TrainConfig:
        """Build from flat setting names (``n_steps=4000, coupling="ot"``), each routed to its group.

        Parameters
        ----------
        argument
            Name of the user-facing parameter the settings came in (for error messages).
        **settings
            Fields of :class:`~scam.core.paths.PathConfig`, :class:`~scam.core.losses.ObjectiveConfig`
            or :class:`OptimConfig`.

        Returns
        -------
        TrainConfig

        Raises
        ------
        ValueError
            For unknown names, listing the valid ones.
        """
        groups = {name: {} for name in _GROUPS}
        owner = {f.name: name for name, group in _GROUPS.items() for f in fields(group)}
        unknown = sorted(set(settings) - set(owner))
        if unknown:
            raise ValueError(f"Unknown option(s) {unknown} in `{argument}`; valid: {sorted(owner)}.")
        for key, value in settings.items():
            groups[owner[key]][key] = value
        return cls(**{name: _GROUPS[name](**kw) for name, kw in groups.items()})

    def to_dict(self) -> dict:
        """Flat dictionary of every setting (names are unique across the groups)."""
        return {k: v for name in _GROUPS for k, v in asdict(getattr(self, name)).items()}

    def resolved_coupling(self, *, prior: bool = False, equal_masses: bool = True) -> str:
        """The coupling ``"auto"`` stands for.

        ``prior``: a per-cell growth prior is given; ``equal_masses``: all snapshots have the same
        total mass.
        """
        coupling, obj = self.path.coupling, self.objective
        if coupling != "auto":
            return coupling
        if obj.sigma > 0:
            return "sinkhorn"
        if obj.growth_weight == 0 or prior:
            return "ot"
        if obj.growth_model == "separate":
            return "weighted"
        return "uot" if equal_masses else "ot"

    def resolved_estimator(self) -> str:
        """The loss estimator ``"auto"`` stands for."""
        return self.objective.resolved_estimator()

    def resolved(self, *, prior: bool = False, equal_masses: bool = True) -> TrainConfig:
        """The same settings with every ``"auto"`` the fit resolves filled in (:meth:`resolved_coupling`,
        :meth:`resolved_estimator`; ``noise_correction`` only with the ``"pathwise"`` estimator; ``lr=None``:
        ``LR`` of the growth model)."""
        estimator = self.resolved_estimator()
        path = replace(self.path, coupling=self.resolved_coupling(prior=prior, equal_masses=equal_masses),
                       noise_correction=self.path.noise_correction and estimator == "pathwise")
        lr = LR[self.objective.growth_model] if self.optim.lr is None else self.optim.lr
        return replace(self, path=path, objective=replace(self.objective, estimator=estimator),
                       optim=replace(self.optim, lr=lr))
