"""The engine: AnnData-free Action Matching on arrays and tensors.

Networks (:mod:`~scam.core.network`), losses (:mod:`~scam.core.losses`), paths between snapshots
(:mod:`~scam.core.paths`), the training loop (:mod:`~scam.core.train`) and the trained model with its
integrators (:mod:`~scam.core.model`). Nothing here imports AnnData.
"""

from .losses import PathBatch, action_matching_loss
from .model import ActionModel
from .network import PotentialConfig, PotentialNet
from .paths import SnapshotPath, build_plan
from .train import TrainConfig, fit, validate_snapshots

__all__ = [
    "ActionModel",
    "PathBatch",
    "PotentialConfig",
    "PotentialNet",
    "SnapshotPath",
    "TrainConfig",
    "action_matching_loss",
    "build_plan",
    "fit",
    "validate_snapshots",
]
