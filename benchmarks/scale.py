"""Atlas scale: time and peak memory of every phase, from 10k to 1M (or 10M) cells.

Synthetic sets: ``N`` cells in ``d`` dimensions at 5 time points (0..4, N/5 cells each), every cell
drifting at one constant velocity ``c`` (``|c| = 0.5`` per time unit, starting cloud N(0, I)): the
true velocity field is ``c`` everywhere, so the velocity error ``mean |v - c| / |c|`` (20,000 random
cells; ``vel_err``) and the error of the population's mean velocity ``|mean v - c| / |c|``
(``drift_err``) are ground truth. A real-shaped set: LARRY 2-D (``../shared/data/larry_2d``, 10,998 cells,
days 2/4/6) resampled to 130,000 cells with small jitter (2% of the per-axis spread); held-out W1 of
day 4 is compared with and without the plan subsample (``max_cells``) in the same run.

Each configuration runs in its own process (peak RSS is that process's ``ru_maxrss``; ``data`` is the
RSS after the data are built, before any scam call). Phases: ``plans`` (couplings), ``train``
(optimiser steps), ``fields`` (velocity/potential/growth written to ``obs``/``obsm``), ``simulate``
(10,000 starting cells, default fine time grid), ``couplings`` (CellRank matrices, every cell),
``evaluate`` (``scam.tl.evaluate_holdout``, holding out the middle time point: a second fit).
Defaults of ``scam.tl.action_matching`` throughout (``growth='learn'``); run on a quiet machine.

    python benchmarks/scale.py                                  # 10k, 100k, 1M x d = 2, 50 + LARRY-130k
    python benchmarks/scale.py --sizes 10000 100000 --dims 2    # a subset
    python benchmarks/scale.py --sizes 10000000 --dims 50 --phases fit   # the 10M atlas target
    python benchmarks/scale.py --out benchmarks/results/scale.txt
    python benchmarks/scale.py --sizes 10000000 --dims 50 --larry 130000 --larry-holdout --phases fit --baseline
        # the defaults against the fit of 2026-12-06 (network hidden 256, lr 1e-3; route searches in one
        # process), same run (fit_x_base: the ratio)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LARRY = HERE.parent.parent / "shared" / "data" / "larry_2d"
PHASES = ("fit", "simulate", "couplings", "evaluate")
DRIFT = 0.5


def _wait_for_quiet(limit: float = 0.5, patience: float = 180.0) -> None:
    """Let the 1-minute load average of the previous run decay (scam's ``threads="auto"`` would
    otherwise train with fewer threads, and the timings would be of a busy machine)."""
    import os

    start = time.monotonic()
    while os.getloadavg()[0] > limit and time.monotonic() - start < patience:
        time.sleep(5)


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: kB


def _synthetic(n: int, d: int, seed: int = 0):
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    per = n // 5
    c = np.zeros(d, np.float32)
    c[: min(2, d)] = DRIFT / np.sqrt(min(2, d))
    x = np.empty((5 * per, d), np.float32)
    for k in range(5):  # filled in place: no float64 copy of an atlas
        block = x[k * per : (k + 1) * per]
        block[:] = rng.standard_normal((per, d), dtype=np.float32)
        block += c * k
    t = np.repeat(np.arange(5, dtype=np.float32), per)
    adata = ad.AnnData(obs=pd.DataFrame({"time": t}, index=pd.RangeIndex(len(t)).astype(str)))
    adata.obsm["X_pca"] = x
    return adata, c


def _larry(n: int, seed: int = 0):
    import scam

    base = scam.datasets.load("larry_2d", path=LARRY)
    rng = np.random.default_rng(seed)
    idx = rng.choice(base.n_obs, n, replace=True)
    adata = base[idx].copy()
    adata.obs_names = [f"c{i}" for i in range(n)]
    x = np.asarray(adata.obsm["X_2d"], dtype=np.float32)
    x += rng.standard_normal(x.shape, dtype=np.float32) * 0.02 * x.std(axis=0)
    adata.obsm["X_pca"] = x
    return adata, None


# the network and learning rate of the defaults until 2026-12-06 (--baseline: timed in the same run)
BASELINE = {"network": {"hidden": 256}, "config": {"lr": 1e-3}}


def run_one(kind: str, n: int, d: int, phases: tuple[str, ...], variant: str = "default") -> dict:
    import torch

    import scam

    out = {"set": kind if kind != "drift" else f"drift N={n:,} d={d}", "cells": n, "dims": d, "variant": variant}
    adata, c = _synthetic(n, d) if kind == "drift" else _larry(n)
    time_key = "time" if kind == "drift" else "day"
    out["data_gb"] = _rss_gb()
    times = np.unique(adata.obs[time_key].astype(float))
    if variant == "2026-12-06":  # route searches in one process, as then
        import scam.core.graph

        scam.core.graph.PARALLEL_SEARCH = float("inf")
    if "fit" in phases:
        start = time.perf_counter()
        scam.tl.action_matching(adata, time_key, progress=False, rng=0, holdout=4 if kind == "larry_day4_out" else None,
                                **(BASELINE if variant == "2026-12-06" else {}))
        out["fit_s"] = time.perf_counter() - start
        sec = adata.uns["action_matching"]["seconds"]
        out.update(plans_s=sec["plans"], train_s=sec["training"], fields_s=sec["fields"])
        steps = int(adata.uns["action_matching"]["history"]["step"][-1])
        out["steps_per_s"] = steps / sec["training"]
        out["threads"] = torch.get_num_threads()
        if c is not None:
            model = scam.tl.get_model(adata)
            rng = np.random.default_rng(1)
            sel = rng.choice(adata.n_obs, min(20_000, adata.n_obs), replace=False)
            v = model.velocity(adata.obsm["X_pca"][sel], adata.obs[time_key].to_numpy()[sel])
            out["vel_err"] = float(np.mean(np.linalg.norm(v - c, axis=1)) / np.linalg.norm(c))
            out["drift_err"] = float(np.linalg.norm(v.mean(axis=0) - c) / np.linalg.norm(c))
        out["growth_fit"] = adata.uns["action_matching"]["params"]["growth_fit"]
    if "simulate" in phases:
        first = np.nonzero(adata.obs[time_key].astype(float).to_numpy() == times[0])[0][:10_000]
        start = time.perf_counter()
        scam.tl.simulate(adata, cells=first)
        out["simulate_s"] = time.perf_counter() - start
        del adata.uns["action_matching_simulation"]
    if "couplings" in phases:
        start = time.perf_counter()
        cpl = scam.tl.couplings(adata)
        out["couplings_s"] = time.perf_counter() - start
        out["coupling_nnz"] = int(sum(m.X.nnz for m in cpl.values()))
        del cpl
    if "evaluate" in phases:
        start = time.perf_counter()
        df = scam.tl.evaluate_holdout(adata, time_key, holdout=times[len(times) // 2], metrics=("w1",),
                                      baselines=("ot_interpolation",))
        out["evaluate_s"] = time.perf_counter() - start
        val = df.set_index("method")["value"]
        out["w1_ratio"] = float(val["scam"] / val["ot_interpolation"])
        if kind == "larry":  # the plan subsample against every cell, same run, same cells
            full = scam.tl.evaluate_holdout(adata, time_key, holdout=times[1], metrics=("w1",), baselines=(),
                                            fit_kwargs={"config": {"max_cells": None}})
            out["w1_ratio_all_cells"] = float(full["value"].iloc[0] / val["ot_interpolation"])
            out["fit_s_all_cells"] = float(full["fit_seconds"].iloc[0])
    out["peak_gb"] = _rss_gb()
    return out


COLUMNS = [
    ("set", "{}"), ("variant", "{}"), ("peak_gb", "{:.2f}"), ("data_gb", "{:.2f}"), ("fit_s", "{:.1f}"),
    ("plans_s", "{:.1f}"),
    ("train_s", "{:.1f}"), ("steps_per_s", "{:.0f}"), ("fields_s", "{:.1f}"), ("vel_err", "{:.3f}"),
    ("drift_err", "{:.3f}"), ("fit_x_base", "{:.2f}"),
    ("simulate_s", "{:.1f}"), ("couplings_s", "{:.1f}"), ("evaluate_s", "{:.1f}"), ("w1_ratio", "{:.3f}"),
    ("w1_ratio_all_cells", "{:.3f}"), ("fit_s_all_cells", "{:.1f}"),
]


def table(rows: list[dict]) -> str:
    cols = [(k, f) for k, f in COLUMNS if any(k in r for r in rows)]
    cells = [[k for k, _ in cols]] + [[f.format(r[k]) if k in r else "-" for k, f in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 50])
    p.add_argument("--larry", type=int, default=130_000, help="cells of the LARRY-shaped set (0: skip)")
    p.add_argument("--phases", nargs="+", default=list(PHASES), choices=PHASES)
    p.add_argument("--larry-holdout", action="store_true", help="also fit the LARRY set with day 4 held out")
    p.add_argument("--baseline", action="store_true",
                   help="also fit every set as on 2026-12-06 (network hidden 256, lr 1e-3; route searches in one "
                        "process); fit_x_base: ratio")
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    p.add_argument("--one", nargs=4, metavar=("KIND", "N", "D", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        kind, n, d, variant = args.one
        print(json.dumps(run_one(kind, int(n), int(d), tuple(args.phases), variant)))
        return 0
    jobs = [("drift", n, d) for n in args.sizes for d in args.dims if n > 0]  # --sizes 0: only LARRY
    if args.larry and (LARRY / "mouse_hematopoiesis.csv").exists():
        jobs.append(("larry", args.larry, 2))
        if args.larry_holdout:
            jobs.append(("larry_day4_out", args.larry, 2))
    rows = []
    variants = ("2026-12-06", "default") if args.baseline else ("default",)
    for (kind, n, d), variant in ((job, v) for job in jobs for v in variants):
        _wait_for_quiet()
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--one", kind, str(n), str(d), variant, "--phases", *args.phases],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            rows.append({"set": f"{kind} N={n:,} d={d} FAILED"})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        base = next(r for r in rows if r["set"] == rows[-1]["set"])
        if args.baseline and "fit_s" in rows[-1] and "fit_s" in base:  # to the 2026-12-06 network, same run
            rows[-1]["fit_x_base"] = rows[-1]["fit_s"] / base["fit_s"]
        print(f"{rows[-1]['set']}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(
            f"# benchmarks/scale.py {' '.join(argv or sys.argv[1:])}\n# {time.strftime('%Y-%m-%d %H:%M')}\n{text}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
