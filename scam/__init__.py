"""scam: single-cell Action Matching.

Learns continuous population dynamics (velocity, growth and death) from time-course snapshots.
Rooms: :mod:`scam.core` (engine, AnnData-free) <- :mod:`scam.tl` (AnnData tools) <- :mod:`scam.pl`
(figures); :mod:`scam.pp` (growth priors), :mod:`scam.metrics`, :mod:`scam.datasets`.
"""

from . import core, datasets, metrics, pl, pp, tl
from .core import ActionModel

__version__ = "0.1.0"

__all__ = ["ActionModel", "core", "datasets", "metrics", "pl", "pp", "tl", "__version__"]
