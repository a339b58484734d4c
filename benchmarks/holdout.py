"""Held-out time point benchmark on the Cite time course (days 2, 3, 4, 7; held out: day 3 and day 4).

For each held-out day, scam is trained without it (``scam.tl.evaluate_holdout``), the previous day's
cells are pushed to it and scored by exact W1 against the real cells; the baselines ("previous" day
as it is, "ot_interpolation" along the exact OT plan by the fraction of the time gap, and
"ot_midpoint", halfway whatever the days, the convention of the literature that treats days as
indices) are measured in the same run on the same cells. The table reports W1 per held-out day, the
mean, the ratio to the OT interpolation baseline, and fit seconds per fold.

Settings: "cite5" = first 5 PCs standardised (each component z-scored over all cells used),
"cite50" = 50 PCs raw. Standard subsample: 2500 cells per day drawn with seed 0 (``--cells 0``: all).
"cite5_published" = the protocol of the published leave-one-time-point-out tables (Tong et al. 2023,
Kapusniak et al. 2024): every cell (``--cells`` is ignored), 5 PCs standardised over all cells, and the
days put at even spacing (times 0, 1, 2, 3 for days 2, 3, 4, 7, so a held-out day is halfway between its
neighbours); its table prints the published W1 beside scam's. The PCA differs (these arrays are LightSB's
PCA of the competition data, the published tables used Tong et al.'s): comparable in spirit, not to the digit.

    python benchmarks/holdout.py                         # both settings, default configuration
    python benchmarks/holdout.py --settings cite5 --configs default balanced learn --seeds 3
    python benchmarks/holdout.py --data ../shared/data/cite_lightsb --cells 0   # full data
    python benchmarks/holdout.py --settings cite5_published --configs default balanced --seeds 3

Targets: cite5 mean W1 <= 0.78 x OT interpolation; cite50 <= 0.92 x; a cite5 fold at most 2x the
straight path's fit time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

import scam

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "cite_lightsb"
DAYS = (2, 3, 4, 7)
SETTINGS = ("cite5", "cite50", "cite5_published")
# Published leave-one-time-point-out W1 on Cite, 5 whitened PCs, days as indices, mean over the two
# interior days (Kapusniak et al. 2024, Table 4; WLF: Neklyudov et al. 2024).
PUBLISHED = {"OT-MFM": 0.724, "WLF-UOT": 0.733, "WLF-OT": 0.802, "OT-CFM": 0.882, "SF2M-exact": 0.920}

# Named configurations: options of scam.tl.action_matching (through evaluate_holdout's fit_kwargs).
CONFIGS = {
    "default": {},  # growth='learn', separate growth network over growth-weighted plans (coupling 'weighted')
    "single_potential": {"config": {"growth_model": "potential"}},  # the 2026-11-23 default: one potential, 'uot' plans
    "balanced": {"growth": None},
    "learn_ot": {"growth": "learn", "config": {"coupling": "ot"}},  # the default before 'uot'
    "uot1.5": {"config": {"uot_threshold": 1.5}},
    "uot6": {"config": {"uot_threshold": 6.0}},
    "entropic": {"growth": None, "sigma": 0.1},
    "learn_entropic": {"growth": "learn", "sigma": 0.1},
    "unbalanced_coupling": {"growth": "learn", "config": {"coupling": "unbalanced"}},
    "wide": {"network": {"hidden": 256}},
    "network_2026-12-06": {"network": {"hidden": 256}, "config": {"lr": 1e-3}},  # the defaults' network until then
    "long": {"config": {"n_steps": 8000, "patience": 20}},
    # the loss estimator: "auto" (the default) is "pathwise" for deterministic paths
    "boundary": {"config": {"estimator": "boundary"}},  # the paper's form, same steps
    "boundary4000": {"config": {"estimator": "boundary", "n_steps": 4000}},  # the default before pathwise
    "pathwise4000": {"config": {"n_steps": 4000}},
    # half the steps on twice the samples (the same samples seen; faster, slightly worse: benchmarks/README.md)
    "batch512": {"config": {"batch_size": 512, "n_steps": 1000, "warmup": 100}},
    # paths between snapshots (scam.core.pace, scam.core.graph, scam.core.path_choice)
    "straight": {"config": {"path": "straight"}},  # straight lines everywhere (the default until 2026-12-02)
    "auto": {"config": {"path": "auto"}},  # chosen on held-out inner training days
    "asynchronous": {"config": {"path": "asynchronous"}},
    "graph": {"config": {"path": "graph"}},
    "balanced_auto": {"growth": None, "config": {"path": "auto"}},
    # plans sized to training: one exact plan per gap instead of 1,000-cell chunks
    "exact_plans": {"config": {"max_plan_size": 10**9, "max_cells": None}},
}


def load_cite(data: Path, setting: str, n_cells: int, seed: int = 0) -> ad.AnnData:
    """Cite days 2/3/4/7 as an AnnData with ``obs['day']`` and ``obsm['X_pca']`` for one setting.

    For ``"cite5_published"`` every cell is kept and ``obs['day']`` holds the day's index (0-3).
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose from {SETTINGS}")
    published = setting == "cite5_published"
    rng = np.random.default_rng(seed)
    blocks, days = [], []
    for i, d in enumerate(DAYS):
        x = np.load(data / f"full_cite_pcas_50_day_{d}.npy", allow_pickle=False).astype(np.float64)
        if n_cells and len(x) > n_cells and not published:
            x = x[np.sort(rng.choice(len(x), n_cells, replace=False))]
        blocks.append(x)
        days.append(np.full(len(x), float(i if published else d)))
    x = np.concatenate(blocks)
    if setting != "cite50":
        x = x[:, :5]
        x = (x - x.mean(0)) / x.std(0)
    adata = ad.AnnData(obs=pd.DataFrame({"day": np.concatenate(days)}, index=[f"c{i}" for i in range(len(x))]))
    adata.obsm["X_pca"] = x
    return adata


def run(args) -> pd.DataFrame:
    frames = []
    for setting in args.settings:
        adata = load_cite(args.data, setting, args.cells)
        holdout = [float(DAYS.index(int(h))) for h in args.holdout] if setting == "cite5_published" else args.holdout
        baselines_done = False
        for name in args.configs:
            fit_kwargs = dict(CONFIGS[name])
            if args.steps:
                fit_kwargs["config"] = {**fit_kwargs.get("config", {}), "n_steps": args.steps}
            start = time.perf_counter()
            df = scam.tl.evaluate_holdout(
                adata, "day", holdout=holdout, metrics=("w1",),
                baselines=() if baselines_done else ("previous", "ot_interpolation", "ot_midpoint"),
                fit_kwargs=fit_kwargs, n_seeds=args.seeds, rng=0,
            )
            baselines_done = True
            df.loc[df["method"] == "scam", "method"] = f"scam:{name}"
            df["setting"] = setting
            frames.append(df)
            logging.getLogger("bench").info("%s %s done in %.0f s", setting, name, time.perf_counter() - start)
    return pd.concat(frames, ignore_index=True)


def table(df: pd.DataFrame) -> str:
    out = []
    for setting, sub in df.groupby("setting", sort=False):
        per = sub.groupby(["method", "holdout_time"])["value"].agg(["mean", "std"]).reset_index()
        wide = per.pivot(index="method", columns="holdout_time", values="mean")
        spread = per.pivot(index="method", columns="holdout_time", values="std")
        wide["mean"] = wide.mean(axis=1)
        ref = wide.loc["ot_interpolation", "mean"]
        wide["ratio_to_ot"] = wide["mean"] / ref
        secs = sub[sub["fit_seconds"] > 0].groupby("method")["fit_seconds"].mean()
        wide["fit_s/fold"] = secs.reindex(wide.index).fillna(0.0)
        lines = [f"\n== {setting}: W1 to the held-out day (n_cells={int(sub['n_cells'].iloc[0])}/day, "
                 f"seeds={sub.loc[sub['seed'] >= 0, 'seed'].nunique()}) =="]
        indexed = setting == "cite5_published"
        labels = [f"t={c:g} (day {DAYS[int(c)]})" if indexed else f"day {c:g}" for c in wide.columns[:-3]]
        hdr = f"{'method':<28}" + "".join(f"{lab:>14}" for lab in labels)
        hdr += f"{'mean':>9}{'ratio_to_ot':>13}{'fit_s/fold':>12}"
        lines.append(hdr)
        for method, row in wide.sort_values("mean").iterrows():
            cells = ""
            for c in wide.columns[:-3]:
                sd = spread.loc[method, c]
                cells += f"{row[c]:>8.3f} ± {sd:.3f}" if np.isfinite(sd) and sd > 0 else f"{row[c]:>14.3f}"
            lines.append(f"{method:<28}{cells}{row['mean']:>9.3f}{row['ratio_to_ot']:>13.3f}{row['fit_s/fold']:>12.1f}")
        if setting == "cite5_published":
            lines.append("published (other PCA of the same data; mean of the two interior days):")
            for method, w1 in PUBLISHED.items():
                lines.append(f"{method:<28}{'':>28}{w1:>9.3f}{w1 / ref:>13.3f}")
        out.extend(lines)
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with full_cite_pcas_50_day_*.npy")
    p.add_argument("--settings", nargs="+", default=["cite5", "cite50"], choices=list(SETTINGS))
    p.add_argument("--configs", nargs="+", default=["default"], choices=sorted(CONFIGS))
    p.add_argument("--cells", type=int, default=2500, help="cells per day (0: all)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--steps", type=int, default=0, help="override n_steps (0: the configuration's)")
    p.add_argument("--holdout", type=float, nargs="+", default=[3.0, 4.0], help="held-out days (3, 4)")
    p.add_argument("--csv", type=Path, default=None, help="also write the tidy results here")
    args = p.parse_args(argv)
    if not (args.data / "full_cite_pcas_50_day_2.npy").exists():
        sys.exit(f"Cite arrays not found in {args.data}; pass --data (see data_registry.yaml, entry 'cite').")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    df = run(args)
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(table(df))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
