"""Torch CPU threads of a fit, on a quiet machine and beside another job (oversubscription).

A default balanced fit of the reference 2-D geodesic of ``ground_truth.py`` (1500 cells per end, 2000 steps) is timed
with torch intra-op threads 1 and 2 (``scam.core.fit(..., threads=...)``), first alone, then while a
second process runs the same fit with 2 threads (the "loaded" case: a notebook beside a test suite,
two users on one node). Wall time and the CPU time of the timed process are reported, as ratios to
the quiet 2-thread run measured in the same invocation.

    python benchmarks/threads.py          # ~3 min on 2 CPU cores
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

LOAD = """
import numpy as np, torch
from scam.core import TrainConfig, fit
r = np.random.default_rng(0)
xs = [r.normal(size=(1500, 2)), r.normal(size=(1500, 2)) + 2]
while True:
    fit(xs, [0.0, 1.0], config=TrainConfig.from_flat(n_steps=2000), rng=0, progress=False, threads=2)
"""


def problem():
    gen = np.random.default_rng(1)
    m1 = np.array([2.0, -1.0])
    root = np.linalg.cholesky(np.array([[2.0, 0.6], [0.6, 0.5]]))
    return [gen.normal(size=(1500, 2)), m1 + gen.normal(size=(1500, 2)) @ root.T]


def timed(threads: int) -> tuple[float, float]:
    from scam.core import TrainConfig, fit

    xs = problem()
    wall, cpu = time.perf_counter(), time.process_time()
    config = TrainConfig.from_flat(n_steps=2000, patience=10**6)
    fit(xs, [0.0, 1.0], config=config, rng=0, progress=False, threads=threads)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    rows = []
    for label in ("quiet", "loaded"):
        load = None
        if label == "loaded":
            load = subprocess.Popen([sys.executable, "-c", LOAD])
            time.sleep(5)  # let the competing fit start
        try:
            for threads in (1, 2):
                wall, cpu = timed(threads)
                rows.append((label, threads, wall, cpu))
                print(f"  {label}, {threads} thread(s): {wall:.1f} s wall, {cpu:.1f} s CPU",
                      file=sys.stderr, flush=True)
        finally:
            if load is not None:
                load.kill()
                load.wait()
    ref = next(r for r in rows if r[0] == "quiet" and r[1] == 2)
    print("\n| machine | torch threads | wall s | CPU s | wall / quiet 2 threads | CPU / quiet 2 threads |")
    print("|---|---|---|---|---|---|")
    for label, threads, wall, cpu in rows:
        print(f"| {label} | {threads} | {wall:.1f} | {cpu:.1f} | {wall / ref[2]:.2f} | {cpu / ref[3]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
