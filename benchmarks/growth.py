"""Per-branch growth rates on a branching system with known birth/death rates.

``scam.datasets.simulate('branching')``: from a common start, branch 0 moves up and proliferates at
rate 0.8, branch 1 moves down and dies at rate -0.6 (per time unit), observed at t = 0, 0.5, 1, 1.5, 2.
Snapshot ``k`` keeps ``N M(t_k) / M(2)`` of the simulated cells (``--cells`` = N), so the number of
cells per time point is proportional to the true population size and ``growth='counts'`` is valid.

Each configuration is fitted with ``scam.tl.action_matching``; the learned growth rate ``g = lambda s``
(``obs['action_matching_growth']``) is averaged over the observed cells of each branch at each time point
(cells sample the weighted population, so this is the mass-weighted mean rate of the branch). Reported:

- ``interior``: mean over t = 0.5, 1, 1.5 (branches separated and both populated): the headline number;
- ``all``: mean over all five time points (t = 0: the branches still touch; t = 2: the end of the fitted
  range, where the dying branch holds 6% of the mass);
- ``t=...``: each time point.

``learn`` configurations have equal total masses: their rates are relative to the population average,
so they are compared with ``rate_b - d log M / dt`` at each time (columns marked ``rel``).

Configurations (``lambda = 1``, the default, unless ``--growth-weight``):

- ``counts``: ``growth='counts'`` with the default coupling (exact OT; pair masses interpolated
  geometrically, the same growth for every pair of a segment);
- ``counts+uot``: ``growth='counts'`` with ``coupling='unbalanced'``, ``reg_m=0.1``, ``ot_reg=0.05``;
- ``learn`` / ``learn+uot``: the same with ``growth='learn'``;
- ``counts+uot prior`` / ``learn+uot prior`` (not run by default; an attempt that failed): a per-cell
  prior read off unbalanced OT plans (:func:`uot_prior`), passed as ``growth=obs key``; the unclipped
  prior has extreme weights and the fit blows up near t = 0;
- ``oracle prior``: the true per-cell rate as the prior (``growth=obs key``): OT plans weighted by
  ``exp(g dt)``; an upper bound on what a coupling can give.

    python benchmarks/growth.py                         # ~4 min on 2 CPU cores
    python benchmarks/growth.py --configs counts counts+uot --seed 1
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

import scam

UOT = {"coupling": "unbalanced", "reg_m": 0.1, "ot_reg": 0.05}
CONFIGS = {
    "counts": ("counts", {}),
    "counts+uot": ("counts", UOT),
    "learn": ("learn", {}),
    "learn+uot": ("learn", UOT),
    "counts+uot prior": ("uot_prior_counts", {}),
    "learn+uot prior": ("uot_prior_learn", {}),
    "oracle prior": ("true_rate", {}),
}
TOL = 0.15


def make_data(n_cells: int, seed: int):
    adata, tc = scam.datasets.simulate("branching", n_cells=n_cells, rng=seed, return_truth=True)
    rng = np.random.default_rng(seed)
    times = tc.times
    keep = []
    for t, m in zip(times, tc.masses / tc.masses[-1]):
        idx = np.nonzero(adata.obs["time"].to_numpy() == t)[0]
        keep.append(np.sort(rng.choice(idx, int(round(m * len(idx))), replace=False)))
    adata = adata[np.concatenate(keep)].copy()
    x = adata.obsm["X_pca"]
    adata.obs["true_rate"] = tc.growth_rate(x, 0.0)
    return adata, tc


def uot_prior(adata, masses, *, reg_m: float = 0.1, ot_reg: float = 0.05, seed: int = 0) -> np.ndarray:
    """Per-cell log growth rate read off entropic unbalanced OT plans between consecutive snapshots.

    In the plan of segment k, source cell i sends ``pi_i.`` and the mass it delivers, counting mass
    created at the targets (``b_j / pi_.j``) in proportion, is ``d_i = sum_j pi_ij b_j / pi_.j``; its
    prior rate is ``log(d_i / a_i) / dt``. Used as a ``growth=`` obs key, it weights the balanced OT plans
    (``exp(g dt)``), so a composition change is explained by growth, not by cross-branch transport.
    The last snapshot is never a source: its cells get the previous segment's rate of their nearest source.
    """
    from scam.core import PathConfig, SnapshotPath

    t_obs = adata.obs["time"].to_numpy()
    times = np.unique(t_obs)
    x = adata.obsm["X_pca"]
    xs = [x[t_obs == t] for t in times]
    pooled = np.concatenate(xs)
    zs = [(v - pooled.mean(0)) / np.sqrt(pooled.var(0).mean()) for v in xs]
    u = (times - times[0]) / (times[-1] - times[0])
    config = PathConfig(coupling="unbalanced", ot_reg=ot_reg, reg_m=reg_m)
    path = SnapshotPath(zs, u, np.asarray(masses, float), config,
                        rng=np.random.default_rng(seed))
    out = np.zeros(len(x))
    rates = []
    for k, plan in enumerate(path.plans):
        pi = np.diff(np.concatenate([[0.0], plan.cdf]))
        d = np.bincount(plan.src, weights=pi * np.exp(plan.log_rb), minlength=len(xs[k]))
        a = masses[k] / len(xs[k])
        g = np.log(np.maximum(d, 1e-12) / a) / (times[k + 1] - times[k])
        out[t_obs == times[k]] = g
        rates.append(g)
    near = np.argmin(((zs[-1][:, None, :] - zs[-2][None, :, :]) ** 2).sum(-1), axis=1)
    out[t_obs == times[-1]] = rates[-1][near]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=1500, help="simulated cells per time point before subsampling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="+", default=[c for c in CONFIGS if "uot prior" not in c], choices=list(CONFIGS))
    p.add_argument("--growth-weight", type=float, default=1.0, help="lambda (standardised units)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    adata, tc = make_data(args.cells, args.seed)
    counts_all = np.array([np.sum(adata.obs["time"].to_numpy() == t) for t in tc.times], float)
    if "counts+uot prior" in args.configs:
        adata.obs["uot_prior_counts"] = uot_prior(adata, counts_all / counts_all[0], seed=args.seed)
    if "learn+uot prior" in args.configs:
        adata.obs["uot_prior_learn"] = uot_prior(adata, np.ones(len(tc.times)), seed=args.seed)
    times = tc.times
    rates = tc.info["rates"]
    t_obs = adata.obs["time"].to_numpy()
    branch = adata.obs["branch"].astype(str).to_numpy()
    names = list(tc.info["branch_names"])
    # d log M / dt at each time: the population-average rate (reference of 'learn' models)
    mass = 0.5 * np.exp(np.outer(times, rates))
    mean_rate = (mass * rates).sum(1) / mass.sum(1)
    counts = [int(np.sum(t_obs == t)) for t in times]
    interior = (times > times[0]) & (times < times[-1])

    rows = []
    for name in args.configs:
        growth, coupling = CONFIGS[name]
        start = time.perf_counter()
        a = adata.copy()
        scam.tl.action_matching(
            a, "time", growth=growth, growth_weight=args.growth_weight,
            network={"hidden": args.hidden},
            config={"n_steps": args.steps, "batch_size": 512, "patience": 10**6, **coupling},
            rng=args.seed, progress=False,
        )
        secs = time.perf_counter() - start
        g = a.obs["action_matching_growth"].to_numpy()
        est = np.array([[g[(t_obs == t) & (branch == b)].mean() for b in names] for t in times])  # (T, 2)
        relative = growth in ("learn", "uot_prior_learn")
        truth = rates[None, :] - (mean_rate[:, None] if relative else np.zeros((len(times), 1)))
        rows.append((name, relative, est, truth, secs))
        print(f"  {name}: {secs:.0f} s", file=sys.stderr, flush=True)

    print(f"\nBranching system, seed {args.seed}: true rates {names[0]} {rates[0]:+.2f}, {names[1]} {rates[1]:+.2f}; "
          f"cells per time {counts}; lambda = {args.growth_weight:g}; hidden {args.hidden}, {args.steps} steps")
    print("Mean learned growth rate of each branch's observed cells; rel = relative to the population average "
          f"(truth: rate - dlogM/dt); 'ok' = within {TOL:.0%} of the truth for both branches\n")
    tcols = " | ".join(f"t={t:g} ({names[0][:4]}/{names[1][:4]})".ljust(19) for t in times)
    head = (f"| {'config':<13} | {'interior: prolif / dying':<32} | {'ok':<3} | {'all times':<15} "
            f"| {tcols} | {'fit s':>5} |")
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for name, relative, est, truth, secs in rows:
        e_in, t_in = est[interior].mean(0), truth[interior].mean(0)
        e_all = est.mean(0)
        rel_err = np.abs(e_in - t_in) / np.abs(t_in)
        ok = "yes" if np.all(rel_err <= TOL) else "no"
        tag = " rel" if relative else ""
        interior_s = f"{e_in[0]:+.2f} / {e_in[1]:+.2f} (true {t_in[0]:+.2f} / {t_in[1]:+.2f}){tag}"
        per_t = " | ".join(f"{a:+.2f} / {b:+.2f}".ljust(19) for a, b in est)
        print(f"| {name:<13} | {interior_s:<32} | {ok:<3} | {e_all[0]:+.2f} / {e_all[1]:+.2f}   "
              f"| {per_t} | {secs:>5.0f} |")
    print("\nrelative errors (interior): " + "; ".join(
        f"{n}: {abs(e[interior].mean(0)[0] / t[interior].mean(0)[0] - 1):.0%} / "
        f"{abs(e[interior].mean(0)[1] / t[interior].mean(0)[1] - 1):.0%}" for n, _, e, t, _ in rows))
    print("truth per time (absolute):", " | ".join(f"t={t:g}: {rates[0]:+.2f} / {rates[1]:+.2f}" for t in times))
    print("truth per time (relative):", " | ".join(f"t={t:g}: {rates[0] - m:+.2f} / {rates[1] - m:+.2f}"
                                                 for t, m in zip(times, mean_rate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
