"""Fate probabilities against known fates, against lineage tracing, and their speed.

Rows (one fit per system with scam's defaults: ``growth='learn'``, ``sigma=0``):

- ``double_well``: a noisy double well (``scam.datasets.simulate('double_well')``, 1,000 cells per
  snapshot at t = 0, 0.5, 1, 2; fate of each start cell from 1,000 simulated continuations): Pearson,
  expected calibration error (10 bins), Brier / Bayes score, share of cells at exactly 0 or 1;
- ``branching``: a deterministic branching (fates certain): AUROC;
- methods: ``descendants`` (scam's default), ``push`` (the former single-push estimator), ``static``
  (share of the nearest 200 target-time cells of each start cell, no dynamics) and ``cellrank`` (GPCCA
  absorption probabilities on ``scam.tl.couplings``; when cellrank is importable);
- ``larry_subset``: the LARRY subset shipped with scam (``larry_genes``; fitted on 10 PCs and on its 2-D
  layout ``X_emb``; day 2 -> 6 and 4 -> 6, Neutrophil vs Monocyte, scored against clonal sisters with
  ``scam.metrics.lineage_agreement``, ``min_sisters=2``; n = cells that qualify; ``static`` here: the
  Neutrophil share of the 15 nearest day-6 Neutrophil or Monocyte cells);
- ``larry_lineage``: all 130,887 LARRY cells with the clonal fates of the development half
  (``../shared/data/larry_lineage``, beside the repository; skipped without it): defaults on the standardised
  SPRING layout, day 2 -> 6, against raw clonal truth (n = 530; ECE in 5 bins against the sister fractions),
  with the static 200- and 50-neighbour baselines and the fit's seconds in the same run; fits with ``rng`` 0, 1
  and 2 (the seed's spread) and their fates averaged (``fate_probabilities(key=[...])``);
- ``speed``: ``fate_probabilities`` of 30,000 early cells (double-well model, 30,000 cells per snapshot).

A reliability diagram of the double well goes to ``benchmarks/output/fates_reliability.png``.

    python benchmarks/fates.py            # seed 0, ~6 min on 2 shared CPU cores
    python benchmarks/fates.py --rows known lineage
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

import scam

OUT = Path(__file__).parent / "output"


def static(adata, t0, t1, groupby, group, k=200):
    t = adata.obs["time"].to_numpy()
    x = adata.obsm["X_pca"]
    lab = adata.obs[groupby].astype(str).to_numpy()[t == t1] == group
    _, nbr = NearestNeighbors(n_neighbors=min(k, int((t == t1).sum()))).fit(x[t == t1]).kneighbors(x[t == t0])
    return lab[nbr].mean(axis=1)


def cellrank_fates(adata, time_key, groupby, group, t0, t1, *, use_rep="X_pca", terminal=None, solver=None):
    """CellRank's GPCCA absorption probabilities on ``RealTimeKernel(couplings=scam.tl.couplings(adata))``:
    P(``group``) of the cells at ``t0`` (a list of groups: one column each); the terminal states are the cells at
    ``t1`` by ``groupby`` (only those in ``terminal`` when given); ``solver``: keyword arguments of
    ``compute_fate_probabilities``."""
    import cellrank as cr

    if adata.X is None:  # CellRank's estimators read X's shape and dtype: give them the embedding
        adata = ad.AnnData(X=np.asarray(adata.obsm[use_rep], dtype=np.float32), obs=adata.obs.copy(),
                           obsm=dict(adata.obsm), uns=dict(adata.uns))
    else:
        adata = adata.copy()
    if time_key == "time":  # RealTimeKernel wants categorical times; the couplings take its category values
        adata.obs["time"] = pd.Categorical(adata.obs["time"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rtk = cr.kernels.RealTimeKernel(adata, time_key=time_key, couplings=scam.tl.couplings(adata))
        # within a time point the kernel mixes in a kNN graph it builds per time point (conn_weight): on the
        # embedding (the simulated AnnData has no X)
        rtk.compute_transition_matrix(self_transitions="all", conn_weight=0.2, threshold="auto",
                                      conn_kwargs={"use_rep": use_rep, "transformer": "sklearn"})
        g = cr.estimators.GPCCA(rtk)
        t = adata.obs[time_key].astype(float).to_numpy()
        lab = adata.obs[groupby].astype(str).to_numpy()
        keep = np.isclose(t, t1) & (True if terminal is None else np.isin(lab, terminal))
        term = np.where(keep, lab, None)
        g.set_terminal_states(pd.Series(pd.Categorical(term), index=adata.obs_names))
        g.compute_fate_probabilities(**(solver or {}))
    fp = g.fate_probabilities
    probs = pd.DataFrame(np.asarray(fp), index=adata.obs_names, columns=list(fp.names))
    return probs.loc[np.isclose(t, t0), group].to_numpy()


def predictions(adata, group):
    """P(``group`` at t = 2) of the t = 0 cells of a simulated fit, ``{method: (values, seconds)}``, and the
    noise record of the default."""
    preds = {}
    for method in ("descendants", "push"):
        t = time.time()
        tab = scam.tl.fate_probabilities(adata, source_time=0.0, target_time=2.0, groupby="branch", method=method)
        preds[method] = (tab[group].to_numpy(), time.time() - t)
        if method == "descendants":
            noise = dict(adata.uns["action_matching_fates"]["params"])
    t = time.time()
    preds["static"] = (static(adata, 0.0, 2.0, "branch", group), time.time() - t)
    try:
        t = time.time()
        preds["cellrank"] = (cellrank_fates(adata, "time", "branch", group, 0.0, 2.0), time.time() - t)
    except Exception as err:
        print(f"cellrank skipped: {err!r}")
    return preds, noise


def known_fates(rows):
    adata = scam.datasets.simulate("double_well", n_cells=1000, rng=0, n_continuations=1000)
    t = time.time()
    scam.tl.action_matching(adata, "time", use_rep="X_pca", rng=0, progress=False)
    print(f"double well fit: {time.time() - t:.0f} s")
    truth = np.asarray(adata.uns["simulation"]["truth"]["fate"])
    preds, sigma = predictions(adata, "right")
    for name, (p, sec) in preds.items():
        s = scam.metrics.fate_calibration(np.clip(p, 0, 1), truth)
        rows.append({"system": "double_well", "method": name, "pearson": s["pearson"], "ece": s["ece"],
                     "brier/bayes": s["brier_ratio"], "certain": s["certain"], "seconds": sec})
    print(f"double well: sigma estimated {sigma['sigma']:.3f} (true {np.sqrt(0.6):.3f}), r = {sigma['r']:.2f}")
    reliability(preds, truth)
    return adata


def reliability(preds, truth):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    edges = np.linspace(0, 1, 11)
    for name, (p, _) in preds.items():
        b = np.minimum((np.clip(p, 0, 1) * 10).astype(int), 9)
        xs = [p[b == k].mean() for k in range(10) if (b == k).any()]
        ys = [truth[b == k].mean() for k in range(10) if (b == k).any()]
        ax.plot(xs, ys, "o-", label=name)
    ax.plot(edges, edges, "k--", lw=1, label="calibrated")
    ax.set_xlabel("predicted P(right well)")
    ax.set_ylabel("true P(right well), mean per bin")
    ax.set_title("Double well: reliability (10 bins)")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(OUT / "fates_reliability.png", dpi=120)


def branching(rows):
    adata = scam.datasets.simulate("branching", n_cells=1000, rng=0)
    scam.tl.action_matching(adata, "time", use_rep="X_pca", rng=0, progress=False)
    truth = adata.obs.loc[adata.obs["time"] == 0.0, "branch"].astype(str).to_numpy() == "proliferating"
    preds, _ = predictions(adata, "proliferating")
    for name, (p, sec) in preds.items():
        rows.append({"system": "branching", "method": name, "auroc": roc_auc_score(truth, p),
                     "certain": float(np.mean((p < 1e-9) | (p > 1 - 1e-9))), "seconds": sec})


def larry(rows):
    adata = scam.datasets.load("larry_genes")
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=1000)
    sc.pp.pca(adata, n_comps=30, random_state=0)
    day = adata.obs["time_info"].astype(float).to_numpy()
    state = adata.obs["state_info"].astype(str).to_numpy()
    for rep, fit_args in (("10 PCs", {"n_dims": 10}), ("2-D layout", {"use_rep": "X_emb"})):
        scam.tl.action_matching(adata, "time_info", rng=0, progress=False, **fit_args)
        x = np.asarray(adata.obsm["X_pca" if rep == "10 PCs" else "X_emb"])[:, :10]
        for t0 in (2.0, 4.0):
            early = day == t0
            keep = early | (day > t0)
            biases = {}
            for method in ("descendants", "push"):
                tab = scam.tl.fate_probabilities(adata, source_time=t0, target_time=6.0, groupby="state_info",
                                                 method=method)
                neu, mo = tab.get("Neutrophil", 0), tab.get("Monocyte", 0)
                tot = np.asarray(neu + mo, float)
                biases[method] = np.where(tot > 0, np.asarray(neu, float) / np.where(tot > 0, tot, 1), 0.5)
                if method == "descendants":
                    noise = adata.uns["action_matching_fates"]["params"]
                    print(f"larry {rep}: sigma {noise['sigma_source']} (estimate {noise['sigma_estimate']:.3g}, "
                          f"bound {noise['sigma_bound']:.3g})")
            # static: Neutrophil share of the 15 nearest day-6 cells annotated Neutrophil or Monocyte
            late = (day == 6.0) & np.isin(state, ["Neutrophil", "Monocyte"])
            _, nbr = NearestNeighbors(n_neighbors=15).fit(x[late]).kneighbors(x[early])
            biases["static"] = (state[late][nbr] == "Neutrophil").mean(axis=1)
            for method, bias in biases.items():
                s = scam.metrics.lineage_agreement(bias, adata.obsm["X_clone"][keep], early[keep], state[keep],
                                                   fate="Neutrophil", others="Monocyte", min_sisters=2)
                rows.append({"system": f"larry_subset {rep} day {t0:g}->6", "method": method,
                             "pearson": s["pearson"], "auroc": s["auroc"], "n": s["n_scored"],
                             "certain": float(np.mean((bias < 1e-9) | (bias > 1 - 1e-9)))})


LINEAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "larry_lineage"


def lineage_data(folder=LINEAGE):
    """The LARRY lineage arrays: SPRING layout ``(n, 2)``, day, label, and the development half's scored day-2
    cells (rows with >= 2 Neutrophil or Monocyte sisters) with their raw clonal truth, Neutrophil / (Neutrophil +
    Monocyte) sisters."""
    z = np.load(Path(folder) / "larry_invitro_spring.npz", allow_pickle=False)
    c = np.load(Path(folder) / "clones_development_half.npz", allow_pickle=False)
    names = [str(n) for n in c["fate_names"]]
    neu, mo = c["clonal_fates"][:, names.index("Neutrophil")], c["clonal_fates"][:, names.index("Monocyte")]
    ok = neu + mo >= 2
    return (np.c_[z["spring_x"], z["spring_y"]], z["day"].astype(float), z["label"].astype(str),
            c["cell_index"][ok], neu[ok] / (neu + mo)[ok])


def larry_lineage(rows):
    """All 130,887 LARRY cells (published SPRING layout, standardised), fitted with the defaults; the
    Neutrophil vs Monocyte bias of the development half's day-2 cells against their clonal sisters (raw truth:
    Neutrophil / (Neutrophil + Monocyte) sisters, cells with >= 2 such sisters). Both static baselines in the
    same run. Skipped when the data are not beside the repository."""
    from scipy.stats import pearsonr

    if not (LINEAGE / "larry_invitro_spring.npz").exists():
        print(f"larry_lineage: {LINEAGE} not found, rows skipped")
        return
    raw, day, label, cells, truth = lineage_data()
    x = (raw - raw.mean(0)) / raw.std(0)  # the fit's coordinates (per-axis standardised)
    early = np.nonzero(day == 2)[0]
    at = np.searchsorted(early, cells)

    def add(method, p, sec):
        p = np.asarray(p, float)[at]
        rows.append({"system": "larry_lineage dev half day 2->6", "method": method, "pearson": pearsonr(p, truth)[0],
                     "ece": scam.metrics.fate_calibration(p, truth, n_bins=5)["ece"],  # against sister fractions
                     "auroc": roc_auc_score(truth > 0.5, p), "n": len(truth),
                     "certain": float(np.mean((p < 1e-9) | (p > 1 - 1e-9))), "seconds": sec})

    late = (day == 6) & np.isin(label, ["Neutrophil", "Monocyte"])
    for k in (200, 50):
        t = time.time()
        # in the published layout's own metric (per-axis standardising stretches it: 0.35 / 0.67 for k = 200)
        _, nbr = NearestNeighbors(n_neighbors=k).fit(raw[late]).kneighbors(raw[early])
        add(f"static {k}", (label[late][nbr] == "Neutrophil").mean(axis=1), time.time() - t)
    adata = ad.AnnData(obs=pd.DataFrame({"day": day, "label": pd.Categorical(label)},
                                        index=[str(i) for i in range(len(day))]))
    adata.obsm["X_spring"] = x
    def bias_of(tab):
        tot = (tab["Neutrophil"] + tab["Monocyte"]).to_numpy()
        return np.where(tot > 0, tab["Neutrophil"].to_numpy() / np.where(tot > 0, tot, 1), 0.5), tot

    keys, fit_seconds, fates_seconds = ["action_matching", "am_rng1", "am_rng2"], [], []
    for seed, key in enumerate(keys):  # three fits: the seed's spread, and their average (a key list)
        t = time.time()
        scam.tl.action_matching(adata, "day", use_rep="X_spring", rng=seed, key_added=key, progress=False)
        fit_seconds.append(time.time() - t)
        t = time.time()
        bias, tot = bias_of(scam.tl.fate_probabilities(adata, key=key, source_time=2, target_time=6, groupby="label"))
        fates_seconds.append(time.time() - t)
        add(f"scam descendants, rng {seed} (fit {fit_seconds[-1]:.0f} s + fates)", bias,
            fit_seconds[-1] + fates_seconds[-1])
        if seed == 0:
            params = adata.uns["action_matching_fates"]["params"]
            dof = [float(v) for v in params["residual_dof"]]
            print(f"larry_lineage: fates chain {params.get('chain')}, sigma {params['sigma_source']} "
                  f"({params.get('sigma_check')}), kernel degrees of freedom {dof}; "
                  f"undefined among scored: {int(np.sum(tot[at] == 0))}")
    t = time.time()
    bias, _ = bias_of(scam.tl.fate_probabilities(adata, key=keys, source_time=2, target_time=6, groupby="label",
                                                 key_added="three_fits"))
    add("scam descendants, the three fits averaged (key list)", bias, sum(fit_seconds) + time.time() - t)
    t = time.time()
    bias, _ = bias_of(scam.tl.fate_probabilities(adata, source_time=2, target_time=6, groupby="label",
                                                 method="push"))
    fit_s = fit_seconds[0]
    add(f"scam push, rng 0 (fit {fit_s:.0f} s + fates)", bias, fit_s + time.time() - t)
    try:  # CellRank's RealTimeKernel on scam's couplings, Neutrophil and Monocyte as the terminal states
        t = time.time()
        adata.obs["day"] = pd.Categorical(adata.obs["day"])
        # every day-6 cell terminal (with only two groups terminal, the other day-6 cells form closed classes
        # and the absorption solve returns negative probabilities); the bias is Neu / (Neu + Mo), as for scam
        p = cellrank_fates(adata, "day", "label", ["Neutrophil", "Monocyte"], 2.0, 6.0, use_rep="X_spring")
        tot = p[:, 0] + p[:, 1]
        add("cellrank on scam couplings (fit + kernel + absorption)",
            np.where(tot > 0, p[:, 0] / np.where(tot > 0, tot, 1), 0.5), fit_s + time.time() - t)
    except Exception as err:
        print(f"larry_lineage: cellrank skipped: {err!r}")


def speed(rows, fitted):
    adata = scam.datasets.simulate("double_well", n_cells=30_000, rng=1, n_continuations=1, times=(0.0, 0.5, 1.0, 2.0))
    adata.uns["action_matching"] = fitted.uns["action_matching"]
    t = time.time()
    scam.tl.fate_probabilities(adata, source_time=0.0, target_time=2.0, groupby="branch")
    rows.append({"system": "speed 30,000 early cells (x 4 snapshots)", "method": "descendants",
                 "seconds": time.time() - t})


def main():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", nargs="+", default=["known", "branching", "larry", "lineage", "speed"],
                        choices=["known", "branching", "larry", "lineage", "speed"])
    chosen = parser.parse_args().rows
    rows = []
    fitted = known_fates(rows) if "known" in chosen or "speed" in chosen else None
    if "branching" in chosen:
        branching(rows)
    if "larry" in chosen:
        larry(rows)
    if "lineage" in chosen:
        larry_lineage(rows)
    if "speed" in chosen:
        speed(rows, fitted)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
