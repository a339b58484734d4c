"""Units: the one place where data units and the networks' internal units meet.

The networks see standardised cells ``z = (x - shift) / scale`` (one isotropic ``scale``, so
distances and angles are kept) and a time ``u = (t - t_min) / (t_max - t_min)`` in ``[0, 1]``.
A potential ``s(u, z)`` with velocity ``dz/du = grad_z s`` then means, in data units:

- velocity ``dx/dt = grad_z s * scale / duration``,
- potential ``phi = s * scale**2 / duration`` (so that ``grad_x phi = dx/dt``),
- growth rate ``g = h / duration`` per data time unit,
- diffusion ``sigma_u = sigma * sqrt(duration) / scale``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scaling:
    """Affine map between data units and internal units.

    Parameters
    ----------
    shift
        Centre of the cells, ``(d,)``.
    scale
        Root mean per-dimension variance of the cells (one number: the map is isotropic).
    t_min, t_max
        First and last fitted time (data units).
    """

    shift: np.ndarray
    scale: float
    t_min: float
    t_max: float

    def __post_init__(self):
        object.__setattr__(self, "shift", np.asarray(self.shift, dtype=np.float64).ravel())
        for name in ("scale", "t_min", "t_max"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"Scaling.scale must be a positive number, got {self.scale}.")
        if not self.t_max > self.t_min:
            raise ValueError(f"Scaling needs t_max > t_min, got [{self.t_min}, {self.t_max}].")

    @classmethod
    def from_snapshots(cls, xs: list[np.ndarray], times: np.ndarray, chunk: int = 1 << 18) -> Scaling:
        """Centre and scale of the pooled cells (in float64, ``chunk`` rows at a time: no pooled copy);
        time range of ``times``."""
        n = sum(len(x) for x in xs)
        total = sum(x[i : i + chunk].sum(axis=0, dtype=np.float64) for x in xs for i in range(0, len(x), chunk))
        mean = total / n
        sq = sum(((x[i : i + chunk] - mean) ** 2).sum(axis=0) for x in xs for i in range(0, len(x), chunk))
        scale = float(np.sqrt(np.mean(sq / n))) or 1.0
        return cls(mean, scale, float(np.min(times)), float(np.max(times)))

    @property
    def duration(self) -> float:
        """``t_max - t_min`` in data time units."""
        return self.t_max - self.t_min

    # positions and times
    def to_internal(self, x: np.ndarray) -> np.ndarray:
        """Cells in data units -> ``z``."""
        return (np.asarray(x, dtype=np.float64) - self.shift) / self.scale

    def to_data(self, z: np.ndarray) -> np.ndarray:
        """``z`` -> cells in data units."""
        return np.asarray(z, dtype=np.float64) * self.scale + self.shift

    def time_to_internal(self, t) -> np.ndarray:
        """Data times -> ``u``."""
        return (np.asarray(t, dtype=np.float64) - self.t_min) / self.duration

    # fields
    def velocity(self, grad_s: np.ndarray) -> np.ndarray:
        """Internal velocity ``grad_z s`` -> data units per time unit."""
        return grad_s * self.scale / self.duration

    def potential(self, s: np.ndarray) -> np.ndarray:
        """Internal potential ``s`` -> ``phi`` with ``grad_x phi`` the data-unit velocity."""
        return s * self.scale**2 / self.duration

    def growth(self, h: np.ndarray) -> np.ndarray:
        """Internal growth rate (per unit ``u``) -> per data time unit."""
        return h / self.duration

    def growth_to_internal(self, rate):
        """Growth rate per data time unit -> per unit ``u``."""
        return rate * self.duration

    def sigma_to_internal(self, sigma: float) -> float:
        """Diffusion coefficient in data units -> internal units."""
        return float(sigma) * math.sqrt(self.duration) / self.scale

    # persistence
    def to_dict(self) -> dict:
        """Plain, JSON-serialisable record."""
        return {"shift": self.shift.tolist(), "scale": self.scale, "t_min": self.t_min, "t_max": self.t_max}

    @classmethod
    def from_dict(cls, data: dict) -> Scaling:
        """Inverse of :meth:`to_dict`."""
        return cls(np.asarray(data["shift"]), data["scale"], data["t_min"], data["t_max"])
