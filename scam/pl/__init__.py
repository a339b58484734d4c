"""Plotting: figures of what :mod:`scam.tl` wrote into an AnnData (plots read, they never train)."""

from ._diagnostics import history, wasserstein
from ._dynamics import potential, trajectories, velocity
from ._fate import fate
from ._genes import gene_trends
from ._growth import growth

__all__ = ["fate", "gene_trends", "growth", "history", "potential", "trajectories", "velocity", "wasserstein"]
