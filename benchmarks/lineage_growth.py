"""Growth where it is real: lineage-specific expansion on separated cell states, against pure transport.

Ground truth with several states: three Gaussian states in 5-D (unit spread, the outer two ``--sep`` apart
from the middle one along the first axis), each moving with its own constant velocity (length 2, along
its own axis: the transport is not affine), observed at t = 0, 0.5 and 1 (2,000 cells a snapshot, equal
totals: ``growth='learn'``). Per-state growth rates ``r_k`` change the states' shares as
``exp(r_k t)``: ``(0, 0, 0)`` is pure transport, ``(0.7, 0, -0.7)`` and ``(1.4, 0, -1.4)`` one lineage
expanding while another shrinks (shares 1 : 1 : 1 at t = 0, 4 : 1 : 0.25 at t = 1 for the stronger one).

t = 0.5 is held out. Per configuration and seed: held-out W1 as a ratio to the exact-OT interpolation of
the same cells (``scam.tl.evaluate_holdout``'s baseline), what the fit recorded
(``params['growth_fit']``, the evidence test's ``excess``), and the learned growth rate of each state's
cells relative to the population mean, beside the truth (``r_k`` minus the share-weighted mean rate,
averaged over the three snapshots).

The question it answers: is a held-out W1 gain of a growth model evidence of growth? And does the
default's evidence test (:mod:`scam.core.growth`) find growth that is there?

    python benchmarks/lineage_growth.py                 # 3 seeds, 4 systems, 3 configurations (~15 min, 2 cores)
    python benchmarks/lineage_growth.py --seeds 1 --configs default
"""

from __future__ import annotations

import argparse
import time

import anndata as ad
import numpy as np
import pandas as pd
import torch

import scam
from scam.metrics import wasserstein
from scam.tl import get_model
from scam.tl._evaluate import ot_interpolation

DIM, TIMES, MOVE = 5, (0.0, 0.5, 1.0), 2.0
CONFIGS = {
    "default": {},
    "single_potential": {"config": {"growth_model": "potential"}},  # the paper's g = lambda s
    "balanced": {"growth": None},
}
SYSTEMS = {  # (separation of the states, growth rate per state)
    "transport, sep 4": (4.0, (0.0, 0.0, 0.0)),
    "expansion 1.4, sep 4": (4.0, (1.4, 0.0, -1.4)),
    "transport, sep 8": (8.0, (0.0, 0.0, 0.0)),
    "expansion 0.7, sep 8": (8.0, (0.7, 0.0, -0.7)),
    "expansion 1.4, sep 8": (8.0, (1.4, 0.0, -1.4)),
}


def states_time_course(sep: float, rates, n_cells: int, rng: np.random.Generator) -> ad.AnnData:
    """Three moving states with per-state growth rates; ``obs['t']``, ``obs['state']``, ``obsm['X_pca']``."""
    means = np.zeros((3, DIM))
    means[0, 0], means[2, 0] = -sep, sep
    velocity = np.zeros((3, DIM))
    velocity[0, 1], velocity[1, 2], velocity[2, 1] = MOVE, MOVE, -MOVE
    rates = np.asarray(rates, float)
    xs, ts, states = [], [], []
    for t in TIMES:
        share = np.exp(rates * t)
        state = rng.choice(3, n_cells, p=share / share.sum())
        xs.append(means[state] + velocity[state] * t + rng.standard_normal((n_cells, DIM)))
        ts.append(np.full(n_cells, t))
        states.append(state)
    adata = ad.AnnData(obs=pd.DataFrame({"t": np.concatenate(ts), "state": np.concatenate(states)},
                                        index=[f"c{i}" for i in range(len(TIMES) * n_cells)]))
    adata.obsm["X_pca"] = np.concatenate(xs)
    return adata


def true_relative_rates(rates) -> np.ndarray:
    """Each state's rate minus the share-weighted population mean, averaged over the snapshots."""
    rates = np.asarray(rates, float)
    out = []
    for t in TIMES:
        share = np.exp(rates * t)
        out.append(rates - np.sum(share * rates) / share.sum())
    return np.mean(out, axis=0)


def run(args) -> pd.DataFrame:
    rows = []
    for system in args.systems:
        sep, rates = SYSTEMS[system]
        truth = true_relative_rates(rates)
        for seed in range(args.seeds):
            adata = states_time_course(sep, rates, args.cells, np.random.default_rng(seed))
            x = {t: adata.obsm["X_pca"][adata.obs["t"].to_numpy() == t] for t in TIMES}
            pos, w = ot_interpolation(x[0.0], x[1.0], 0.5)
            w1_ot = wasserstein(pos, x[0.5], p=1, a=w, rng=np.random.default_rng(1))
            state = adata.obs["state"].to_numpy()
            for name in args.configs:
                fold = adata.copy()
                start = time.perf_counter()
                scam.tl.action_matching(fold, "t", holdout=0.5, rng=seed, progress=False, **CONFIGS[name])
                seconds = time.perf_counter() - start
                model = get_model(fold)
                pos, w = model.push(x[0.0], 0.0, 0.5, return_weights=True, rng=seed)
                w1 = wasserstein(pos, x[0.5], p=1, a=w if model.unbalanced else None, rng=np.random.default_rng(1))
                growth = fold.obs.get("action_matching_growth")
                g = np.zeros(fold.n_obs) if growth is None else growth.to_numpy()
                learned = np.array([np.mean(g[state == k]) for k in range(3)]) - np.mean(g)
                uns = fold.uns["action_matching"]
                evidence = uns.get("growth_evidence", {}).get("excess")
                rows.append({
                    "system": system, "config": name, "seed": seed, "w1_ratio": w1 / w1_ot,
                    "growth_fit": str(uns["params"].get("growth_fit")),
                    "excess": np.nan if evidence is None else float(np.max(evidence)),
                    "learned": np.round(learned, 2).tolist(), "truth": np.round(truth, 2).tolist(),
                    "fit_s": seconds,
                })
                print(f"{system:22s} {name:16s} seed {seed}: W1 {w1 / w1_ot:.3f}x, {rows[-1]['growth_fit']}, "
                      f"learned {rows[-1]['learned']} (truth {rows[-1]['truth']}), {seconds:.0f} s", flush=True)
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> str:
    lines = ["| system | config | W1 / OT interp. (mean over seeds) | growth_fit (seeds) | evidence excess | "
             "learned relative rate per state (seed 0) | truth |", "|---|---|---|---|---|---|---|"]
    for (system, config), g in df.groupby(["system", "config"], sort=False):
        fits = ", ".join(sorted(set(g["growth_fit"])))
        lines.append(f"| {system} | {config} | {g['w1_ratio'].mean():.3f} ± {g['w1_ratio'].std(ddof=0):.3f} | {fits} | "
                     f"{g['excess'].mean():.3f} | {g['learned'].iloc[0]} | {g['truth'].iloc[0]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--cells", type=int, default=2000, help="cells per snapshot")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    df = run(args)
    print()
    print(table(df))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
