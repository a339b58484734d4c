"""Wall time of a Cite-5 held-out fold, for several versions of scam in the same run.

A fold is ``scam.tl.action_matching`` with the defaults on the Cite-5 time course (2,500 cells a day) with day 3
or day 4 left out, timed after a warm-up fit in the same process. Each version runs in its own process,
imported from its own source tree (``git worktree add /tmp/v 4d46d04`` makes one); the processes alternate in
blocks A B ... B A per seed, so a drift of the machine's speed falls on every version alike. Prints every
fold, then each version's mean and its ratio to the first version given.

    python benchmarks/fold_speed.py /tmp/v .  [--seeds 3]

The data come from ``../shared/data/cite_lightsb`` (see ``holdout.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(root: str, seed: int) -> None:
    """Time the two folds of one seed with the scam found in ``root`` (the child process)."""
    sys.path.insert(0, str(Path(root).resolve()))
    sys.path.insert(1, str(HERE))
    from holdout import load_cite

    import scam

    assert Path(scam.__file__).resolve().is_relative_to(Path(root).resolve()), scam.__file__
    data = load_cite(HERE.parent.parent / "shared" / "data" / "cite_lightsb", "cite5", 2500)
    warm = data[data.obs["day"] != 3.0].copy()
    scam.tl.action_matching(warm, "day", rng=99, config={"n_steps": 20}, progress=False)  # one-time costs
    secs = {}
    for held in (3.0, 4.0):
        fold = data[data.obs["day"] != held].copy()
        clock = time.perf_counter()
        scam.tl.action_matching(fold, "day", rng=seed, progress=False)
        secs[held] = round(time.perf_counter() - clock, 2)
    print(json.dumps({"root": root, "seed": seed, "secs": secs}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", help="source trees of the versions (the first is the baseline)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        one(args.child[0], int(args.child[1]))
        return
    if not args.roots:
        parser.error("give at least one source tree")
    times: dict[str, list[float]] = {root: [] for root in args.roots}
    for seed in range(args.seeds):
        for root in args.roots + args.roots[::-1]:
            out = subprocess.run([sys.executable, __file__, "--child", root, str(seed)], check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
            print(out, flush=True)
            times[root] += json.loads(out)["secs"].values()
    base = sum(times[args.roots[0]]) / len(times[args.roots[0]])
    print(f"{'version':40s} {'mean s':>7s} {'range':>13s} {'ratio':>6s}")
    for root, values in times.items():
        mean = sum(values) / len(values)
        print(f"{root:40s} {mean:7.2f} {min(values):6.2f}-{max(values):<6.2f} {mean / base:6.3f}")


if __name__ == "__main__":
    main()
