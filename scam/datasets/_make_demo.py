"""Build the bundled demo subset ``scam/datasets/_data/cite_demo.npz`` from the full Cite arrays.

Run from the repository root (the full arrays live in ``../shared/data/cite_lightsb`` there)::

    python -m scam.datasets._make_demo --source ../shared/data/cite_lightsb

Procedure (also written in ``_data/README.md``):

1. each source file is checked against the sha256 recorded for the ``cite`` dataset in the registry;
2. one generator ``numpy.random.default_rng(0)`` is created; for day 2, 3, 4, 7 in that order it draws
   ``rng.choice(n_day, size=1000, replace=False)`` row indices, which are sorted;
3. the first 10 of the 50 principal components of those rows are kept, as float32;
4. the arrays ``X_pca`` (4000 x 10, float32), ``day`` (float32), ``source_row`` (int32, the row in the
   day's source file) are written uncompressed-npy-in-deflated-zip with a fixed timestamp
   (1980-01-01), so the output is byte-reproducible for a given zlib.

This module is a maintenance script: it is not imported by :mod:`scam.datasets`.
"""

from __future__ import annotations

import argparse
import io
import logging
import zipfile
from pathlib import Path

import numpy as np

from .._utils import logger
from ._fetch import sha256_of
from ._registry import file_name, get_entry

DAYS = (2, 3, 4, 7)
N_PER_DAY = 1000
N_PCS = 10
SEED = 0
OUT = Path(__file__).parent / "_data" / "cite_demo.npz"


def _write_npz_reproducible(out: Path, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def make_demo(source: str | Path, out: str | Path = OUT) -> Path:
    """Subsample the Cite arrays in ``source`` into the demo npz ``out``; returns ``out``.

    Parameters
    ----------
    source
        Folder holding ``full_cite_pcas_50_day_{2,3,4,7}.npy`` (verified by sha256).
    out
        Output file.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    source, out = Path(source), Path(out)
    files = {file_name(f): f for f in get_entry("cite")["files"]}
    rng = np.random.default_rng(SEED)
    xs, days, rows = [], [], []
    for day in DAYS:
        name = f"full_cite_pcas_50_day_{day}.npy"
        digest = sha256_of(source / name)
        if digest != files[name]["sha256"]:
            raise ValueError(f"{source / name}: sha256 {digest} != registry {files[name]['sha256']}")
        x = np.load(source / name, allow_pickle=False)
        idx = np.sort(rng.choice(len(x), size=N_PER_DAY, replace=False))
        xs.append(x[idx, :N_PCS].astype(np.float32))
        days.append(np.full(N_PER_DAY, day, dtype=np.float32))
        rows.append(idx.astype(np.int32))
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_npz_reproducible(
        out, {"X_pca": np.concatenate(xs), "day": np.concatenate(days), "source_row": np.concatenate(rows)}
    )
    logger.info("wrote %s (%d bytes, sha256 %s)", out, out.stat().st_size, sha256_of(out))
    return out


def main(argv=None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="../shared/data/cite_lightsb")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_demo(args.source, args.out)


if __name__ == "__main__":
    main()
