"""A trained Action Matching model: potential, velocity, growth, and simulation in data units.

One class of about 600 lines: its fields, integrators and persistence all work on the same networks and
units (:class:`~scam.core.scaling.Scaling`), and users reach them as methods of one object.
"""

from __future__ import annotations

import json
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torchdiffeq import odeint

from .._utils import make_rng
from ._utils import torch_generator
from .network import PotentialConfig, PotentialNet
from .scaling import Scaling

FORMAT_VERSION = 2  # 2: optional separate growth network; version 1 files load as before
_READABLE_VERSIONS = (1, 2)


def _float64(values: torch.Tensor) -> np.ndarray:
    """A (detached) tensor as a float64 numpy array on the CPU."""
    return values.cpu().numpy().astype(np.float64)

FIELD_CHUNK = 16384  # cells per network evaluation when fields are evaluated over a whole atlas


class ActionModel:
    """Learned dynamics ``dx = grad phi(t, x) dt + sigma dW`` with growth rate ``g(t, x)``.

    The growth rate is a separate network ``h(t, x)`` (scam's default for unbalanced fits), or
    ``g = lambda phi`` (the paper's unbalanced AM, ``growth_net=None`` and ``growth_weight > 0``), or
    zero (balanced).

    The networks work in internal units (:class:`~scam.core.scaling.Scaling` converts). All public
    methods take and return data units (the embedding's coordinates and the caller's time unit).

    Parameters
    ----------
    net
        Trained :class:`~scam.core.network.PotentialNet`.
    scaling
        Map between data and internal units.
    growth_weight
        ``lambda`` in internal units of the paper's unbalanced AM (``g = lambda phi``); ignored when
        ``growth_net`` is given.
    growth_net
        Separate growth-rate network ``h(t, x)`` (internal units), or None.
    info
        What the engine decided (coupling, estimator, growth evidence per gap), JSON-serialisable.
    sigma
        Diffusion coefficient in data units (0: deterministic dynamics).
    history
        Training history (dict of equal-length arrays), optional.
    """

    def __init__(
        self,
        net: PotentialNet,
        *,
        scaling: Scaling,
        growth_weight: float = 0.0,
        sigma: float = 0.0,
        history: dict[str, np.ndarray] | None = None,
        growth_net: PotentialNet | None = None,
        info: dict | None = None,
    ):
        self.net = net.eval()
        self.growth_net = None if growth_net is None else growth_net.eval()
        self.info = dict(info or {})
        if not isinstance(scaling, Scaling):
            raise TypeError(f"`scaling` must be a scam.core.Scaling, got {type(scaling).__name__}.")
        self.scaling = scaling
        self.growth_weight = float(growth_weight)
        self.sigma = float(sigma)
        self.history = history or {}
        for p in self._parameters():
            p.requires_grad_(False)

    def _parameters(self):
        yield from self.net.parameters()
        if self.growth_net is not None:
            yield from self.growth_net.parameters()

    # ------------------------------------------------------------------ units
    @property
    def dim(self) -> int:
        """Dimension of the state space."""
        return self.net.config.dim

    @property
    def shift(self) -> np.ndarray:
        """Centre of the internal coordinates (data units), ``(d,)``."""
        return self.scaling.shift

    @property
    def scale(self) -> float:
        """Isotropic scale of the internal coordinates (data units)."""
        return self.scaling.scale

    @property
    def t_min(self) -> float:
        """First fitted time."""
        return self.scaling.t_min

    @property
    def t_max(self) -> float:
        """Last fitted time."""
        return self.scaling.t_max

    @property
    def duration(self) -> float:
        """``t_max - t_min``."""
        return self.scaling.duration

    @property
    def unbalanced(self) -> bool:
        """Whether the model creates/destroys mass (a growth network, or ``growth_weight > 0``)."""
        return self.growth_net is not None or self.growth_weight > 0

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def sigma_internal(self) -> float:
        """``sigma`` in internal units."""
        return self.scaling.sigma_to_internal(self.sigma)

    def to(self, device: str | torch.device) -> ActionModel:
        """Move the networks to ``device`` (returns self)."""
        self.net.to(device)
        if self.growth_net is not None:
            self.growth_net.to(device)
        return self

    def _z(self, x) -> torch.Tensor:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"`x` must have shape (n_cells, {self.dim}), got {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise ValueError("`x` contains NaN or infinite values.")
        return torch.as_tensor(self.scaling.to_internal(x), dtype=torch.float32, device=self.device)

    def _u(self, t, n: int) -> torch.Tensor:
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n,))
        if np.any(t < self.t_min - 1e-9 * abs(self.duration)) or np.any(t > self.t_max + 1e-9 * abs(self.duration)):
            warnings.warn(
                f"Evaluating the model outside its fitted time range [{self.t_min}, {self.t_max}]: "
                "this is extrapolation.",
                stacklevel=3,
            )
        return torch.as_tensor(self.scaling.time_to_internal(t), dtype=torch.float32, device=self.device)

    def _s_grad(self, u: torch.Tensor, z: torch.Tensor):
        with torch.no_grad():
            s, g = self.net.value_and_grad(u, z)
        return s, g

    # ---------------------------------------------------------------- fields
    def potential(self, x, t) -> np.ndarray:
        """Potential ``phi(t, x)`` in data units (its gradient is the velocity).

        Parameters
        ----------
        x
            Cells, ``(n, d)``.
        t
            A time, or one time per cell.

        Returns
        -------
        ``(n,)`` array.
        """
        z = self._z(x)
        with torch.no_grad():
            s = self.net(self._u(t, len(z)), z)
        return self.scaling.potential(_float64(s))

    def velocity(self, x, t) -> np.ndarray:
        """Velocity ``grad phi(t, x)`` (data units per time unit), ``(n, d)``.

        Parameters
        ----------
        x
            Cells, ``(n, d)``.
        t
            A time, or one time per cell.

        Returns
        -------
        ``(n, d)`` array.
        """
        z = self._z(x)
        _, g = self._s_grad(self._u(t, len(z)), z)
        return self.scaling.velocity(_float64(g))

    def fields(self, x, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Potential, velocity and growth rate at the same cells in one pass: what :meth:`potential`,
        :meth:`velocity` and :meth:`growth_rate` return, with the network evaluated once (the
        potential comes with its gradient).

        Parameters
        ----------
        x
            Cells, ``(n, d)``.
        t
            A time, or one time per cell.

        Returns
        -------
        ``(potential (n,), velocity (n, d), growth rate (n,))``.
        """
        z = self._z(x)
        u = self._u(t, len(z))
        s, g = self._s_grad(u, z)
        growth = self._growth(u, z, s) if self.unbalanced else None
        return (
            self.scaling.potential(_float64(s)),
            self.scaling.velocity(_float64(g)),
            np.zeros(len(z)) if growth is None else self.scaling.growth(_float64(growth)),
        )

    def fields_chunked(self, x, t, *, rows=None, out=None, chunk: int = FIELD_CHUNK, progress: bool = False):
        """:meth:`fields` over many cells, ``chunk`` cells at a time (memory bounded by the chunk).

        Parameters
        ----------
        x
            Cells, ``(n, d)``.
        t
            One time per cell, ``(n,)``.
        rows
            Indices of the cells to evaluate (default: all); only those rows of ``x`` are read, a chunk at
            a time, so no copy of ``x`` is made.
        out
            ``(potential (n,), velocity (n, d), growth rate (n,))`` arrays to fill at ``rows`` in place
            (default: new arrays with one row per evaluated cell).
        chunk
            Cells per network evaluation.
        progress
            Show a tqdm bar (from four chunks on).

        Returns
        -------
        ``(potential, velocity, growth rate)``: ``out`` when given, else new arrays (velocity in the dtype of
        ``x`` when floating).
        """
        from tqdm import tqdm

        x = np.asarray(x)
        t = np.asarray(t, dtype=np.float64)
        rows = np.arange(len(x)) if rows is None else np.asarray(rows)
        if out is None:
            n = len(rows)
            dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
            out, rows_out = (np.empty(n), np.empty((n, x.shape[1]), dtype=dtype), np.empty(n)), np.arange(n)
        else:
            rows_out = rows
        potential, velocity, growth = out
        starts = range(0, len(rows), chunk)
        for s in tqdm(starts, disable=not progress or len(starts) < 4, desc="velocity, potential, growth", leave=False):
            src, dst = rows[s : s + chunk], rows_out[s : s + chunk]
            potential[dst], velocity[dst], growth[dst] = self.fields(x[src], t[src])
        return potential, velocity, growth

    @property
    def report(self):
        """What the fit decided and measured, typed (:class:`~scam.core.report.FitReport`, read from ``info``)."""
        from .report import FitReport

        return FitReport.from_info(self.info)

    def growth_rate(self, x, t) -> np.ndarray:
        """Growth rate ``g(t, x)`` per time unit (``d log mass / dt``); zeros for balanced models.

        Parameters
        ----------
        x
            Cells, ``(n, d)``.
        t
            A time, or one time per cell.

        Returns
        -------
        ``(n,)`` array.
        """
        if not self.unbalanced:
            return np.zeros(len(np.asarray(x)))
        z = self._z(x)
        with torch.no_grad():
            g = self._growth(self._u(t, len(z)), z)
        return self.scaling.growth(_float64(g))

    def _growth(self, u: torch.Tensor, z: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        """Growth rate per internal time unit (``s``: the potential at ``(u, z)``, if known)."""
        if self.growth_net is not None:
            with torch.no_grad():
                return self.growth_net(u, z)
        if self.growth_weight > 0:
            return self.growth_weight * (self.net(u, z) if s is None else s)
        return torch.zeros(len(z), device=z.device, dtype=z.dtype)

    # ------------------------------------------------------------ simulation
    def trajectory(
        self,
        x,
        times,
        *,
        stochastic: bool | None = None,
        n_steps: int = 100,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        batch_size: int = 8192,
        rng: int | np.random.Generator | None = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Simulate cells through a sequence of times (forward or backward).

        Parameters
        ----------
        x
            Starting cells at ``times[0]``, ``(n, d)``.
        times
            Monotone sequence of times; the first is the start.
        stochastic
            Euler-Maruyama with the model's ``sigma`` (default: when ``sigma > 0`` and going forward).
            Otherwise the ODE ``dx = grad phi dt`` is solved with an adaptive Dormand-Prince solver.
            Stochastic dynamics cannot be reversed without the score, so backward runs integrate the
            drift (with a warning when ``stochastic=True``).
        n_steps
            Euler-Maruyama steps over the whole span.
        rtol, atol
            Tolerances of the ODE solver.
        batch_size
            Cells integrated at once (memory).
        rng
            Seed or Generator for the noise.

        Returns
        -------
        positions
            ``(len(times), n, d)``.
        log_weights
            ``(len(times), n)``: ``int g dt`` along each path (zeros for balanced models).
        """
        times = np.asarray(times, dtype=np.float64).ravel()
        if len(times) < 2:
            raise ValueError("`times` needs at least a start and an end.")
        diffs = np.diff(times)
        if not (np.all(diffs >= 0) or np.all(diffs <= 0)):
            raise ValueError("`times` must be monotone (all increasing or all decreasing).")
        backward = times[-1] < times[0]
        if stochastic is None:
            stochastic = self.sigma > 0 and not backward
        if stochastic and backward:
            warnings.warn(
                "Stochastic dynamics cannot be run backward in time without the score; "
                "integrating the drift only.",
                stacklevel=2,
            )
            stochastic = False
        z_all = self._z(x)
        u = torch.as_tensor(self.scaling.time_to_internal(times), dtype=torch.float32, device=self.device)
        self._u(times, len(times))  # range warning
        gen = torch_generator(make_rng(rng)) if stochastic else None
        out_z, out_w = [], []
        for start in range(0, len(z_all), batch_size):
            z0 = z_all[start : start + batch_size]
            if stochastic:
                zs, lw = self._euler_maruyama(z0, u, n_steps, gen)
            else:
                zs, lw = self._ode(z0, u, rtol, atol)
            out_z.append(zs.cpu())
            out_w.append(lw.cpu())
        z = torch.cat(out_z, dim=1).numpy().astype(np.float64)
        logw = torch.cat(out_w, dim=1).numpy().astype(np.float64)
        return self.scaling.to_data(z), logw

    def _ode(self, z0, u, rtol, atol):
        d = z0.shape[1]

        def func(t, state):
            tt = t.expand(state.shape[0])
            s, g = self._s_grad(tt, state[:, :d])
            return torch.cat([g, self._growth(tt, state[:, :d], s)[:, None]], dim=1)

        y0 = torch.cat([z0, torch.zeros(len(z0), 1, device=z0.device)], dim=1)
        if torch.all(u == u[0]):
            ys = y0.expand(len(u), *y0.shape)
        else:
            with torch.no_grad():
                ys = odeint(func, y0, u, rtol=rtol, atol=atol, method="dopri5")
        return ys[..., :d], ys[..., d]

    def _euler_maruyama(self, z0, u, n_steps, gen):
        sig = self.sigma_internal
        span = float(abs(u[-1] - u[0]))
        zs, lws = [z0], [torch.zeros(len(z0), device=z0.device)]
        z, lw = z0, lws[0]
        for a, b in zip(u[:-1], u[1:]):
            steps = max(1, int(np.ceil(n_steps * float(abs(b - a)) / max(span, 1e-12))))
            grid = torch.linspace(float(a), float(b), steps + 1, device=z0.device)
            for t0, t1 in zip(grid[:-1], grid[1:]):
                dt = float(t1 - t0)
                s, g = self._s_grad(t0.expand(len(z)), z)
                noise = torch.randn(z.shape, generator=gen).to(z)
                lw = lw + self._growth(t0.expand(len(z)), z, s) * dt
                z = z + g * dt + sig * np.sqrt(abs(dt)) * noise
            zs.append(z)
            lws.append(lw)
        return torch.stack(zs), torch.stack(lws)

    def push(
        self,
        x,
        t_start: float,
        t_end: float,
        *,
        return_weights: bool = False,
        stochastic: bool | None = None,
        n_steps: int = 100,
        rng: int | np.random.Generator | None = 0,
    ):
        """Move cells observed at ``t_start`` to ``t_end`` (forward or backward in time).

        Parameters
        ----------
        x
            Cells, ``(n, d)``.
        t_start, t_end
            Start and end time (data units).
        return_weights
            Also return the cells' normalised weights at ``t_end`` (``exp(int g dt)``, summing to 1):
            how much of the population at ``t_end`` descends from (or, backward, is ancestral to) each cell.
        stochastic, n_steps, rng
            See :meth:`trajectory`.

        Returns
        -------
        positions
            ``(n, d)``.
        weights
            ``(n,)``, only with ``return_weights=True``.
        """
        pos, logw = self.trajectory(
            x, [t_start, t_end], stochastic=stochastic, n_steps=n_steps, rng=rng
        )
        if not return_weights:
            return pos[-1]
        lw = logw[-1] - logw[-1].max()
        w = np.exp(lw)
        return pos[-1], w / w.sum()

    # ----------------------------------------------------------- persistence
    def metadata(self) -> dict:
        """Everything but the weights, JSON-serialisable."""
        return {
            "format_version": FORMAT_VERSION,
            "network": self.net.config.to_dict(),
            **self.scaling.to_dict(),
            "growth_weight": self.growth_weight,
            "growth_network": None if self.growth_net is None else self.growth_net.config.to_dict(),
            "sigma": self.sigma,
            "info": self.info,
        }

    def to_dict(self) -> dict:
        """``{"config": json string, "weights": {name: array}}``: plain data (fits in ``AnnData.uns``),
        plus ``"growth_weights"`` when the model has a growth network."""
        out = {"config": json.dumps(self.metadata()), "weights": _state(self.net)}
        if self.growth_net is not None:
            out["growth_weights"] = _state(self.growth_net)
        return out

    @classmethod
    def from_dict(cls, data: dict, *, device: str | torch.device = "cpu") -> ActionModel:
        """Rebuild a model from :meth:`to_dict` output (no pickle involved).

        Parameters
        ----------
        data
            Output of :meth:`to_dict`.
        device
            Where to put the network.

        Returns
        -------
        ActionModel
        """
        try:
            meta = data["config"]
            meta = json.loads(meta if isinstance(meta, str) else str(meta))
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(
                f"The stored model is damaged (its config cannot be read: {err}); refit with "
                "`scam.tl.action_matching` (or `scam.core.fit`)."
            ) from None
        if not isinstance(meta, dict) or meta.get("format_version") not in _READABLE_VERSIONS:
            version = meta.get("format_version") if isinstance(meta, dict) else None
            raise ValueError(
                f"Unsupported model format {version!r} (this scam reads {list(_READABLE_VERSIONS)}); refit with "
                "`scam.tl.action_matching`, or read it with the scam version that wrote it."
            )
        net = _network(meta.get("network"), data.get("weights"), device)
        growth_net = None
        if meta.get("growth_network") is not None:
            growth_net = _network(meta["growth_network"], data.get("growth_weights"), device)
        return cls(
            net,
            growth_net=growth_net,
            info=meta.get("info"),
            scaling=_scaling(meta),
            growth_weight=meta["growth_weight"],
            sigma=meta["sigma"],
        )

    def save(self, path: str | Path) -> None:
        """Write config + weights to an ``.npz``-format file at exactly ``path`` (plain arrays, loadable
        without pickle; no suffix is added).

        Parameters
        ----------
        path
            Destination file.
        """
        d = self.to_dict()
        arrays = {f"{group}/{k}": v for group in ("weights", "growth_weights") for k, v in d.get(group, {}).items()}
        with open(path, "wb") as fh:  # a file handle: numpy would append '.npz' to a path without it
            np.savez(fh, config=np.array(d["config"]), **arrays)

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> ActionModel:
        """Read a model written by :meth:`save` (``allow_pickle=False``).

        Parameters
        ----------
        path
            File written by :meth:`save`.
        device
            Where to put the network.

        Returns
        -------
        ActionModel
        """
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {"config": str(f["config"])}
                for group in ("weights", "growth_weights"):
                    prefix = f"{group}/"
                    data[group] = {k[len(prefix) :]: f[k] for k in f.files if k.startswith(prefix)}
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
            raise ValueError(
                f"{str(path)!r} is not a readable scam model (damaged or not written by `ActionModel.save`: {err}); "
                "refit, or save the model again."
            ) from None
        return cls.from_dict(data, device=device)

    def __repr__(self) -> str:
        kind = "balanced"
        if self.growth_net is not None:
            kind = "unbalanced (growth network)"
        elif self.growth_weight > 0:
            kind = f"unbalanced (g = {self.growth_weight:g} s)"
        if self.sigma > 0:
            kind += f", entropic (sigma={self.sigma:g})"
        return f"ActionModel(dim={self.dim}, t=[{self.t_min:g}, {self.t_max:g}], {kind})"


def _state(net: PotentialNet) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


def _scaling(meta: dict) -> Scaling:
    try:
        return Scaling.from_dict(meta)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"The stored model is damaged (its scaling cannot be read: {err}); refit with `scam.tl.action_matching`."
        ) from None


def _network(config: dict, weights, device) -> PotentialNet:
    """A network from its config and weight arrays; damaged records raise a ``ValueError``."""
    damaged = "The stored model is damaged ({}); refit with `scam.tl.action_matching` (or `scam.core.fit`)."
    try:
        if not isinstance(config, dict) or weights is None:
            raise ValueError("network config or weights missing")
        net = PotentialNet(PotentialConfig(**config))
        state = {}
        for name, value in dict(weights).items():
            arr = np.asarray(value)
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"weight {name!r} is not an array of numbers")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"weight {name!r} holds NaN or infinite values")
            state[name] = torch.as_tensor(arr)
        net.load_state_dict(state)
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise ValueError(damaged.format(err)) from None
    return net.to(device)
