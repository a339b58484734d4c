"""torch.distributed: two CPU processes on the gloo backend give the plans of one process exactly and a
model as accurate against ground truth (a W2 geodesic between Gaussians)."""

from __future__ import annotations

import os
import pickle  # results of our own child processes, written to a private temp folder

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scam.core import PathConfig, SnapshotPath, TrainConfig, fit
from scam.core.distributed import on_rank0, per_gap, rank_and_size
from scam.datasets._synthetic import gaussian_geodesic

CONFIG = {"n_steps": 600, "eval_every": 50}


def _data():
    return gaussian_geodesic(n_cells=300, times=(0.0, 0.5, 1.0), rng=0)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        tc = _data()
        assert rank_and_size() == (rank, world)
        # gap k on rank k % world, gathered everywhere
        squares = per_gap(lambda k: (k, k * k, rank), 5)
        decided = on_rank0(lambda: {"rank": rank})  # every rank gets rank 0's decision
        path = SnapshotPath([x / 2 for x in tc.xs], np.array(tc.times) / tc.times[-1], np.ones(len(tc.xs)),
                            PathConfig(coupling="ot"), rng=np.random.default_rng(0))
        model = fit(tc.xs, tc.times, config=TrainConfig.from_flat(**CONFIG), rng=0, progress=False, threads=1)
        x = np.concatenate(tc.xs)
        result = {
            "squares": squares,
            "decided": decided,
            "plans": [(p.src, p.tgt, p.cdf) for p in path.plans],
            "velocity": model.velocity(x, 0.5),
            "steps": model.info["steps"],
        }
        with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as fh:
            pickle.dump(result, fh)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    world = 2
    mp.start_processes(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world,
                       start_method="spawn", join=True)
    ranks = []
    for r in range(world):
        with open(tmp_path / f"rank{r}.pkl", "rb") as fh:
            ranks.append(pickle.load(fh))

    # per_gap: every rank holds every item; item k was computed on rank k % 2
    for res in ranks:
        assert res["squares"] == [(k, k * k, k % 2) for k in range(5)]
        assert res["decided"] == {"rank": 0}  # on_rank0: rank 1 holds what rank 0 computed

    # plans built in parallel are exactly the plans of one process
    tc = _data()
    single_path = SnapshotPath([x / 2 for x in tc.xs], np.array(tc.times) / tc.times[-1], np.ones(len(tc.xs)),
                               PathConfig(coupling="ot"), rng=np.random.default_rng(0))
    for res in ranks:
        for (src, tgt, cdf), plan in zip(res["plans"], single_path.plans):
            np.testing.assert_array_equal(src, plan.src)
            np.testing.assert_array_equal(tgt, plan.tgt)
            np.testing.assert_allclose(cdf, plan.cdf, rtol=0, atol=0)

    # every rank ends with the same weights (DDP averaged the gradients), the same early stop
    np.testing.assert_allclose(ranks[0]["velocity"], ranks[1]["velocity"], rtol=1e-6, atol=1e-6)
    assert ranks[0]["steps"] == ranks[1]["steps"]

    # and the two-process model is as accurate as one process for the same seed (other batches, same
    # total batch size): velocity error against the geodesic's exact velocity
    single = fit(tc.xs, tc.times, config=TrainConfig.from_flat(**CONFIG), rng=0, progress=False)
    x = np.concatenate(tc.xs)
    truth = tc.velocity(x, 0.5)
    scale = np.sqrt(np.mean(np.sum(truth**2, axis=1)))

    def err(v):
        return np.sqrt(np.mean(np.sum((v - truth) ** 2, axis=1))) / scale

    e1, e2 = err(single.velocity(x, 0.5)), err(ranks[0]["velocity"])
    assert e1 < 0.15 and e2 < 0.15, (e1, e2)
    assert abs(e1 - e2) < 0.05, (e1, e2)
    # and the two fields agree with each other about as well as each agrees with the truth
    assert np.sqrt(np.mean(np.sum((single.velocity(x, 0.5) - ranks[0]["velocity"]) ** 2, axis=1))) / scale < 0.15


def test_progress_bars_count_this_ranks_share(monkeypatch):
    """Under torch.distributed a rank computes items k % K == rank: its bar counts those and closes
    when they are done (it used to wait for all n and never close); one set of bars, on rank 0."""
    from scam.core import couplings

    bars = []

    class FakeBar:
        def __init__(self, total, disable, desc, leave):
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            self.closed = True

    monkeypatch.setattr(couplings, "tqdm", FakeBar)
    monkeypatch.setattr(couplings, "rank_and_size", lambda: (1, 2))
    wrapped = couplings.progress_bar(lambda k: k * 10, 5, True, "test")
    assert [wrapped(k) for k in (1, 3)] == [10, 30]  # rank 1 of 2 computes items 1 and 3 of 5
    assert bars[0].total == 2 and bars[0].closed
