"""scam: single-cell Action Matching.

Learns continuous population dynamics (velocity, growth and death) from time-course snapshots.
Rooms: :mod:`scam.core` (engine, AnnData-free) <- :mod:`scam.tl` (AnnData tools) <- :mod:`scam.pl`
(figures); :mod:`scam.pp` (growth priors), :mod:`scam.metrics`, :mod:`scam.datasets`.
"""

from importlib import metadata as _metadata

from . import core, datasets, metrics, pl, pp, tl
from .core import ActionModel

try:  # the one place the version is set is pyproject.toml; the installed metadata carries it
    __version__ = _metadata.version("scam")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["ActionModel", "core", "datasets", "metrics", "pl", "pp", "tl", "__version__"]
