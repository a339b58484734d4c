"""``python -m scam.demo``: the main job of ``make demo``, on the Cite subset shipped with scam.

Offline, on CPU in a few minutes: held-out evaluation (day 3 and day 4 in turn) against the
"previous day" and "OT interpolation" baselines, a fit on all days, simulated trajectories, fate
probabilities, and the main figures written to ``--out``. Results are reported on stdout and in
``<out>/holdout.csv`` and ``<out>/summary.txt``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

import scam

log = logging.getLogger("scam.demo")


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    log.info("wrote %s", path)


def _summary(df: pd.DataFrame) -> pd.DataFrame:
    per = df[df["metric"] == "w1"].groupby(["method", "holdout_time"])["value"].mean().unstack()
    per["mean"] = per.mean(axis=1)
    per["ratio_to_ot"] = per["mean"] / per.loc["ot_interpolation", "mean"]
    fit = df[df["method"] == "scam"].groupby("holdout_time")["fit_seconds"].mean()
    per["fit_s/fold"] = [fit.mean() if m == "scam" else 0.0 for m in per.index]
    return per.sort_values("mean")


def main(argv=None) -> int:
    """Run the demo; see ``python -m scam.demo --help``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="folder for figures and tables")
    p.add_argument("--n-dims", type=int, default=5, help="leading PCs of the demo subset to model (<= 10)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: scam's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cells", type=int, default=None, help="cells per day in the held-out evaluation (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="tiny budget (200 steps, 300 cells/day evaluated), for smoke tests")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    steps = 200 if args.quick else args.steps
    n_cells = 300 if args.quick and args.cells is None else args.cells
    fit_options = {"config": {"n_steps": steps}} if steps else {}

    adata = scam.datasets.demo()
    log.info("Cite demo subset: %d cells, days %s, %d PCs (using %d)", adata.n_obs,
             sorted(set(adata.obs["day"])), adata.obsm["X_pca"].shape[1], args.n_dims)

    # 1. held-out evaluation: each interior day removed in turn, scam vs baselines
    start = time.perf_counter()
    df = scam.tl.evaluate_holdout(adata, "day", n_dims=args.n_dims, fit_kwargs=fit_options, n_cells=n_cells,
                                 rng=args.seed)
    df.to_csv(args.out / "holdout.csv", index=False)
    table = _summary(df)
    log.info("held-out evaluation in %.0f s", time.perf_counter() - start)

    # 2. fit on all days, then use the dynamics
    scam.tl.action_matching(adata, "day", n_dims=args.n_dims, rng=args.seed, progress=False, **fit_options)
    model = scam.tl.get_model(adata)
    x2 = adata.obsm["X_pca"][adata.obs["day"] == 2, : args.n_dims]
    pushed, weights = model.push(x2, 2.0, 7.0, return_weights=True, rng=args.seed)
    x7 = adata.obsm["X_pca"][adata.obs["day"] == 7, : args.n_dims]
    w1_push = scam.metrics.wasserstein(pushed, x7, p=1, a=weights if model.unbalanced else None)
    w1_stay = scam.metrics.wasserstein(x2, x7, p=1)
    # a fine time grid (it includes the observed days 3, 4, 7) so paths are drawn as smooth curves
    scam.tl.simulate(adata, source_time=2.0, target_times=np.union1d(np.linspace(2.0, 7.0, 41)[1:], [3.0, 4.0]),
                     rng=args.seed)
    # cell states at day 7 (k-means on the embedding; the demo subset carries no annotation)
    km = KMeans(n_clusters=4, n_init=10, random_state=args.seed)
    labels = np.full(adata.n_obs, "", dtype=object)
    late = (adata.obs["day"] == 7).to_numpy()
    labels[late] = [f"state {k + 1}" for k in km.fit_predict(adata.obsm["X_pca"][late, : args.n_dims])]
    labels[~late] = [f"state {k + 1}" for k in km.predict(adata.obsm["X_pca"][~late, : args.n_dims])]
    adata.obs["state"] = pd.Categorical(labels)
    fates = scam.tl.fate_probabilities(adata, source_time=2.0, target_time=7.0, groupby="state")

    # 3. figures
    _save(scam.pl.wasserstein(adata, show=False, return_fig=True), args.out / "holdout_w1.png")
    _save(scam.pl.history(adata, show=False, return_fig=True), args.out / "history.png")
    _save(scam.pl.trajectories(adata, show=False, return_fig=True), args.out / "trajectories.png")
    _save(scam.pl.velocity(adata, time=3.0, show=False, return_fig=True), args.out / "velocity.png")
    _save(scam.pl.potential(adata, times=[2.0, 3.0, 4.0, 7.0], show=False, return_fig=True),
          args.out / "potential.png")
    _save(scam.pl.fate(adata, show=False, return_fig=True), args.out / "fate.png")
    if model.unbalanced:
        _save(scam.pl.growth(adata, show=False, return_fig=True), args.out / "growth.png")

    lines = [
        "scam demo on the shipped Cite subset (1000 cells/day, days 2/3/4/7, "
        f"{args.n_dims} PCs; model: {model})",
        "",
        "Held-out days: W1 between the predicted and the real cells (lower is better)",
        table.to_string(float_format=lambda v: f"{v:.3f}"),
        "",
        f"Day 2 pushed to day 7: W1 {w1_push:.3f} to the real day-7 cells (day 2 as it is: {w1_stay:.3f}).",
        "Fate probabilities of day-2 cells (mean over cells): "
        + ", ".join(f"{c} {v:.2f}" for c, v in fates.mean().items()),
        f"Figures and tables in {args.out.resolve()}",
    ]
    text = "\n".join(lines)
    (args.out / "summary.txt").write_text(text + "\n")
    print(text)  # the demo's report on stdout (a command-line entry point, not library code)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
