"""Curved paths on dynamics that turn, and on straight truth: velocity error and a held-out snapshot.

Systems (``scam.datasets.rotating_blob``: a blob whose centre travels round a circle, 2-D or with stationary
noise dimensions; a Gaussian moving at constant velocity, straight truth), one fit per path family
(``path="support"``, the default, ``"straight"``, ``"curved"``, ``"auto"``; ``growth=None``-like balanced fits,
defaults otherwise).
Velocity error: relative L2 against the true (marginal-preserving gradient) field at 8 times strictly
inside the observed range, fresh cells from the true marginals. Held out: the middle snapshot removed, the
model fitted on the others pushes the previous snapshot to it; W1 as a ratio to straight exact-OT
interpolation between its neighbours in the same run, beside the sampling floor (a fresh sample of the true
marginal against the held-out cells).

    python benchmarks/curved.py                       # every row, seed 0 (~15 min on 2 cores)
    python benchmarks/curved.py --rows blob2d_45 --seeds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ot
import torch

from scam.core import TrainConfig, fit
from scam.datasets import rotating_blob


def constant_velocity(n_cells: int, n_snap: int, dim: int, rng: int):
    """A Gaussian moving at constant velocity: snapshots, times, true velocity, marginal sampler."""
    vel = np.zeros(dim)
    vel[0], vel[1] = 1.5, 0.6
    root = np.linalg.qr(np.random.default_rng(123).standard_normal((dim, dim)))[0] @ np.diag(np.linspace(1, 0.4, dim))
    times = np.arange(n_snap, dtype=float)

    def sample(t, n, seed):
        return t * vel + np.random.default_rng(seed).standard_normal((n, dim)) @ root.T

    gen = np.random.default_rng(rng)
    xs = [sample(t, n_cells, int(gen.integers(2**31))) for t in times]
    return xs, times, (lambda x, t: np.broadcast_to(vel, np.shape(x)).copy()), sample


def blob(degrees: float, n_snap: int, dim: int):
    def make(n_cells, rng):
        tc = rotating_blob(n_cells, times=np.arange(n_snap, dtype=float), degrees=degrees, dim=dim, rng=rng)
        return tc.xs, tc.times, tc.velocity, tc.info["marginal_sample"]
    return make


ROWS = {
    "blob2d_30": blob(30.0, 5, 2), "blob2d_45": blob(45.0, 5, 2), "blob2d_60": blob(60.0, 5, 2),
    "blob2d_45_6snap": blob(45.0, 6, 2), "blob10d_45": blob(45.0, 5, 10),
    "constant2d": lambda n, rng: constant_velocity(n, 4, 2, rng),
    "constant10d": lambda n, rng: constant_velocity(n, 4, 10, rng),
}
FAMILIES = ("support", "straight", "curved", "auto")  # "support": the default


def _w1(a, b) -> float:
    cost = ot.dist(np.asarray(a, float), np.asarray(b, float), metric="euclidean")
    return float(ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost, numItermax=10**7))


def _ot_interpolation(x0, x1, tau, rng):
    plan = ot.emd(np.full(len(x0), 1 / len(x0)), np.full(len(x1), 1 / len(x1)), ot.dist(x0, x1), numItermax=10**7)
    i, j = np.nonzero(plan > 0)
    pick = np.random.default_rng(rng).choice(len(i), len(x0), p=plan[i, j] / plan[i, j].sum())
    return (1 - tau) * x0[i[pick]] + tau * x1[j[pick]]


def _fit(xs, times, family, seed):
    config = TrainConfig.from_flat(path=family, growth_weight=0.0, coupling="ot")
    start = time.perf_counter()
    model = fit(xs, times, config=config, rng=seed, progress=False, threads=None)
    return model, time.perf_counter() - start


def run(row: str, family: str, seed: int, n_cells: int) -> dict:
    xs, times, velocity, sample = ROWS[row](n_cells, seed)
    model, seconds = _fit(xs, times, family, seed)
    num = den = 0.0
    for t in np.linspace(times[0], times[-1], 10)[1:-1]:
        x = sample(t, 1000, 10_000 + int(100 * t))
        diff = model.velocity(x, t) - velocity(x, t)
        num, den = num + float(np.sum(diff**2)), den + float(np.sum(velocity(x, t) ** 2))
    mid = len(xs) // 2
    keep = [k for k in range(len(xs)) if k != mid]
    model_held, _ = _fit([xs[k] for k in keep], times[keep], family, seed)
    pushed, _ = model_held.push(xs[mid - 1], times[mid - 1], times[mid], return_weights=True, rng=seed)
    tau = (times[mid] - times[mid - 1]) / (times[mid + 1] - times[mid - 1])
    baseline = _w1(_ot_interpolation(xs[mid - 1], xs[mid + 1], tau, seed), xs[mid])
    held = _w1(pushed, xs[mid])
    floor = _w1(sample(times[mid], len(xs[mid]), 99), xs[mid])
    return {"row": row, "path": family, "seed": seed, "velocity_error": float(np.sqrt(num / den)),
            "held_out_ratio": held / baseline, "floor_ratio": floor / baseline,
            "chosen": "/".join(model.info["path"]["gaps"]), "fit_s": seconds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--paths", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--cells", type=int, default=1000, help="cells per snapshot")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import pandas as pd

    rows = [run(r, f, s, args.cells) for r in args.rows for f in args.paths for s in range(args.seeds)]
    table = pd.DataFrame(rows).groupby(["row", "path"]).agg(
        velocity_error=("velocity_error", "mean"), held_out_ratio=("held_out_ratio", "mean"),
        floor_ratio=("floor_ratio", "mean"), chosen=("chosen", "first"), fit_s=("fit_s", "mean"))
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
