"""AnnData tools: fit Action Matching on a time course and use the fitted dynamics."""

from ._action_matching import action_matching
from ._dynamics import ancestors, couplings, fate_probabilities, simulate
from ._evaluate import evaluate_holdout
from ._genes import driver_genes, gene_trends, velocity_genes
from ._utils import get_model

__all__ = [
    "action_matching",
    "ancestors",
    "couplings",
    "driver_genes",
    "evaluate_holdout",
    "fate_probabilities",
    "gene_trends",
    "get_model",
    "simulate",
    "velocity_genes",
]
