"""Held-out day on LARRY 2-D (Weinreb et al. 2020; days 2, 4, 6 with 1429 / 3781 / 5788 cells).

Day 4 is held out: for each configuration, ``scam.tl.evaluate_holdout`` trains a model on days 2 and 6
only (day 4 removed before scaling, couplings and masses), pushes the day-2 cells to day 4 (with their
weights for unbalanced models) and scores them against the real day-4 cells by exact W1 and W2 in the
2-D embedding. Baselines, measured in the same run on the same cells: ``previous`` (day 2 as it is)
and ``ot_interpolation`` (day-2 cells moved halfway along the exact OT plan to day 6).

Configurations (options of ``scam.tl.action_matching``, engine defaults otherwise):

- ``balanced``: ``growth=None`` (mass conserved);
- ``counts``: ``growth='counts'``, relative masses = cells per fitted day (day 6 / day 2 = 4.05);
- ``learn``: ``growth='learn'`` (the default), equal total masses, relative growth learned over
  growth-weighted exact plans (``coupling='weighted'``);
- ``learn_ot``: the same over balanced OT plans (the default before ``'uot'``);
- ``straight`` / ``graph`` / ``asynchronous``: the default with ``config={"path": ...}`` (the default path,
  ``"support"``, follows graph routes from day 2 to 6: most of that gap's straight interpolation leaves
  the data).

    python benchmarks/larry.py                        # 3 seeds, all configurations (~10-20 min on 2 shared CPU cores)
    python benchmarks/larry.py --seeds 1 --configs balanced counts
    python benchmarks/larry.py --csv larry_results.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import scam

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "larry_2d"
CONFIGS = {
    "balanced": {"growth": None},
    "counts": {"growth": "counts"},
    "learn": {"growth": "learn"},  # the default: separate growth network over growth-weighted plans
    "single_potential": {"growth": "learn", "config": {"growth_model": "potential"}},  # the 2026-11-23 default ('uot')
    "learn_ot": {"growth": "learn", "config": {"coupling": "ot"}},
    "straight": {"config": {"path": "straight"}},  # straight lines everywhere (the default until 2026-12-02)
    "graph": {"config": {"path": "graph"}},  # routes through the neighbour graph of days 2 and 6
    "asynchronous": {"config": {"path": "asynchronous"}},  # two days: the middle spread of the grid
    "batch512": {"config": {"batch_size": 512, "n_steps": 1000, "warmup": 100}},  # half the steps, twice the samples
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with mouse_hematopoiesis.csv")
    p.add_argument("--seeds", type=int, default=3, help="models trained per configuration")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--steps", type=int, default=None, help="override TrainConfig.n_steps")
    p.add_argument("--hidden", type=int, default=None, help="override PotentialConfig.hidden")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--csv", type=Path, default=None, help="write the raw results table here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    adata = scam.datasets.load("larry_2d", path=args.data)
    counts = adata.obs["day"].value_counts().sort_index()
    print("cells per day:", ", ".join(f"day {d:g}: {n}" for d, n in counts.items()), file=sys.stderr)

    extra = {}
    if args.steps is not None:
        extra["config"] = {"n_steps": args.steps}
    if args.hidden is not None:
        extra["network"] = {"hidden": args.hidden}
    frames = []
    start_all = time.perf_counter()
    for i, name in enumerate(args.configs):
        start = time.perf_counter()
        df = scam.tl.evaluate_holdout(
            adata, "day", use_rep="X_2d", holdout=4.0, metrics=("w1", "w2"),
            baselines=("previous", "ot_interpolation") if i == 0 else (),
            fit_kwargs={**CONFIGS[name], **extra}, n_seeds=args.seeds, rng=0,
        )
        df.loc[df["method"] == "scam", "method"] = f"scam {name}"
        frames.append(df)
        print(f"  {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    df = pd.concat(frames, ignore_index=True)
    if args.csv is not None:
        df.to_csv(args.csv, index=False)

    wide = df.pivot_table(index=["method", "seed"], columns="metric", values="value").reset_index()
    secs = df.groupby(["method", "seed"])["fit_seconds"].first().reset_index()
    wide = wide.merge(secs, on=["method", "seed"])
    ot = wide[wide["method"] == "ot_interpolation"].iloc[0]
    order = ["previous", "ot_interpolation"] + [f"scam {c}" for c in args.configs]
    print(f"\nLARRY 2-D, held-out day 4 (fit on days 2 and 6), {counts.loc[4.0]} day-4 cells, "
          f"{args.seeds} seed(s); total {time.perf_counter() - start_all:.0f} s, torch threads {args.threads}")
    print("W1 / W2: mean +- sd over seeds (baselines are deterministic); ratios = mean / OT interpolation\n")
    head = f"| {'method':<18} | {'W1':>15} | {'W2':>15} | {'W1 / OT':>7} | {'W2 / OT':>7} | {'fit s':>6} |"
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for m in order:
        sub = wide[wide["method"] == m]
        if sub.empty:
            continue

        def fmt(col, sub=sub):
            v = sub[col].to_numpy()
            return f"{v.mean():.4f}" if len(v) == 1 else f"{v.mean():.4f} +- {v.std(ddof=1):.4f}"

        print(f"| {m:<18} | {fmt('w1'):>15} | {fmt('w2'):>15} | {sub['w1'].mean() / ot['w1']:>7.3f} | "
              f"{sub['w2'].mean() / ot['w2']:>7.3f} | {sub['fit_seconds'].mean():>6.1f} |")
    per_seed = wide[wide["method"].str.startswith("scam")][["method", "seed", "w1", "w2", "fit_seconds"]]
    print("\nper seed:")
    print(per_seed.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
