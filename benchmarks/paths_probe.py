"""Held-out days from exact and entropic OT plans alone (no training): what each path construction buys.

A probe for the choice of paths and growth, not a benchmark of scam's fit. Cite, 5 PCs standardised over
all cells, 2,500 cells a day drawn per seed, days 3 (from 2 -> 4, real time fraction 0.5) and 4 (from
3 -> 7, fraction 0.25) held out in turn; each prediction is a weighted point cloud scored by exact W1
against the held-out cells, as a ratio to the straight exact-OT interpolation of the same run:

- ``straight``: pairs of the exact (balanced) OT plan, moved along straight lines;
- ``entropic``: the balanced entropic plan (``reg`` on the cost divided by its median), its entries as
  the masses of the interpolated pairs: how much the blur of an entropic plan alone buys;
- ``unbalanced``: the entropic unbalanced plan (KL marginal penalty ``reg_m``), its entries as masses:
  cells that would travel far are destroyed at the source and created at the target;
- ``unbalanced geometric``: the same pairs with masses interpolated geometrically between the plan's
  reweighting of the source marginal and of the target marginal (each pair grows at a constant rate);
- ``metric geodesic`` (``--metric``): exact-OT pairs joined by geodesics of the LAND density metric of
  the two snapshots (``G(x) = diag(h(x) + rho)^-1``, ``h_d(x) = sum_i exp(-|x - x_i|^2 / 2 gamma^2)
  (x_id - x_d)^2``; 8 segments per path, energy minimised by Adam), the point at the time fraction.

Controls: the same constructions between two disjoint samples of one day, scored against a third
(no motion, no growth): a gain there is an artefact of reweighting finite samples.

    python benchmarks/paths_probe.py --seeds 0 1          # ~10 min on 2 cores
    python benchmarks/paths_probe.py --seeds 0 --metric 0.5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import ot

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from holdout import DEFAULT_DATA, load_cite  # noqa: E402

REG, REG_M = 0.005, 1.0
MAX_PAIRS = 15_000  # largest entries of an entropic plan kept as interpolated pairs


def w1(points, weights, held_out):
    cost = ot.dist(points, held_out, metric="euclidean")
    return float(ot.emd2(weights / weights.sum(), np.full(len(held_out), 1.0 / len(held_out)), cost,
                         numItermax=10**7))


def _top(plan):
    flat = np.argsort(plan, axis=None)[::-1][:MAX_PAIRS]
    return np.unravel_index(flat, plan.shape)


def constructions(x0, x1, tau, metric=None):
    a, b = np.full(len(x0), 1.0 / len(x0)), np.full(len(x1), 1.0 / len(x1))
    cost = ot.dist(x0, x1)
    out = {}
    exact = ot.emd(a, b, cost, numItermax=10**7)
    i, j = np.nonzero(exact)
    out["straight"] = ((1 - tau) * x0[i] + tau * x1[j], exact[i, j])
    scaled = cost / np.median(cost)
    plan = ot.sinkhorn(a, b, scaled, REG, numItermax=5000, stopThr=1e-6)
    if not np.isfinite(plan).all():
        raise FloatingPointError("the entropic plan under- or overflowed")
    i, j = _top(plan)
    out["entropic"] = ((1 - tau) * x0[i] + tau * x1[j], plan[i, j])
    plan = ot.unbalanced.sinkhorn_unbalanced(a, b, scaled, REG, REG_M, numItermax=5000, stopThr=1e-6)
    i, j = _top(plan)
    p = plan[i, j]
    m0 = p * a[i] / plan.sum(axis=1)[i]
    m1 = p * b[j] / plan.sum(axis=0)[j]
    out["unbalanced"] = ((1 - tau) * x0[i] + tau * x1[j], p)
    out["unbalanced geometric"] = ((1 - tau) * x0[i] + tau * x1[j], m0 ** (1 - tau) * m1**tau)
    if metric is not None:
        i, j = np.nonzero(exact)
        ref = np.concatenate([x0, x1])
        path = land_geodesics(x0[i], x1[j], ref[np.random.default_rng(0).choice(len(ref), 1500, replace=False)],
                              gamma=metric)
        pos = tau * (len(path) - 1)
        lo = int(np.floor(pos))
        f = pos - lo
        out["metric geodesic"] = ((1 - f) * path[lo] + f * path[min(lo + 1, len(path) - 1)], exact[i, j])
    return out


def land_geodesics(x0, x1, ref, *, gamma, rho=1e-3, n_inner=7, n_iter=150):
    import torch

    x0t, x1t, r = (torch.tensor(v, dtype=torch.float32) for v in (x0, x1, ref))
    taus = torch.linspace(0, 1, n_inner + 2)[1:-1, None, None]
    inner = ((1 - taus) * x0t + taus * x1t).clone().requires_grad_(True)
    opt = torch.optim.Adam([inner], lr=0.02)

    def metric(x):
        w = torch.exp(-torch.cdist(x, r) ** 2 / (2 * gamma**2))
        h = w @ r**2 - 2 * x * (w @ r) + x**2 * w.sum(1, keepdim=True)
        return 1.0 / (h + rho)

    for _ in range(n_iter):
        pts = torch.cat([x0t[None], inner, x1t[None]])
        dx, mid = pts[1:] - pts[:-1], 0.5 * (pts[1:] + pts[:-1])
        energy = (dx**2 * metric(mid.reshape(-1, mid.shape[-1])).reshape(mid.shape)).sum()
        opt.zero_grad()
        energy.backward()
        opt.step()
    return torch.cat([x0t[None], inner.detach(), x1t[None]]).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--metric", type=float, default=None, help="LAND bandwidth gamma (off by default)")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        adata = load_cite(args.data, "cite5", 0)  # all cells: the samples and the controls are drawn here
        rng = np.random.default_rng(seed)
        day = adata.obs["day"].to_numpy()
        x = adata.obsm["X_pca"]
        cells = {d: x[day == d] for d in (2.0, 3.0, 4.0, 7.0)}
        sub = {d: c[rng.choice(len(c), 2500, replace=False)] for d, c in cells.items()}
        cases = [("day 3 from 2 -> 4", sub[2.0], sub[4.0], sub[3.0], 0.5),
                 ("day 4 from 3 -> 7", sub[3.0], sub[7.0], sub[4.0], 0.25)]
        for d in (3.0, 4.0):
            perm = rng.permutation(len(cells[d]))
            s = [cells[d][perm[k * 2500:(k + 1) * 2500]] for k in range(3)]
            cases.append((f"control: day {d:g}, A -> B vs C", s[0], s[1], s[2], 0.5))
        for name, x0, x1, held, tau in cases:
            start = time.perf_counter()
            preds = constructions(x0, x1, tau, args.metric)
            scores = {k: w1(p, w, held) for k, (p, w) in preds.items()}
            rows.append((seed, name, scores, time.perf_counter() - start))
            print(f"seed {seed} {name}: " + ", ".join(f"{k} {v:.3f} ({v / scores['straight']:.3f}x)"
                                                        for k, v in scores.items()), flush=True)
    methods = list(rows[0][2])
    print("\n| seed | held out | " + " | ".join(methods) + " | s |")
    print("|---|---|" + "---|" * (len(methods) + 1))
    for seed, name, scores, sec in rows:
        cols = [f"{scores['straight']:.3f}"] + [f"{scores[m] / scores['straight']:.3f}x" for m in methods[1:]]
        print(f"| {seed} | {name} | " + " | ".join(cols) + f" | {sec:.0f} |")


if __name__ == "__main__":
    main()
