"""Fit scam under torchrun: one process per GPU (or per group of CPU cores).

    torchrun --nproc_per_node=2 examples/torchrun_fit.py            # 2 processes, gloo on CPU / NCCL on GPUs
    torchrun --nproc_per_node=2 examples/torchrun_fit.py --cells 200000

Every rank runs the same script on the same AnnData; scam joins the process group itself, builds the
plans of the gaps in parallel, trains with DistributedDataParallel and returns the same model on every
rank. Rank 0 writes the result.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import scam


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=5000)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default="torchrun_fit.h5ad")
    args = p.parse_args()
    adata = scam.datasets.simulate("branching", n_cells=args.cells // 5, rng=0)
    scam.tl.action_matching(adata, "time", use_rep="X_pca", config={"n_steps": args.steps}, rng=0, progress=False)
    rank = int(os.environ.get("RANK", "0"))
    v = adata.obsm["action_matching_velocity"]
    print(f"rank {rank}: {adata.uns['action_matching']['params']['device']}, "
          f"mean |v| = {np.nanmean(np.linalg.norm(v, axis=1)):.6f}", flush=True)
    if rank == 0:
        adata.write_h5ad(args.out)


if __name__ == "__main__":
    main()
