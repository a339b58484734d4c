"""Past one process: :mod:`torch.distributed`, as launched by ``torchrun``.

``torchrun --nproc_per_node=K script.py`` (one process per GPU, or per group of CPU cores; several
machines: ``--nnodes``) sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``; :func:`scam.core.fit` (and so
``scam.tl.action_matching``) then

- joins the process group (NCCL on CUDA, gloo on CPU) unless the script already did,
- builds the plans of the gaps between time points in parallel, gap ``k`` on rank ``k % K``, each gap
  with its own random stream (so the plans do not depend on ``K``), and gathers them on every rank,
- makes every decision taken once for the whole fit (the path validated on inner time points,
  ``path="auto"``) on rank 0 and sends it to the others, so that no rank can decide otherwise,
- trains with :class:`torch.nn.parallel.DistributedDataParallel`: each rank draws ``batch_size / K``
  path points per step from its own stream, gradients are averaged across ranks, every rank holds
  the same weights and returns the same model.

Nothing here is scam's own cluster code: process launch, rendezvous and communication are torch's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.distributed as dist

from .._utils import logger


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher) with several workers."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the process group when launched by ``torchrun`` and return this rank's device."""
    if not launched() or not dist.is_available():
        return device
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        logger.info("scam: joined a %s process group as rank %d of %d", backend, dist.get_rank(), dist.get_world_size())
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def active() -> bool:
    """Whether a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_size() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def _in_threads(fn: Callable[[int], object], items: list[int]) -> dict:
    """``{k: fn(k)}`` computed by as many threads as torch may use (the OT solver and k-means release
    the GIL), each limited to one BLAS/OpenMP thread."""
    from threadpoolctl import threadpool_limits

    workers = min(len(items), torch.get_num_threads())
    if workers <= 1:
        return {k: fn(k) for k in items}
    # one core per thread: BLAS / OpenMP pools inside them (k-means) would otherwise oversubscribe
    with threadpool_limits(limits=1), ThreadPoolExecutor(workers) as pool:
        return dict(zip(items, pool.map(fn, items)))


def per_gap(fn: Callable[[int], object], n: int) -> list:
    """``[fn(0), ..., fn(n - 1)]``, item ``k`` computed on rank ``k % world size`` (in threads within a
    rank) and gathered on every rank (``fn`` must not depend on which rank or thread runs it, nor on
    the order: each gap draws from its own random stream)."""
    rank, size = rank_and_size()
    if size == 1:
        out = _in_threads(fn, list(range(n)))
        return [out[k] for k in range(n)]
    mine = _in_threads(fn, list(range(rank, n, size)))
    gathered: list = [None] * size
    dist.all_gather_object(gathered, mine)  # between this job's own processes, in memory
    out = {}
    for part in gathered:
        out.update(part)
    return [out[k] for k in range(n)]


def on_rank0(fn: Callable[[], object]) -> object:
    """``fn()`` computed on rank 0 and sent to every rank (``fn()`` itself outside a process group).

    For decisions taken once for the whole fit: all ranks then act on the same one, whatever their
    threads or floating-point libraries would have made of the same data."""
    rank, size = rank_and_size()
    if size == 1:
        return fn()
    box = [fn() if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)  # between this job's own processes, in memory
    return box[0]
