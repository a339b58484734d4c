"""Write ``docs/larry_fates.png``: scam's fates against lineage tracing on all LARRY cells.

Data: ``../shared/data/larry_lineage`` beside the repository (Weinreb et al. 2020: all 130,887 in-vitro cells in
the published SPRING layout, days 2/4/6, and the clonal fates of the development half's day-2 cells; see its
README). Fit: ``scam.tl.action_matching(adata, "day", use_rep="X_spring", rng=0)`` on the per-axis standardised
layout (defaults), then ``scam.tl.fate_probabilities(adata, source_time=2, target_time=6, groupby="label")``;
also fits with ``rng`` 1 and 2 and the three fits' fates averaged (``key=[...]``).
The bias of a day-2 cell is ``P(Neutrophil) / (P(Neutrophil) + P(Monocyte))``; its clonal truth the neutrophil
share of its neutrophil and monocyte sisters (cells with at least two such sisters). Panels: scam's bias of
every day-2 cell over the layout (grey: days 4 and 6), one fit and three averaged; the clonal truth of the scored
cells; predicted against clonal bias for both and for the static baseline (neutrophil share of the 200 nearest
labelled day-6 cells in the published layout); their reliability (mean clonal bias in 5 bins of the prediction)
and their histograms. About two minutes on 2 cores::

    python docs/fates_figure.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import pearsonr
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

import scam

HERE = Path(__file__).resolve().parent
OUT = HERE / "larry_fates.png"


def main():
    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    from fates import LINEAGE, lineage_data  # the benchmark's reader of the lineage arrays

    raw, day, label, cells, truth = lineage_data(LINEAGE)
    early = np.nonzero(day == 2)[0]
    at = np.searchsorted(early, cells)

    adata = ad.AnnData(obs=pd.DataFrame({"day": day, "label": pd.Categorical(label)},
                                        index=[str(i) for i in range(len(day))]))
    adata.obsm["X_spring"] = (raw - raw.mean(0)) / raw.std(0)
    keys = ["action_matching", "am_rng1", "am_rng2"]
    for seed, key in enumerate(keys):
        scam.tl.action_matching(adata, "day", use_rep="X_spring", rng=seed, key_added=key, progress=False)

    def neutrophil_bias(key, key_added=None):
        tab = scam.tl.fate_probabilities(adata, key=key, source_time=2, target_time=6, groupby="label",
                                         key_added=key_added)
        return (tab["Neutrophil"] / (tab["Neutrophil"] + tab["Monocyte"])).to_numpy()

    bias = neutrophil_bias("action_matching")
    averaged = neutrophil_bias(keys, key_added="three_fits")
    late = (day == 6) & np.isin(label, ["Neutrophil", "Monocyte"])
    _, nbr = NearestNeighbors(n_neighbors=200).fit(raw[late]).kneighbors(raw[early])
    static = (label[late][nbr] == "Neutrophil").mean(axis=1)
    methods = ((bias, "scam defaults (rng 0)", "C0"), (averaged, "scam, three fits averaged", "C2"),
               (static, "static 200 neighbours", "C1"))

    fig, grid = plt.subplots(2, 4, figsize=(20, 9.2))
    axes = [grid[0, 0], grid[0, 1], grid[0, 2], grid[1, 0], grid[1, 1], grid[1, 2], grid[0, 3], grid[1, 3]]
    for ax, values, where, title in (
        (axes[0], bias, early, "scam defaults: P(Neu) / P(Neu or Mo), day-2 cells"),
        (axes[1], averaged, early, "scam, three fits (rng 0, 1, 2) averaged"),
        (axes[2], truth, cells, f"clonal truth, scored day-2 cells (n = {len(truth)})"),
    ):
        ax.scatter(raw[day > 2, 0], raw[day > 2, 1], s=0.2, c="0.85", rasterized=True)
        sc = ax.scatter(raw[where, 0], raw[where, 1], c=values, s=1.5 if len(where) > 1000 else 6, cmap="coolwarm",
                        vmin=0, vmax=1, rasterized=True)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
        fig.colorbar(sc, ax=ax, shrink=0.8, label="neutrophil bias")
    for ax, (pred, name, color) in zip(axes[3:6], methods):
        pred = pred[at]
        ax.scatter(truth, pred, s=6, alpha=0.5, color=color)
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("clonal neutrophil bias (sisters)")
        ax.set_ylabel("predicted bias")
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{name}: Pearson {pearsonr(pred, truth)[0]:.3f}, AUROC "
                     f"{roc_auc_score(truth > 0.5, pred):.3f}", fontsize=10)
    ax = axes[6]
    edges = np.linspace(0, 1, 6)
    for pred, name, color in methods:
        pred = pred[at]
        b = np.minimum(np.digitize(pred, edges[1:-1]), 4)
        used = [k for k in range(5) if np.any(b == k)]
        ax.plot([pred[b == k].mean() for k in used], [truth[b == k].mean() for k in used], "o-", color=color,
                label=f"{name} (ECE {scam.metrics.fate_calibration(pred, truth, n_bins=5)['ece']:.3f})")
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("mean predicted bias (5 bins)")
    ax.set_ylabel("mean clonal bias")
    ax.set_title("reliability against sister fractions", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[7]
    for pred, name, color in methods:
        ax.hist(pred[at], bins=np.linspace(0, 1, 21), histtype="step", lw=1.5, color=color, label=name)
    ax.set_xlabel("predicted bias of the scored cells")
    ax.set_ylabel("cells")
    ax.set_title("how certain the predictions are", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle("LARRY (Weinreb et al. 2020), development half: neutrophil vs monocyte fate of day-2 cells",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
