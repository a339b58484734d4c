"""Private helpers of the whole package (every room may import them): logging, randomness, settings checks.

Logging: every module logs to the standard ``"scam"`` logger; its records are passed on to scanpy's
logger, so ``sc.settings.verbosity`` (and ``sc.settings.logfile``) govern them as they do scanpy's own
messages ("info" shows scam's per-phase lines, the default "warning" hides them).
"""

from __future__ import annotations

import logging

import numpy as np


class _ToScanpy(logging.Handler):
    """Pass records to scanpy's logging (its level, set by ``sc.settings.verbosity``, decides)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from scanpy import logging as logg
        except ImportError:  # scanpy is a dependency; without it, fall back to the standard handlers
            logging.getLogger().handle(record)
            return
        level = record.levelno
        send = logg.error if level >= logging.ERROR else logg.warning if level >= logging.WARNING else (
            logg.info if level >= logging.INFO else logg.debug)
        send(record.getMessage())


logger = logging.getLogger("scam")
if not any(isinstance(h, _ToScanpy) for h in logger.handlers):
    logger.addHandler(_ToScanpy())
    logger.setLevel(logging.DEBUG)  # scanpy's verbosity filters
    logger.propagate = False


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes :func:`warnings.warn`, called where this is called, point at the
    first frame outside the scam package (the user's line, however deep the call inside scam)."""
    import sys
    from pathlib import Path

    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def make_rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    """Turn a seed, a Generator or ``None`` into a :class:`numpy.random.Generator`."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"`rng` must be an int seed, a numpy Generator or None, got {type(rng).__name__}.")


_SIDE_KEY = 2**32 - 1  # spawn-key entry of side streams (children spawned by Generator.spawn count from 0)


def side_stream(rng: np.random.Generator, name: int) -> np.random.Generator:
    """An independent generator derived from ``rng``'s seed without drawing from or spawning it.

    A step that is added to a computation (a decision made before the rest) then leaves every other
    random stream of the computation, and so its results, as they were. ``name`` tells apart the side
    streams of one generator.
    """
    seq = getattr(rng.bit_generator, "seed_seq", None)
    if not isinstance(seq, np.random.SeedSequence):
        raise TypeError("`rng` needs a seed sequence (a Generator made by numpy.random.default_rng from a seed "
                        "or a SeedSequence); pass an int seed instead.")
    child = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, _SIDE_KEY, int(name)),
                                   pool_size=seq.pool_size)
    return np.random.Generator(type(rng.bit_generator)(child))


def check_types(obj, *, ints=(), numbers=(), strings=()) -> None:
    """Type checks of a settings dataclass, before its range checks: a clear ``TypeError`` naming the
    field (``'50'`` for a number, ``2.5`` for a count)."""
    name = type(obj).__name__
    for field in ints:
        value = getattr(obj, field)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}.{field} must be a whole number, got {value!r}.")
    for field in numbers:
        value = getattr(obj, field)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name}.{field} must be a number, got {value!r}.")
        if not np.isfinite(value):
            raise ValueError(f"{name}.{field} must be finite, got {value!r}.")
    for field in strings:
        value = getattr(obj, field)
        if not isinstance(value, str):
            raise TypeError(f"{name}.{field} must be a string, got {value!r}.")
