"""The defaults on ground truth (velocities, growth rates, masses), one row per system.

Every model is fitted with ``scam.tl.action_matching(adata, "time", growth=...)`` and otherwise default
arguments; only the columns change what is compared:

- ``default``: scam's default (separate growth network over growth-weighted plans: growth only where
  the data show it, ``scam.core.growth``);
- ``balanced``: ``growth=None`` (transport rows only: a balanced model cannot change mass);
- ``paper AM``: the paper's unbalanced AM, one potential for velocity and growth (``g = lambda s``,
  ``config={"growth_model": "potential", "coupling": "ot"}``: a path whose mass follows the given
  masses, growth left to the potential);
- ``single potential``: the 2026-11-23 default, the same single potential over exact unbalanced OT plans
  (``config={"growth_model": "potential"}``, coupling ``uot``);
- ``auto path`` / ``straight path`` / ``graph path`` / ``curved path``: the default with ``config={"path": ...}``;
- ``network 2026-12-06``: the defaults' 256-wide network at ``lr=1e-3``, as until then;
- ``batch512``: 1,000 steps of 512 path samples (warm-up 100) instead of 2,000 of 256: the same samples
  seen in fewer, wider steps (about 0.7x the training time; measured slightly worse, ``benchmarks/README.md``).

Rows and targets:

- transport (nothing grows, equal masses): ``geodesic d=2 / 3 / 5`` (anisotropic Gaussian W2 geodesics,
  ``benchmarks/gaussian.py``'s problems, 3000 cells per end), ``reference_2d`` (a reference 2-D geodesic,
  1500 cells per end, see :func:`reference_problem`), ``ou`` (Ornstein-Uhlenbeck, theta 1, sigma 0.5, 3000 cells
  at t = 0, 0.25, ..., 2; the reference is the probability-flow velocity, the noise-free field with the
  same marginals). Interior times: the quarter points of every gap. ``growth='learn'``. Targets: velocity error at
  interior times <= 5% (d <= 3) / 8% (d = 5), mean |growth| <= 0.05 per time unit, model mass within 2%.
  These rows also print ``moments' floor``: the error of the exact geodesic between the snapshots' sample
  moments, which no method that reproduces the snapshots beats (:func:`moment_floor`; the reference
  problem's seed 1: 0.054, where scam gets 0.055).
- turning (transport too): ``rotation_2d`` / ``rotation_10d``, ``scam.datasets.rotating_blob`` (a blob turning
  45 degrees a time unit round a circle, 1000 cells at t = 0, 1, ..., 4; 10-D: 8 stationary noise dimensions),
  the reference its centre's velocity. Same targets (velocity <= 5%). Straight paths cut the chords: these
  rows fail unless the path bends (``curved path`` column; ``benchmarks/curved.py`` adds held-out snapshots).
  The 10-D row also prints ``means' drift``: the error the snapshots' sample means would force in the noise
  dimensions (they differ from one time point to the next, and a field that reproduces them moves the
  population so: :func:`noise_drift`).
- cycling cells (reported, no target): ``ring_uniform`` / ``ring_bump``, ``scam.datasets.cycling_ring`` (cells
  round a ring, each turning 45 degrees a time unit; phases uniform / von Mises with concentration 2 about the
  turning phase). The learned velocity against the cells' rotation and against the field of least action that
  the snapshots determine (zero for the uniform ring, whose snapshots are all alike; for the bump it misses
  the rotation by ``1 / I0(2) = 0.44``). Snapshots cannot show a rotation their marginals do not carry, and
  Action Matching's velocity is a gradient field (no circulation round the ring): the second figure is the
  one a method can be held to. The third, ``|g|``, is the growth the fit invents (no cell divides or dies):
  the evidence test's affine null cannot turn a bump round a ring, so the bump's far moves read as growth.
- ``branching counts``: ``benchmarks/growth.py``'s system (rates +0.8 / -0.6), counts proportional to the
  population (``--branch-cells`` at the last time point), ``growth='counts'``: each branch's mean rate at
  the interior times within 15% (seeds averaged; each seed shown).
- ``branching learn``: the same cells, ``growth='learn'`` (equal totals): rates relative to the
  population average (truth ``rate - dlog M/dt``) within 15%.
- ``mixture counts``: a linear growth field ``g = 0.3 x_1`` on two cell states (``mixture_growth``),
  ``growth='counts'``: correlation >= 0.9 between learned and true rates over the observed cells.
- ``one Gaussian (n/i)``: a linear growth field on a single Gaussian (``gaussian_growth``): the
  reweighted population is the same Gaussian shifted, so snapshots and masses cannot tell growth from
  transport. Reported (correlation), no target: the paper's potential assumes growth there, the
  default assumes transport with uniform growth.

    python benchmarks/ground_truth.py                       # ~30 min on 2 CPU cores
    python benchmarks/ground_truth.py --rows reference_2d branching_counts --columns default
    python benchmarks/ground_truth.py --budget test         # the tests' budget (tests/test_ground_truth.py)
    python benchmarks/ground_truth.py --columns default "network 2026-12-06" --transport-seeds 3 --seeds 2
"""

from __future__ import annotations

import argparse
import sys
import time

import anndata as ad
import numpy as np
import pandas as pd
import scipy.linalg
import torch
from gaussian import make_problem

import scam
from scam.datasets import _synthetic as syn

COLUMNS = {
    "default": {},
    "balanced": {"growth": None},
    "paper AM": {"config": {"growth_model": "potential", "coupling": "ot"}},
    "single potential": {"config": {"growth_model": "potential"}},
    "auto path": {"config": {"path": "auto"}},  # the path chosen on held-out inner time points
    "straight path": {"config": {"path": "straight"}},  # straight lines everywhere (the default until 2026-12-02)
    "graph path": {"config": {"path": "graph"}},  # routes through the snapshots' neighbour graph
    "curved path": {"config": {"path": "curved"}},  # bent along the turning of the neighbouring snapshots
    "network 2026-12-06": {"network": {"hidden": 256}, "config": {"lr": 1e-3}},  # the defaults' network until then
    "batch512": {"config": {"batch_size": 512, "n_steps": 1000, "warmup": 100}},  # half the steps, twice the samples
}
TEST_BUDGET = {"network": {"hidden": 64}, "config": {"n_steps": 800, "batch_size": 256}}
TRANSPORT_ROWS = ("reference_2d", "geodesic_d2", "geodesic_d3", "geodesic_d5", "ou", "rotation_2d", "rotation_10d")
GROWTH_ROWS = ("branching_counts", "branching_learn", "mixture_counts", "one_gaussian")
RING_ROWS = ("ring_uniform", "ring_bump")  # cycling cells: reported, no target (module docstring)
INTERIOR = (0.5, 1.0, 1.5)  # interior observed times of the branching system
TOL_RATE, MIN_CORR = 0.15, 0.9


def as_adata(xs, times, **obs) -> ad.AnnData:
    """Snapshots as an AnnData with ``obs['time']`` and ``obsm['X_pca']``."""
    x = np.concatenate(xs).astype(np.float32)
    frame = pd.DataFrame({"time": np.concatenate([np.full(len(v), t) for v, t in zip(xs, times)]), **obs},
                         index=[f"c{i}" for i in range(len(x))])
    adata = ad.AnnData(X=x.copy(), obs=frame)
    adata.obsm["X_pca"] = x
    return adata


def reference_problem(seed: int):
    """A reference 2-D geodesic, N(0, I) -> N((2, -1), S1) with 1500 cells per end; the end points are drawn
    with their own generator (``seed + 1``)."""
    m1 = np.array([2.0, -1.0])
    s1 = np.array([[2.0, 0.6], [0.6, 0.5]])
    tc = syn.gaussian_geodesic(2, mean0=(0.0, 0.0), cov0=np.eye(2), mean1=m1, cov1=s1, rng=seed)
    gen = np.random.default_rng(seed + 1)
    root = np.real(scipy.linalg.sqrtm(s1))
    tc.xs = [gen.normal(size=(1500, 2)), m1 + gen.normal(size=(1500, 2)) @ root.T]
    return tc


def transport_problem(row: str, seed: int):
    """(adata, truth, interior evaluation times, velocity target)."""
    if row == "reference_2d":
        tc, target = reference_problem(seed), 0.05
    elif row.startswith("rotation"):
        tc = syn.rotating_blob(1000, degrees=45.0, dim=int(row.split("_")[1][:-1]), rng=seed)
        target = 0.05
    elif row == "ou":
        tc = syn.ornstein_uhlenbeck(3000, times=np.linspace(0.0, 2.0, 9), sigma=0.5, mean0=2.0, std0=0.5, rng=seed)
        target = 0.05
    else:
        dim = int(row[-1])
        tc, target = make_problem(dim, 3000, seed), (0.08 if dim == 5 else 0.05)
    span = tc.times[-1] - tc.times[0]
    grid = np.linspace(tc.times[0], tc.times[-1], 4 * (len(tc.times) - 1) + 1)
    interior = [t for t in grid if not np.any(np.isclose(t, tc.times))]
    return as_adata(tc.xs, tc.times), tc, interior if span else [], target


def branching_problem(n_cells: int, seed: int):
    """``benchmarks/growth.py``'s system with cell numbers proportional to the population."""
    tc = syn.branching_growth(n_cells, rng=seed).proportional_counts(seed)
    names = np.asarray(tc.info["branch_names"])
    return as_adata(tc.xs, tc.times, branch=names[np.concatenate(tc.info["branch"])]), tc


def fit(adata, growth, column: dict, budget: dict, seed: int):
    opts = {"growth": growth, **column}  # the balanced column overrides growth
    if budget:
        opts["network"] = budget["network"]
        opts["config"] = {**budget["config"], **column.get("config", {})}
    start = time.perf_counter()
    scam.tl.action_matching(adata, "time", rng=seed, progress=False, **opts)
    return time.perf_counter() - start


def growth_column(adata) -> np.ndarray:
    col = adata.obs.get("action_matching_growth")
    return np.zeros(adata.n_obs) if col is None else col.to_numpy()


def run_transport(row, column, budget, seed):
    adata, tc, interior, target = transport_problem(row, seed)
    secs = fit(adata, "learn", column, budget, seed)
    model = scam.tl.get_model(adata)
    err = scam.metrics.velocity_error(model.velocity, tc, interior, n_cells=1000, rng=10_000 + seed)
    growth = float(np.nanmean(np.abs(growth_column(adata))))
    mass = adata.uns["action_matching"].get("mass")
    drift = 0.0 if mass is None else float(np.max(np.abs(np.asarray(mass["model"]) - 1)))
    ok = err <= target and growth <= 0.05 and drift <= 0.02
    value = f"v err {err:.3f}, |g| {growth:.3f}, mass {drift:.3f}"
    if row == "reference_2d" or row.startswith("geodesic"):
        value += f", moments' floor {moment_floor(tc, interior, seed):.3f}"
    if row == "rotation_10d":
        value += f", means' drift {noise_drift(adata, tc):.3f}"
    return {"value": value, "ok": ok, "secs": secs}


def moment_floor(tc, interior, seed: int) -> float:
    """The velocity error of the exact geodesic between the Gaussians with the two snapshots' sample means
    and covariances: what a method that reproduces the snapshots, and is otherwise exact on a Gaussian
    geodesic, gets from the sampling of the snapshots alone (the interpolation ``x_t = (1 - t) x + t T(x)``
    of the OT map ``T`` between those Gaussians, its velocity ``T(x) - x`` over the time span)."""
    from scam.core.noise import gaussian_map

    x0, x1 = tc.xs[0], tc.xs[-1]
    m0, m1 = x0.mean(axis=0), x1.mean(axis=0)
    a = gaussian_map(np.atleast_2d(np.cov(x0.T)), np.atleast_2d(np.cov(x1.T)))
    t0, span = tc.times[0], tc.times[-1] - tc.times[0]
    eye = np.eye(len(m0))

    def field(x, t):
        u = (t - t0) / span
        start = m0 + np.linalg.solve((1 - u) * eye + u * a, (x - m0 - u * (m1 - m0)).T).T
        return (m1 + (start - m0) @ a.T - start) / span

    return scam.metrics.velocity_error(field, tc, interior, n_cells=1000, rng=10_000 + seed)


def noise_drift(adata, tc) -> float:
    """The velocity error in the stationary dimensions that the snapshots' means alone would force.

    By continuity the population's mean velocity over a gap is the change of its mean, so a field whose
    marginals pass through the snapshots moves the noise dimensions by the difference of their sample means
    (about ``noise * sqrt(2 * 8 / n)`` a gap), where the truth is 0: the rms over the gaps of that mean
    velocity, relative to the rotation's speed, is a floor of the error in those dimensions for such a field
    (nearly: the error is scored on fresh cells of the true marginals). The default path moves its mean by
    the shifts without their sampling drift (:func:`scam.core.noise.denoised_mean_shifts`), which removes
    the part of the drift outside the turning's own pattern over time."""
    t = adata.obs["time"].to_numpy(float)
    times = np.unique(t)
    x = np.asarray(adata.obsm["X_pca"], float)
    means = np.stack([x[t == s, 2:].mean(axis=0) for s in times])
    rates = np.linalg.norm(np.diff(means, axis=0), axis=1) / np.diff(times)
    cells = tc.sample_marginal(times[0], 1000, np.random.default_rng(0))
    speed = np.sqrt(np.mean(np.sum(tc.flow(cells, times[0]) ** 2, axis=1)))
    return float(np.sqrt(np.mean(rates**2)) / speed)


def branch_rates(adata, tc) -> np.ndarray:
    """Mean learned rate of each branch at the interior times, ``(2,)``."""
    table = scam.metrics.growth_by_group(growth_column(adata), adata.obs["branch"], adata.obs["time"])
    return table.loc[list(INTERIOR), list(tc.info["branch_names"])].to_numpy().mean(axis=0)


def run_branching(mode, column, budget, seeds, n_cells):
    rates, secs = [], 0.0
    for seed in seeds:
        adata, tc = branching_problem(n_cells, seed)
        secs += fit(adata, mode, column, budget, seed)
        rates.append(branch_rates(adata, tc))
    rates = np.array(rates)
    true = tc.info["rates"].astype(float)
    if mode == "learn":  # relative to the population average d log M / dt, averaged over the interior times
        mass = 0.5 * np.exp(np.outer(INTERIOR, true))
        true = (true[None, :] - ((mass * true).sum(1) / mass.sum(1))[:, None]).mean(axis=0)
    mean = rates.mean(axis=0)
    rel = np.abs(mean - true) / np.abs(true)
    per_seed = "; ".join(f"{a:+.2f}/{b:+.2f}" for a, b in rates)
    value = f"{mean[0]:+.2f} / {mean[1]:+.2f} (true {true[0]:+.2f} / {true[1]:+.2f}; seeds {per_seed})"
    return {"value": value, "ok": bool(np.all(rel <= TOL_RATE)), "secs": secs / len(seeds)}


def run_correlation(row, column, budget, seed):
    if row == "mixture_counts":
        tc = syn.mixture_growth(3000, times=(0.0, 0.5, 1.0), rng=seed)
    else:
        tc = syn.gaussian_growth(3000, times=(0.0, 0.5, 1.0), drift=(0.5, 0.0), growth_slope=(0.8, 0.0), rng=seed)
    tc = tc.proportional_counts(seed)
    adata = as_adata(tc.xs, tc.times)
    secs = fit(adata, "counts", column, budget, seed)
    est = growth_column(adata)
    true = tc.growth_rate(adata.obsm["X_pca"].astype(float), 0.0)
    corr = float(np.corrcoef(est, true)[0, 1]) if np.std(est) > 1e-9 else float("nan")
    ok = corr >= MIN_CORR if row == "mixture_counts" else None
    return {"value": f"corr {corr:.3f}", "ok": ok, "secs": secs}


def run_ring(row, column, budget, seed):
    """Cycling cells (``scam.datasets.cycling_ring``, 45 degrees a time unit, 1,000 cells at t = 0, ..., 4):
    the learned velocity against the cells' rigid rotation and against the field of least action, and the
    mean absolute growth rate the fit invents (no cell divides or dies)."""
    tc = syn.cycling_ring(1000, degrees=45.0, kappa=0.0 if row == "ring_uniform" else 2.0, rng=seed)
    adata = as_adata(tc.xs, tc.times)
    secs = fit(adata, "learn", column, budget, seed)
    model = scam.tl.get_model(adata)
    num_rot = num_grad = den = 0.0
    for k, t in enumerate(np.linspace(0.25, 3.75, 8)):
        x = tc.info["marginal_sample"](t, 1000, 10_000 + seed * 100 + k)
        v, rot, grad = model.velocity(x, t), tc.velocity(x, t), tc.info["gradient_velocity"](x, t)
        num_rot, num_grad = num_rot + np.sum((v - rot) ** 2), num_grad + np.sum((v - grad) ** 2)
        den += np.sum(rot**2)
    growth = float(np.nanmean(np.abs(growth_column(adata))))  # invented: the cells only rotate
    value = (f"v err vs the rotation {np.sqrt(num_rot / den):.3f}, distance from the least-action field "
             f"{np.sqrt(num_grad / den):.3f} (x the rotation's speed), |g| {growth:.3f}")
    return {"value": value, "ok": None, "secs": secs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=list(TRANSPORT_ROWS + GROWTH_ROWS + RING_ROWS),
                   choices=list(TRANSPORT_ROWS + GROWTH_ROWS + RING_ROWS))
    p.add_argument("--columns", nargs="+", default=list(COLUMNS), choices=list(COLUMNS))
    p.add_argument("--seeds", type=int, default=3, help="seeds of the branching rows")
    p.add_argument("--transport-seeds", type=int, default=1, help="seeds of the transport rows (problem and fit)")
    p.add_argument("--branch-cells", type=int, default=3000, help="branching: cells at the last time point")
    p.add_argument("--budget", choices=("default", "test"), default="default")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    budget = TEST_BUDGET if args.budget == "test" else {}

    results = {}
    for row in args.rows:
        for col in args.columns:
            column = COLUMNS[col]
            if row in RING_ROWS:
                results[row, col] = run_ring(row, column, budget, 0)
                print(f"  {row} / {col}: {results[row, col]['value']} [{results[row, col]['secs']:.0f} s]",
                      file=sys.stderr, flush=True)
                continue
            if row in GROWTH_ROWS and col == "balanced":
                results[row, col] = {"value": "n/a (no growth)", "ok": None, "secs": 0.0}
                continue
            if row in TRANSPORT_ROWS:
                runs = [run_transport(row, column, budget, seed) for seed in range(args.transport_seeds)]
                res = runs[0] if len(runs) == 1 else {
                    "value": "; ".join(r["value"] for r in runs), "ok": all(r["ok"] for r in runs),
                    "secs": sum(r["secs"] for r in runs)}
            elif row.startswith("branching"):
                res = run_branching(row.split("_")[1], column, budget, range(args.seeds), args.branch_cells)
            else:
                res = run_correlation(row, column, budget, 0)
            results[row, col] = res
            print(f"  {row} / {col}: {res['value']} [{res['secs']:.0f} s]", file=sys.stderr, flush=True)

    print(f"\nGround truth at the defaults (budget: {args.budget}); each cell: measure, pass/fail, fit s")
    print("| row | " + " | ".join(args.columns) + " |")
    print("|---|" + "---|" * len(args.columns))
    for row in args.rows:
        cells = []
        for col in args.columns:
            r = results[row, col]
            mark = "" if r["ok"] is None else (" **ok**" if r["ok"] else " FAIL")
            cells.append(f"{r['value']}{mark} ({r['secs']:.0f} s)")
        print(f"| {row} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
