"""Torch helpers of the engine: generators, devices, CPU threads (package-wide helpers: :mod:`scam._utils`)."""

from __future__ import annotations

import contextlib
import math
import os
import time

import numpy as np
import torch

from .._utils import logger


def torch_generator(rng: np.random.Generator, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch Generator seeded from a numpy Generator (no global seeding)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(rng.integers(0, 2**62)))
    return gen


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; logs the choice."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available; use device='auto' or 'cpu'."
            )
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        logger.info("scam: using device %s (%s)", dev, name)
    else:
        logger.info("scam: using device %s", dev)
    return dev


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Set torch's intra-op CPU threads to ``n`` inside the block and restore them after (``None``: no change)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
        _OWN_LOAD.update(end=time.monotonic(), threads=int(n))


_OWN_LOAD = {"end": 0.0, "threads": 0}  # this process's last fit: it still weighs on the load average


def cpu_threads() -> int:
    """torch's CPU threads, reduced by the cores other jobs keep busy.

    Busy cores are the 1-minute load average, less what this process's own previous fit left in it (the
    average decays with a 60 s time constant), and on Linux at most the threads runnable right now besides
    this one (:func:`_running_now`): the average lags a minute behind jobs that have ended, or work this
    process did outside a fit, and would otherwise take a free core for a busy one.
    """
    n = torch.get_num_threads()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return n
    own = _OWN_LOAD["threads"] * math.exp(-(time.monotonic() - _OWN_LOAD["end"]) / 60.0)
    busy = int(round(max(0.0, load - own)))
    now = _running_now() if busy > 0 else None  # read only when the average says a core is busy
    if now is not None:
        busy = min(busy, now)
    free = max(1, (os.cpu_count() or n) - busy)
    if free < n:
        logger.info("scam: %d of %d cores busy with other jobs: training with %d torch thread(s)", busy,
                    os.cpu_count() or n, free)
    return min(n, free)


def _running_now(readings: int = 7, pause: float = 0.005) -> int | None:
    """Threads runnable on the machine right now besides the caller: the median of a few readings of the
    fourth field of Linux's ``/proc/loadavg`` (runnable/total), less one; None where it cannot be read."""
    counts = []
    try:
        for i in range(readings):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
            if i + 1 < readings:
                time.sleep(pause)
    except (OSError, ValueError, IndexError):
        return None
    return max(0, int(np.median(counts)) - 1)
