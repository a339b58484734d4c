"""Velocity ground truth: the W2 geodesic between two anisotropic Gaussians.

Snapshots of ``N(m0, S0)`` at t=0 and ``N(m1, S1)`` at t=1 are generated; the exact interpolation
between them (McCann's displacement interpolation) moves with the linear velocity field

    v_t(y) = (A - I) ((1 - t) I + t A)^{-1} (y - m_t) + (m1 - m0),
    A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2},

(``scam.datasets._synthetic.gaussian_geodesic``; the same field as ``tests/test_engine.py``). A model is
trained on the two snapshots and its learned ``grad s`` (``ActionModel.velocity``) is compared with
``v_t`` on fresh samples of the true marginal at t = 0.1, 0.2, ..., 0.9 (the target, <= 5%), and
separately at the end points t = 0 and 1. The error is the pooled relative L2 error
``||v_hat - v|| / ||v||`` over all evaluation points.

Rows, all measured in the same run on the same snapshots:

- ``full``: the full training budget (``--steps``, batch 512, hidden 128, one time frequency, no early stop),
  with the default (``"pathwise"``) loss estimator;
- ``full, boundary est.``: the same with the paper's estimator (boundary terms, ``estimator="boundary"``);
- ``full, 4 time freqs``: the same with the former default time embedding (4 Fourier frequencies);
- ``test budget``: the configuration of ``tests/test_engine.py`` (hidden 64, 1500 steps, engine defaults);
- ``independent coupling``: the full configuration with the independent (product) coupling;
- ``mean displacement``: the constant field ``m1 - m0`` (exact for the mean, ignores the covariance change);
- ``zero velocity``: error 1 by definition.

    python benchmarks/gaussian.py                     # d = 2, seed 0, ~2 min on 2 CPU cores
    python benchmarks/gaussian.py --dim 5 --seed 1
    python benchmarks/gaussian.py --steps 1500 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from scam.core import PotentialConfig, TrainConfig, fit
from scam.datasets._synthetic import gaussian_geodesic

TARGET = 0.05


def random_spd(dim: int, rng: np.random.Generator, lo: float = 0.3, hi: float = 2.0) -> np.ndarray:
    """A random anisotropic covariance: random rotation, eigenvalues log-uniform in [lo, hi]."""
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    eig = np.exp(rng.uniform(np.log(lo), np.log(hi), dim))
    eig[0], eig[-1] = lo, hi  # always the full anisotropy ratio hi / lo
    return q @ np.diag(eig) @ q.T


def make_problem(dim: int, n_cells: int, seed: int):
    """Snapshots at t = 0, 1 of a Gaussian W2 geodesic; d = 2 uses the package's default pair."""
    if dim == 2:
        return gaussian_geodesic(n_cells, rng=seed)
    rng = np.random.default_rng(1000 + dim)  # the problem depends on dim only; the seed draws the cells
    m1 = rng.standard_normal(dim)
    m1 *= 3.0 / np.linalg.norm(m1)
    return gaussian_geodesic(
        n_cells, mean0=np.zeros(dim), cov0=random_spd(dim, rng), mean1=m1, cov1=random_spd(dim, rng), rng=seed
    )


def velocity_error(field, tc, times, n_eval: int, seed: int) -> float:
    rng = np.random.default_rng(10_000 + seed)
    est, true = [], []
    for t in times:
        x = tc.sample_marginal(t, n_eval, rng)
        est.append(field(x, t))
        true.append(tc.velocity(x, t))
    est, true = np.concatenate(est), np.concatenate(true)
    return float(np.linalg.norm(est - true) / np.linalg.norm(true))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000, help="training steps of the full-budget models")
    p.add_argument("--seed", type=int, default=0, help="seed of the snapshots and of training")
    p.add_argument("--dim", type=int, default=2, help="dimension (>= 2)")
    p.add_argument("--cells", type=int, default=1000, help="cells per snapshot")
    p.add_argument("--hidden", type=int, default=128, help="width of the full-budget network")
    p.add_argument("--freqs", type=int, default=1, help="time Fourier frequencies of the full-budget network")
    p.add_argument("--n-eval", type=int, default=500, help="evaluation cells per time")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.dim < 2:
        p.error("--dim must be >= 2")
    torch.set_num_threads(args.threads)

    tc = make_problem(args.dim, args.cells, args.seed)
    inner = np.round(np.linspace(0.1, 0.9, 9), 10)
    ends = np.array([0.0, 1.0])
    full_cfg = TrainConfig.from_flat(n_steps=args.steps, batch_size=512, patience=10**6)
    full_net = PotentialConfig(dim=args.dim, hidden=args.hidden, n_frequencies=args.freqs)
    models = {
        "full": (full_net, full_cfg),
        "full, boundary est.": (full_net, TrainConfig.from_flat(n_steps=args.steps, batch_size=512, patience=10**6,
                                                     estimator="boundary")),
        "full, 4 time freqs": (PotentialConfig(dim=args.dim, hidden=args.hidden, n_frequencies=4), full_cfg),
        "test budget": (PotentialConfig(dim=args.dim, hidden=64), TrainConfig.from_flat(n_steps=1500)),
        "independent coupling": (full_net, TrainConfig.from_flat(n_steps=args.steps, batch_size=512, patience=10**6,
                                                       coupling="independent")),
    }
    rows = []
    for name, (net, cfg) in models.items():
        start = time.perf_counter()
        model = fit(tc.xs, tc.times, network=net, config=cfg, rng=args.seed, progress=False)
        seconds = time.perf_counter() - start
        steps = int(model.history["step"][-1])
        rows.append((name, velocity_error(model.velocity, tc, inner, args.n_eval, args.seed),
                     velocity_error(model.velocity, tc, ends, args.n_eval, args.seed), seconds, steps,
                     f"h{net.hidden} f{net.n_frequencies} b{cfg.batch_size}"))
        print(f"  trained {name!r}: {seconds:.1f} s", file=sys.stderr, flush=True)
    disp = tc.marginal(1.0)[0] - tc.marginal(0.0)[0]
    mean_field = lambda x, t: np.broadcast_to(disp, x.shape)  # noqa: E731
    rows.append(("mean displacement", velocity_error(mean_field, tc, inner, args.n_eval, args.seed),
                 velocity_error(mean_field, tc, ends, args.n_eval, args.seed), 0.0, 0, "m1 - m0"))
    zero = lambda x, t: np.zeros_like(x)  # noqa: E731
    rows.append(("zero velocity", velocity_error(zero, tc, inner, args.n_eval, args.seed),
                 velocity_error(zero, tc, ends, args.n_eval, args.seed), 0.0, 0, "0"))

    ref = rows[0][1]
    print(f"\nGaussian W2 geodesic, d={args.dim}, {args.cells} cells per snapshot, seed {args.seed}, "
          f"torch threads {args.threads}")
    print("relative L2 error of grad s vs the closed-form velocity; inner: t = 0.1..0.9, ends: t = 0 and 1\n")
    head = (f"| {'method':<22} | {'setting':<14} | {'steps':>5} | {'err inner':>9} | {'err ends':>8} "
            f"| {'x full':>6} | {'fit s':>6} |")
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for name, e_in, e_end, sec, steps, setting in rows:
        print(f"| {name:<22} | {setting:<14} | {steps:>5} | {e_in:>9.4f} | {e_end:>8.4f} "
              f"| {e_in / ref:>6.2f} | {sec:>6.1f} |")
    ok = ref <= TARGET
    print(f"\nfull-budget inner error {ref:.4f}: target <= {TARGET:.2f} {'MET' if ok else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
