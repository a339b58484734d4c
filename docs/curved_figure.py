"""Write ``docs/curved_paths.png``: straight against curved paths, on dynamics that turn and on Cite.

Top row: ``scam.datasets.rotating_blob`` (a blob whose centre turns 45 degrees a time unit round a circle,
5 snapshots; the true centre's circle dashed). Bottom row: the shipped Cite subset (``scam.datasets.demo()``,
days 2, 3, 4, 7; 5 PCs, drawn on PCs 1-2). Left: ``config={"path": "straight"}``; right: ``"curved"``.
Each panel is ``scam.pl.trajectories`` (after ``scam.tl.simulate``) of a fit with ``growth=None`` and
otherwise default options; the title gives the path family and, on the rotating blob, the velocity error
against the true field at the interior quarter times. Run from anywhere (about a minute on 2 cores)::

    python docs/curved_figure.py
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import scam

OUT = Path(__file__).resolve().parent / "curved_paths.png"
FAMILIES = ("straight", "curved")


def blob_adata(tc) -> ad.AnnData:
    x = np.concatenate(tc.xs).astype(np.float32)
    t = np.concatenate([np.full(len(xi), ti) for xi, ti in zip(tc.xs, tc.times)])
    adata = ad.AnnData(obs=pd.DataFrame({"time": t}, index=[f"c{i}" for i in range(len(x))]))
    adata.obsm["X_pca"] = x
    return adata


def velocity_error(adata, tc) -> float:
    """Relative L2 error of the fitted velocity against the true field at the interior quarter times."""
    grid = np.arange(tc.times[0], tc.times[-1] + 1e-9, 0.25)
    interior = [t for t in grid if not np.any(np.isclose(t, tc.times))]
    return scam.metrics.velocity_error(scam.tl.get_model(adata).velocity, tc, interior, n_cells=1000, rng=0)


def main() -> None:
    tc = scam.datasets.rotating_blob(1000, degrees=45.0, rng=0)
    cite = scam.datasets.demo()
    fig, axes = plt.subplots(2, 2, figsize=(10, 9.5))
    for j, family in enumerate(FAMILIES):
        blob = blob_adata(tc)
        scam.tl.action_matching(blob, "time", growth=None, config={"path": family}, rng=0, progress=False)
        err = velocity_error(blob, tc)
        scam.tl.simulate(blob, rng=0)
        scam.pl.trajectories(blob, color="time", n_paths=80, ax=axes[0, j], show=False)
        angle = np.linspace(0, 2 * np.pi, 200)
        axes[0, j].plot(2 * np.cos(angle), 2 * np.sin(angle), "k--", lw=0.8, label="true centre's circle")
        axes[0, j].set_title(f"rotating blob, {family}: velocity error {err:.3f}")
        axes[0, j].set_aspect("equal")
        axes[0, j].legend(loc="lower left", fontsize=8)
        real = cite.copy()
        scam.tl.action_matching(real, "day", n_dims=5, growth=None, config={"path": family}, rng=0, progress=False)
        scam.tl.simulate(real, rng=0)
        scam.pl.trajectories(real, color="day", n_paths=80, ax=axes[1, j], show=False)
        axes[1, j].set_title(f"Cite subset (days 2, 3, 4, 7), {family}")
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
