"""Why the Cite held-out days are hard: cell-state composition per day, and what fixing it would give.

No model is trained. On the standard Cite-5 subsample (5 whitened PCs, 2500 cells per day, seed 0, as
``holdout.py``), the cells of all days are clustered (k-means, ``--clusters``), and the script prints

1. the share of each cluster on days 2, 3, 4, 7, the share in the OT interpolation to each held-out
   day, and the error of that share;
2. W1 to each held-out day of interpolants built from the two neighbouring days only:
   ``ot`` (balanced exact OT, the baseline), ``uot k`` (exact unbalanced OT, TV penalty at k x W2^2,
   destroyed cells decaying as ``(1 - tau)^2``: what ``coupling='uot'`` trains on), ``uot k drop``
   (the same with destroyed cells removed at once: not a dynamics, shown because it is what partial
   OT does), and ``oracle composition`` (the OT interpolant re-weighted so that its cluster shares
   equal the held-out day's: a bound that uses the answer, no method can reach it).

    python benchmarks/cite_composition.py [--clusters 12] [--cells 2500] [--k 1 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import ot
from sklearn.cluster import KMeans

sys.path.insert(0, str(Path(__file__).resolve().parent))
from holdout import DEFAULT_DATA, load_cite

from scam.core.growth import tv_unbalanced
from scam.metrics import wasserstein

FOLDS = ((3.0, 2.0, 4.0), (4.0, 3.0, 7.0))  # held out, previous, next


def interpolants(x0, x1, tau, ks):
    """Named (points, weights) predictions at fraction ``tau`` from the two neighbouring days."""
    a, b = np.full(len(x0), 1 / len(x0)), np.full(len(x1), 1 / len(x1))
    cost = ot.dist(x0, x1)
    plan = ot.emd(a, b, cost, numItermax=10_000_000)
    i, j = np.nonzero(plan)
    out = {"ot": ((1 - tau) * x0[i] + tau * x1[j], plan[i, j])}
    w2sq = float((plan * cost).sum())
    for k in ks:
        aug = tv_unbalanced(a, b, cost, k * w2sq)
        core, dead = aug[:-1, :-1], aug[:-1, -1]
        ii, jj = np.nonzero(core)
        d = np.nonzero(dead)[0]
        moved = (1 - tau) * x0[ii] + tau * x1[jj]
        out[f"uot {k:g}"] = (np.r_[moved, x0[d]], np.r_[core[ii, jj], dead[d] * (1 - tau) ** 2])
        out[f"uot {k:g} drop"] = (moved, core[ii, jj])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--cells", type=int, default=2500)
    p.add_argument("--clusters", type=int, default=12)
    p.add_argument("--k", type=float, nargs="+", default=[1.0, 3.0], help="uot thresholds (x W2^2)")
    args = p.parse_args(argv)

    adata = load_cite(args.data, "cite5", args.cells)
    x, day = adata.obsm["X_pca"], adata.obs["day"].to_numpy()
    xs = {d: x[day == d] for d in np.unique(day)}
    km = KMeans(args.clusters, n_init=4, random_state=0).fit(x)
    share = {d: np.bincount(km.predict(v), minlength=args.clusters) / len(v) for d, v in xs.items()}

    results = {}
    ot_share = {}
    for h, prev, nxt in FOLDS:
        tau = (h - prev) / (nxt - prev)
        preds = interpolants(xs[prev], xs[nxt], tau, args.k)
        pts, w = preds["ot"]
        lab = km.predict(pts)
        ot_share[h] = np.bincount(lab, weights=w, minlength=args.clusters) / w.sum()
        fix = share[h][lab] / np.maximum(ot_share[h][lab], 1e-12)
        preds["oracle composition"] = (pts, w * fix)
        for name, (q, wq) in preds.items():
            results.setdefault(name, {})[h] = wasserstein(q, xs[h], p=1, a=wq / wq.sum())

    print(f"== cluster shares (k-means, {args.clusters} clusters on all days; Cite-5, {args.cells} cells/day) ==")
    print(f"{'cluster':>7} {'day 2':>7} {'day 3':>7} {'day 4':>7} {'day 7':>7} | "
          f"{'OT->3':>7} {'err':>7} | {'OT->4':>7} {'err':>7}")
    for c in np.argsort(-np.abs(ot_share[4.0] - share[4.0])):
        row = " ".join(f"{share[d][c]:7.3f}" for d in (2.0, 3.0, 4.0, 7.0))
        e3, e4 = ot_share[3.0][c] - share[3.0][c], ot_share[4.0][c] - share[4.0][c]
        print(f"{c:>7} {row} | {ot_share[3.0][c]:7.3f} {e3:+7.3f} | {ot_share[4.0][c]:7.3f} {e4:+7.3f}")
    tv = {h: 0.5 * np.abs(ot_share[h] - share[h]).sum() for h in (3.0, 4.0)}
    print(f"total-variation error of the OT shares: day 3 {tv[3.0]:.3f}, day 4 {tv[4.0]:.3f}")

    print("\n== W1 to the held-out day, interpolants from the two neighbouring days (no model) ==")
    ref = np.mean(list(results["ot"].values()))
    print(f"{'interpolant':<22}{'day 3':>8}{'day 4':>8}{'mean':>8}{'ratio_to_ot':>13}")
    for name, r in sorted(results.items(), key=lambda kv: np.mean(list(kv[1].values()))):
        m = np.mean(list(r.values()))
        print(f"{name:<22}{r[3.0]:8.3f}{r[4.0]:8.3f}{m:8.3f}{m / ref:13.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
