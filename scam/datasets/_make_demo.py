"""Build the bundled demo subsets ``scam/datasets/_data/cite_demo.npz`` (from the full Cite arrays) and
``scam/datasets/_data/larry_2d_demo.csv`` (from the LARRY 2-D layout csv).

Run from the repository root (the full data live in ``../shared/data`` there)::

    python -m scam.datasets._make_demo --source ../shared/data/cite_lightsb
    python -m scam.datasets._make_demo --dataset larry_2d_demo --source ../shared/data/larry_2d

Procedure of the Cite subset (also written in ``_data/README.md``):

1. each source file is checked against the sha256 recorded for the ``cite`` dataset in the registry;
2. one generator ``numpy.random.default_rng(0)`` is created; for day 2, 3, 4, 7 in that order it draws
   ``rng.choice(n_day, size=1000, replace=False)`` row indices, which are sorted;
3. the first 10 of the 50 principal components of those rows are kept, as float32;
4. the arrays ``X_pca`` (4000 x 10, float32), ``day`` (float32), ``source_row`` (int32, the row in the
   day's source file) are written uncompressed-npy-in-deflated-zip with a fixed timestamp
   (1980-01-01), so the output is byte-reproducible for a given zlib.

Procedure of the LARRY 2-D subset (:func:`make_larry_demo`, also in ``_data/README.md``):

1. ``mouse_hematopoiesis.csv`` is checked against the sha256 recorded for the ``larry_2d`` dataset;
2. one generator ``numpy.random.default_rng(0)``; for sample 0, 1, 2 (days 2, 4, 6) in that order it
   draws ``round(4000 * n_sample / n_total)`` of the sample's rows without replacement (520 / 1375 / 2105
   of 1429 / 3781 / 5788: the days keep their proportions, so the population's growth stays visible);
3. the chosen data lines are written in source order, their text unchanged, each followed by a column
   ``source_row`` (the row's 0-based index among the source's data lines), under the header
   ``samples,x1,x2,source_row``, with ``\n`` line ends.

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
LARRY_CELLS = 4000
LARRY_OUT = Path(__file__).parent / "_data" / "larry_2d_demo.csv"


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


def make_larry_demo(source: str | Path, out: str | Path = LARRY_OUT, n_cells: int = LARRY_CELLS) -> Path:
    """Subsample the LARRY 2-D layout csv in ``source`` into the csv ``out``; returns ``out``.

    Parameters
    ----------
    source
        Folder holding ``mouse_hematopoiesis.csv`` (verified by sha256 against the ``larry_2d`` entry).
    out
        Output file.
    n_cells
        Rows kept in all, shared among the samples (days) in proportion to their numbers of rows.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    source, out = Path(source), Path(out)
    (spec,) = get_entry("larry_2d")["files"]
    path = source / file_name(spec)
    digest = sha256_of(path)
    if digest != spec["sha256"]:
        raise ValueError(f"{path}: sha256 {digest} != registry {spec['sha256']}")
    header, *lines = path.read_text().splitlines()
    if header != "samples,x1,x2":
        raise ValueError(f"{path}: unexpected header {header!r}")
    sample = np.array([int(float(line.split(",", 1)[0])) for line in lines])
    rng = np.random.default_rng(SEED)
    chosen = []
    for s in np.unique(sample):  # 0, 1, 2 in that order
        rows = np.flatnonzero(sample == s)
        size = int(round(n_cells * len(rows) / len(lines)))
        chosen.append(rng.choice(rows, size=size, replace=False))
    keep = np.sort(np.concatenate(chosen))
    text = "samples,x1,x2,source_row\n" + "".join(f"{lines[i]},{i}\n" for i in keep)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(text.encode("ascii"))
    logger.info("wrote %s (%d rows, %d bytes, sha256 %s)", out, len(keep), out.stat().st_size, sha256_of(out))
    return out


def main(argv=None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("cite_demo", "larry_2d_demo"), default="cite_demo")
    parser.add_argument("--source", default=None,
                        help="folder of the full data (default ../shared/data/cite_lightsb or ../shared/data/larry_2d)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.dataset == "cite_demo":
        make_demo(args.source or "../shared/data/cite_lightsb", args.out or OUT)
    else:
        make_larry_demo(args.source or "../shared/data/larry_2d", args.out or LARRY_OUT)


if __name__ == "__main__":
    main()
