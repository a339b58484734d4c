"""The engine: AnnData-free Action Matching on arrays and tensors.

Networks (:mod:`~scam.core.network`), losses (:mod:`~scam.core.losses`), paths between snapshots
(:mod:`~scam.core.paths`, :mod:`~scam.core.pace`, :mod:`~scam.core.graph`,
:mod:`~scam.core.path_choice`), units (:mod:`~scam.core.scaling`), the training loop
(:mod:`~scam.core.train`) and the trained model with its
integrators (:mod:`~scam.core.model`). Nothing here imports AnnData.
"""

from .graph import leaves_support, off_support_share
from .losses import ObjectiveConfig, PathBatch, action_matching_loss
from .model import ActionModel
from .network import PotentialConfig, PotentialNet
from .pace import pace_warp
from .path_choice import PathChoice, choose_path, support_choice
from .paths import PathConfig, SnapshotPath, build_plan
from .scaling import Scaling
from .train import OptimConfig, TrainConfig, fit, validate_snapshots

__all__ = [
    "ActionModel",
    "ObjectiveConfig",
    "OptimConfig",
    "PathChoice",
    "PathBatch",
    "PathConfig",
    "PotentialConfig",
    "PotentialNet",
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
    "support_choice",
    "validate_snapshots",
]
