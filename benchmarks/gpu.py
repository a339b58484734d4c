"""GPU timings (run on a machine with CUDA; on a CPU it runs the same measurements on the CPU).

Measures, on ``device="auto"`` with scam's defaults:

1. a Cite-5 fold: ``scam.tl.action_matching`` on Cite (first 5 PCs, day 4 held out) from
   ``../shared/data/cite_lightsb`` (skipped when absent);
2. a 1M-cell fit: 1,000,000 cells x 50 dims, 5 time points, constant drift (``benchmarks/scale.py``'s
   set), with its velocity error against the known drift;
3. training throughput: optimiser steps per second of the Action Matching loss against a bare MLP of
   the same width and depth doing one forward and backward pass on a batch of the same size (an upper
   bound: AM needs the gradient of the potential, i.e. a double backward);
4. the same steps/s with ``torch.autocast`` (bf16) and with ``torch.compile`` of the bare MLP, so the
   decision to use either rests on a measurement.

    python benchmarks/gpu.py                   # everything
    python benchmarks/gpu.py --cells 100000    # a smaller atlas
    python benchmarks/gpu.py --out benchmarks/results/gpu.txt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import scam
from scam.core import ObjectiveConfig, PathConfig, PotentialConfig, PotentialNet, SnapshotPath, action_matching_loss
from scam.core._utils import resolve_device

HERE = Path(__file__).resolve().parent
CITE = HERE.parent.parent / "shared" / "data" / "cite_lightsb"


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def cite_fold(dev) -> dict:
    if not CITE.exists():
        return {"cite5_fold_s": float("nan")}
    adata = scam.datasets.load("cite", path=CITE)
    start = time.perf_counter()
    scam.tl.action_matching(adata, "day", n_dims=5, holdout=4, device=str(dev), progress=False, rng=0)
    return {"cite5_fold_s": time.perf_counter() - start}


def atlas_fit(dev, n: int) -> dict:
    sys.path.insert(0, str(HERE))
    from scale import _synthetic

    adata, c = _synthetic(n, 50)
    start = time.perf_counter()
    scam.tl.action_matching(adata, "time", device=str(dev), progress=False, rng=0)
    out = {"atlas_cells": n, "atlas_fit_s": time.perf_counter() - start}
    sec = adata.uns["action_matching"]["seconds"]
    out.update(atlas_plans_s=sec["plans"], atlas_train_s=sec["training"], atlas_fields_s=sec["fields"])
    model = scam.tl.get_model(adata, device=str(dev))
    sel = np.random.default_rng(1).choice(n, min(n, 20_000), replace=False)
    v = model.velocity(adata.obsm["X_pca"][sel], adata.obs["time"].to_numpy()[sel])
    out["atlas_vel_err"] = float(np.mean(np.linalg.norm(v - c, axis=1)) / np.linalg.norm(c))
    return out


def throughput(dev, dim: int = 50, batch: int = 256, steps: int = 300) -> dict:
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((5000, dim)) + k for k in range(3)]
    path = SnapshotPath(xs, np.array([0.0, 0.5, 1.0]), np.ones(3), PathConfig(coupling="ot"), rng=rng).to(dev)
    cfg = PotentialConfig(dim=dim)
    gen = torch.Generator(device="cpu").manual_seed(0)

    def am_step(net, opt, autocast=False):
        b = path.sample(batch, rng)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            loss, _ = action_matching_loss(net, b, ObjectiveConfig(estimator="boundary"), generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def bare_step(net, opt, x, t):
        loss = net(t, x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def rate(step, *args):
        for _ in range(20):
            step(*args)
        _sync(dev)
        start = time.perf_counter()
        for _ in range(steps):
            step(*args)
        _sync(dev)
        return steps / (time.perf_counter() - start)

    out = {}
    net = PotentialNet(cfg).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    out["am_steps_per_s"] = rate(am_step, net, opt)
    out["am_bf16_steps_per_s"] = rate(am_step, net, opt, True)
    x = torch.randn(batch, dim, device=dev)
    t = torch.rand(batch, device=dev)
    out["bare_steps_per_s"] = rate(bare_step, net, opt, x, t)
    try:
        compiled = torch.compile(net)
        out["bare_compiled_steps_per_s"] = rate(bare_step, compiled, opt, x, t)
    except Exception as err:
        print(f"torch.compile failed: {err}", file=sys.stderr)
    out["am_over_bare"] = out["am_steps_per_s"] / out["bare_steps_per_s"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--skip", nargs="*", default=[], choices=["cite", "atlas", "throughput"])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    dev = resolve_device("auto")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    rows = {"device": name, "torch": torch.__version__}
    if "cite" not in args.skip:
        rows.update(cite_fold(dev))
    if "atlas" not in args.skip:
        rows.update(atlas_fit(dev, args.cells))
    if "throughput" not in args.skip:
        rows.update(throughput(dev))
    text = "\n".join(f"{k:>26}  {v:.3f}" if isinstance(v, float) else f"{k:>26}  {v}" for k, v in rows.items())
    print(text)
    if args.out:
        args.out.write_text(f"# benchmarks/gpu.py {' '.join(argv or sys.argv[1:])}\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
