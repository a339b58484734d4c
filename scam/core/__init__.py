"""The engine: AnnData-free Action Matching on arrays and tensors.

Networks (:mod:`~scam.core.network`), losses (:mod:`~scam.core.losses`), paths between snapshots
(:mod:`~scam.core.paths`): the couplings (:mod:`~scam.core.couplings`, :mod:`~scam.core.growth_plans`),
the interpolants (:mod:`~scam.core.interpolants`, with :mod:`~scam.core.pace` and :mod:`~scam.core.graph`)
and the one decision between them (:mod:`~scam.core.path_choice`); units (:mod:`~scam.core.scaling`), the
training loop (:mod:`~scam.core.train`, its settings in :mod:`~scam.core.config`) and its report
(:mod:`~scam.core.report`), the trained model with its integrators (:mod:`~scam.core.model`) and fate
estimators on it (:mod:`~scam.core.fate_estimators`).
Nothing here imports AnnData.
"""

from .config import OptimConfig, TrainConfig
from .couplings import SegmentPlan, build_plan
from .fate_estimators import DescendantChain, FateEstimator, Push
from .graph import leaves_support, off_support_share
from .interpolants import (
    Asynchronous,
    BrownianBridge,
    GraphRoute,
    Interpolant,
    MomentCorrected,
    Straight,
    register_interpolant,
)
from .losses import ObjectiveConfig, PathBatch, action_matching_loss
from .model import ActionModel
from .network import PotentialConfig, PotentialNet
from .pace import pace_warp
from .path_choice import PathChoice, choose_path, resolve_path, support_choice
from .paths import PathConfig, SnapshotPath
from .report import FitReport
from .scaling import Scaling
from .train import fit, validate_snapshots

__all__ = [
    "ActionModel",
    "Asynchronous",
    "BrownianBridge",
    "DescendantChain",
    "FateEstimator",
    "FitReport",
    "GraphRoute",
    "Interpolant",
    "MomentCorrected",
    "SegmentPlan",
    "Straight",
    "ObjectiveConfig",
    "OptimConfig",
    "PathChoice",
    "PathBatch",
    "PathConfig",
    "PotentialConfig",
    "PotentialNet",
    "Push",
    "Scaling",
    "SnapshotPath",
    "TrainConfig",
    "action_matching_loss",
    "build_plan",
    "choose_path",
    "fit",
    "leaves_support",
    "off_support_share",
    "pace_warp",
    "register_interpolant",
    "resolve_path",
    "support_choice",
    "validate_snapshots",
]
