"""What a fit decided and measured: :class:`FitReport`.

The engine decides several things from the data (the coupling, the path of each gap, whether and where the
population grows) and measures others (matching noise, time per phase). The report holds them typed; the
model keeps it as plain JSON (:meth:`FitReport.to_info`, ``ActionModel.info``, saved with the weights), and
:func:`scam.tl.action_matching` writes :meth:`FitReport.to_uns` into ``adata.uns`` as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .growth import GRID, GapGrowth
from .path_choice import PathChoice


@dataclass
class FitReport:
    """What :func:`scam.core.fit` decided and measured.

    Attributes
    ----------
    coupling
        The coupling between consecutive snapshots (``"auto"`` resolved).
    path
        The path of each gap and the evidence for it.
    estimator
        The loss estimator (``"pathwise"`` or ``"boundary"``).
    growth
        What carries growth: ``"network"``, ``"potential"``, ``"none"``, ``"none (no evidence)"`` or
        ``"none (evidence not placed)"``.
    growth_evidence
        ``"weighted"`` coupling: the growth evidence of every gap (else None).
    plan_cells
        Cells per snapshot that entered the couplings.
    matching_noise
        Per gap the share of the paired cells' squared displacement that is matching error (NaN for gaps
        left uncorrected); None when no gap is corrected.
    mean_directions
        Directions in which the snapshots' means move beyond their sampling noise; the corrected gaps move
        the path's mean along those only (:func:`~scam.core.noise.denoised_mean_shifts`). None when no gap
        is corrected.
    seconds
        Wall time per phase (``plans``, ``training``).
    steps
        Optimiser steps taken.
    lr
        The learning rate used (``OptimConfig.lr=None`` resolved; None in reports saved before it was
        recorded).
    """

    coupling: str
    path: PathChoice
    estimator: str
    growth: str
    growth_evidence: list[GapGrowth] | None = None
    plan_cells: list[int] = field(default_factory=list)
    matching_noise: list[float] | None = None
    mean_directions: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    lr: float | None = None

    def to_info(self) -> dict:
        """Plain JSON values (``ActionModel.info``, saved with the model)."""
        return {
            "coupling": self.coupling,
            "path": self.path.to_dict(),
            "estimator": self.estimator,
            "growth": self.growth,
            "growth_evidence": None if self.growth_evidence is None else [g.to_dict() for g in self.growth_evidence],
            "plan_cells": [int(n) for n in self.plan_cells],
            "matching_noise": None if self.matching_noise is None else [float(m) for m in self.matching_noise],
            "mean_directions": None if self.mean_directions is None else int(self.mean_directions),
            "seconds": {k: float(v) for k, v in self.seconds.items()},
            "steps": int(self.steps),
            "lr": None if self.lr is None else float(self.lr),
        }

    @classmethod
    def from_info(cls, info: dict) -> FitReport:
        """The report of a model's ``info`` (:meth:`to_info`, as saved)."""
        path = dict(info.get("path") or {"path": "straight", "pace_spread": 0.0, "reason": ""})
        ratio = path.get("ratio") or []
        choice = PathChoice(
            path["path"], float(path.get("pace_spread", 0.0)), path.get("reason", ""),
            held_out=list(path.get("held_out", [])), candidates=list(path.get("candidates", [])),
            ratio=np.asarray(ratio, float).reshape(len(ratio), len(path.get("candidates", []))),
            gaps=list(path.get("gaps", [])), off_support=list(path.get("off_support", [])),
        )
        evidence = info.get("growth_evidence")
        return cls(
            coupling=info.get("coupling", ""), path=choice, estimator=info.get("estimator", ""),
            growth=info.get("growth", ""),
            growth_evidence=None if evidence is None else [GapGrowth(**g) for g in evidence],
            plan_cells=list(info.get("plan_cells", [])), matching_noise=info.get("matching_noise"),
            mean_directions=info.get("mean_directions"),
            seconds=dict(info.get("seconds", {})), steps=int(info.get("steps", 0)), lr=info.get("lr"),
        )

    def to_uns(self) -> dict:
        """The entries :func:`scam.tl.action_matching` writes into ``adata.uns[key]``: ``params`` (what the
        engine decided), ``path_choice``, ``seconds`` and, where measured, ``growth_evidence`` and
        ``matching_noise`` (their layout is documented there)."""
        choice = self.path
        out = {
            "params": {"coupling": self.coupling, "estimator": self.estimator, "growth_fit": self.growth,
                       "lr": np.nan if self.lr is None else float(self.lr),
                       "path": choice.path, "pace_spread": float(choice.pace_spread), "path_reason": choice.reason,
                       "path_gaps": list(choice.gaps)},
            "path_choice": {
                "held_out": np.asarray(choice.held_out, float),
                "candidates": np.asarray(choice.candidates, dtype=str),
                "ratio": np.asarray([] if choice.ratio is None else choice.ratio, float).reshape(
                    0 if choice.ratio is None else len(choice.ratio), len(choice.candidates)),
                "off_support": np.asarray(choice.off_support, float),
            },
            "seconds": {k: float(v) for k, v in self.seconds.items()},
        }
        if self.growth_evidence is not None:
            gaps = self.growth_evidence
            out["growth_evidence"] = {
                "grid": np.asarray(GRID, float),
                **{name: np.array([getattr(g, name) for g in gaps], float) for name in ("destroyed", "null", "excess")},
                "threshold": np.array([np.nan if g.threshold is None else g.threshold for g in gaps], float),
                "agreement": np.array([np.nan if g.agreement is None else g.agreement for g in gaps], float),
                "scale": np.array([np.nan if g.scale is None else g.scale for g in gaps], float),
            }
        if self.matching_noise is not None:
            out["matching_noise"] = np.asarray(self.matching_noise, float)
        if self.mean_directions is not None:
            out["params"]["mean_directions"] = int(self.mean_directions)
        return out
