"""How many torch threads a fit takes: cores other jobs keep busy, read from the load average and from what runs now."""

import builtins
import io
import os

import pytest
import torch

from scam.core import _utils


def _fake_proc(monkeypatch, running: list[int]):
    """``/proc/loadavg`` readings with these runnable counts (the caller included), in turn."""
    readings = iter(running * 10)
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/loadavg":
            return io.StringIO(f"0.00 0.00 0.00 {next(readings)}/120 4242\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(_utils.time, "sleep", lambda s: None)


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_utils, "_OWN_LOAD", {"end": 0.0, "threads": 0})
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def test_a_lagging_load_average_does_not_take_a_free_core(monkeypatch, two_cores):
    """A job that ended seconds ago still weighs on the 1-minute average; nothing else runs now: both cores."""
    monkeypatch.setattr(os, "getloadavg", lambda: (1.4, 1.2, 1.1))
    _fake_proc(monkeypatch, [1, 2, 1, 1, 1, 2, 1])  # the reader itself, now and then a passing system thread
    assert _utils._running_now() == 0
    assert _utils.cpu_threads() == 2


def test_a_job_running_now_takes_a_core(monkeypatch, two_cores):
    monkeypatch.setattr(os, "getloadavg", lambda: (1.1, 1.0, 1.0))
    _fake_proc(monkeypatch, [2, 2, 3, 2, 2, 2, 2])
    assert _utils._running_now() == 1
    assert _utils.cpu_threads() == 1
    # a job that has just started and not yet raised the average is not counted against it either way:
    # the smaller of the two readings is taken
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert _utils.cpu_threads() == 2


def test_without_proc_the_load_average_decides(monkeypatch, two_cores):
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if path == "/proc/loadavg":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    assert _utils._running_now() is None
    assert _utils.cpu_threads() == 1
