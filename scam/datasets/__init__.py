"""Datasets: real time courses in one line, offline first, every file sha256-checked.

- :func:`list_datasets` - what is registered (``data_registry.yaml``), its size and whether it is cached;
- :func:`load` - a registered dataset as AnnData (downloaded once into ``$SCAM_DATA_DIR`` or the OS
  cache, or read from ``path=`` when the files are already on disk);
- :func:`demo` - a small real subset shipped with scam (no network);
- :func:`simulate` - synthetic time courses with ground truth, built on the generators below.

Nothing is unpickled: arrays are read with ``allow_pickle=False``.
"""

from ._api import demo, fetch, list_datasets, load, simulate
from ._fetch import ChecksumError, DownloadError, default_cache_dir, sha256_of
from ._readers import read_cite_pcas, read_demo_npz, read_eb_npz, read_h5ad, read_larry_csv
from ._registry import RegistryError, get_entry, get_registry, registry_path, validate_registry
from ._synthetic import (
    SyntheticTimeCourse,
    arc_transport,
    asynchronous_transition,
    branching_growth,
    cycling_ring,
    double_well,
    gaussian_geodesic,
    gaussian_growth,
    mixture_growth,
    ornstein_uhlenbeck,
    rotating_blob,
)

__all__ = [
    "ChecksumError",
    "DownloadError",
    "RegistryError",
    "SyntheticTimeCourse",
    "arc_transport",
    "asynchronous_transition",
    "branching_growth",
    "cycling_ring",
    "default_cache_dir",
    "demo",
    "double_well",
    "fetch",
    "gaussian_geodesic",
    "gaussian_growth",
    "mixture_growth",
    "get_entry",
    "get_registry",
    "list_datasets",
    "load",
    "ornstein_uhlenbeck",
    "rotating_blob",
    "read_cite_pcas",
    "read_demo_npz",
    "read_eb_npz",
    "read_h5ad",
    "read_larry_csv",
    "registry_path",
    "sha256_of",
    "simulate",
    "validate_registry",
]
