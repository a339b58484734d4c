"""Training loop: snapshots in, :class:`~scam.core.model.ActionModel` out."""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm  # plain bars: no ipywidgets needed in notebooks

from ._utils import check_types, cpu_threads, logger, make_rng, resolve_device, torch_generator, torch_threads
from .losses import ESTIMATORS, action_matching_loss
from .model import ActionModel
from .network import PotentialConfig, PotentialNet
from .paths import COUPLINGS, SnapshotPath

GROWTH_MODELS = ("separate", "potential")
GROWTH_HIDDEN, GROWTH_LAYERS = 64, 2  # the growth network: smaller than the potential (a smooth rate)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and path settings of :func:`fit`.

    Parameters
    ----------
    n_steps
        Maximum number of optimiser steps. Default 2000: with the ``"pathwise"`` estimator this is as
        accurate as 4000 on held-out days in 2-5 dimensions (Cite-5, LARRY) in half the time; the
        ``"boundary"`` estimator (entropic AM) is noisier and gains from 4000, as do embeddings with
        many dimensions (Cite, 50 PCs: 1.033x vs 1.022x the OT-interpolation W1; ``benchmarks/README.md``).
    batch_size
        Path samples per step (times are stratified over ``[t_0, t_K]``).
    lr, weight_decay
        AdamW learning rate and weight decay.
    warmup
        Linear learning-rate warm-up steps (then cosine decay to ``lr / 10``).
    ema_decay
        Exponential moving average of the weights (the EMA weights are returned).
    grad_clip
        Maximum gradient norm.
    eval_every, patience
        Every ``eval_every`` steps the EMA model is scored on a fixed validation batch; training
        stops after ``patience`` evaluations without improvement and the best weights are kept.
    coupling
        ``"auto"``: for unbalanced models with a separate growth network (the default) and no per-cell
        prior, ``"weighted"``: exact OT between source cells weighted by the growth the data show
        (:mod:`scam.core.growth`: mass that an unbalanced plan destroys beyond what a pure-transport
        null does; none: pure transport) and the target cells, each pair growing at a constant rate.
        For the paper's single potential (``growth_model="potential"``), exact unbalanced OT
        (``"uot"``) with equal total masses. With a per-cell growth prior, or unequal masses under
        ``"potential"``, exact OT with the prior's weights / geometric pair masses.
        Sinkhorn with the Schrödinger-bridge regularisation when
        ``sigma > 0`` (or exact OT when that regularisation is below 2% of the mean squared distance,
        where the two plans nearly agree and Sinkhorn would take minutes per pair).
        Or one of ``"ot"``, ``"uot"`` (exact OT with a total-variation marginal penalty: cells that
        would have to move further than ``uot_threshold`` allows die at the source and appear at the
        target along the Fisher-Rao profile ``(1 - tau)^2`` / ``tau^2``), ``"sinkhorn"``,
        ``"unbalanced"`` (entropic unbalanced OT, KL penalty ``reg_m``: slower, and the path's total
        mass sags inside each gap), ``"independent"``. With unequal masses the balanced plans
        interpolate each pair's mass geometrically, so the path's total mass follows the given
        masses; the unbalanced objective then decides how much of the change is growth.
    sigma
        Diffusion coefficient in data units; ``> 0`` trains entropic AM.
    growth_weight
        ``> 0`` trains an unbalanced model. With ``growth_model="separate"``: the weight of the growth
        network's objective (it does not change what either network converges to). With
        ``"potential"``: ``lambda`` (internal units) of the paper's growth rate ``lambda s``.
    growth_model
        ``"separate"`` (default): velocity ``grad s`` and growth rate ``h`` are two networks, so cells
        can move without growing; growth is read off the path's mass changes
        (:mod:`scam.core.losses`). ``"potential"``: the paper's unbalanced AM, one potential for both
        (``g = lambda s``): it turns motion into growth on pure transport (ground-truth table in
        ``benchmarks/README.md``); kept as an option.
    """

    n_steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    eval_every: int = 100
    patience: int = 10
    coupling: str = "auto"
    sigma: float = 0.0
    growth_weight: float = 0.0
    ot_reg: float = 0.01
    reg_m: float = 1.0
    uot_threshold: float = 3.0
    max_plan_size: int = 6_500_000
    n_probes: int = 1
    estimator: str = "auto"
    growth_model: str = "separate"

    def __post_init__(self):
        check_types(
            self, ints=("n_steps", "batch_size", "eval_every", "patience", "n_probes", "max_plan_size", "warmup"),
            numbers=("lr", "weight_decay", "ema_decay", "grad_clip", "sigma", "growth_weight", "ot_reg", "reg_m",
                     "uot_threshold"),
            strings=("coupling", "estimator", "growth_model"),
        )
        for name in ("n_steps", "batch_size", "eval_every", "patience", "n_probes", "max_plan_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("lr", "ot_reg", "reg_m", "uot_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)}.")
        for name in ("weight_decay", "warmup", "grad_clip", "sigma", "growth_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}.")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}.")
        if self.estimator != "auto" and self.estimator not in ESTIMATORS:
            raise ValueError(
                f"Unknown estimator {self.estimator!r}; choose 'auto' or one of {ESTIMATORS}."
            )
        if self.estimator == "pathwise" and self.sigma > 0:
            raise ValueError(
                "estimator='pathwise' needs a deterministic path (sigma = 0); use 'boundary' or 'auto' "
                "for entropic AM."
            )
        if self.growth_model not in GROWTH_MODELS:
            raise ValueError(
                f"Unknown growth_model {self.growth_model!r}; choose one of {GROWTH_MODELS}."
            )
        if self.coupling != "auto" and self.coupling not in COUPLINGS:
            raise ValueError(
                f"Unknown coupling {self.coupling!r}; choose 'auto' or one of {COUPLINGS}."
            )

    def to_dict(self) -> dict:
        """Plain dictionary."""
        return asdict(self)

    def resolved_coupling(self, *, prior: bool = False, equal_masses: bool = True) -> str:
        """The coupling ``"auto"`` stands for.

        ``prior``: a per-cell growth prior is given; ``equal_masses``: all snapshots have the same
        total mass.
        """
        if self.coupling != "auto":
            return self.coupling
        if self.sigma > 0:
            return "sinkhorn"
        if self.growth_weight == 0 or prior:
            return "ot"
        if self.growth_model == "separate":
            return "weighted"
        return "uot" if equal_masses else "ot"

    def resolved_estimator(self) -> str:
        """The loss estimator ``"auto"`` stands for."""
        if self.estimator != "auto":
            return self.estimator
        return "boundary" if self.sigma > 0 else "pathwise"


def validate_snapshots(xs, times, masses=None):
    """Check snapshots before any work; return float arrays sorted by time.

    Raises
    ------
    ValueError
        With a message naming the problem and the fix.
    """
    if len(xs) != len(times):
        raise ValueError(f"Got {len(xs)} snapshots but {len(times)} times; pass one time per snapshot.")
    if len(xs) < 2:
        raise ValueError(
            f"Action Matching needs at least two time points, got {len(xs)}; "
            "a single snapshot carries no information about dynamics."
        )
    times = np.asarray(times, dtype=np.float64)
    if not np.all(np.isfinite(times)):
        raise ValueError("Times must be finite numbers.")
    if len(np.unique(times)) != len(times):
        raise ValueError(f"Times must be distinct, got {times.tolist()}; merge snapshots of equal time.")
    arrays = []
    dim = None
    for t, x in zip(times, xs):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"The snapshot at time {t:g} must be a 2-D array (cells x dims), got shape {x.shape}.")
        if x.shape[0] < 2:
            raise ValueError(
                f"The snapshot at time {t:g} has {x.shape[0]} cell(s); every time point needs at least 2. "
                "Drop or merge that time point."
            )
        if dim is None:
            dim = x.shape[1]
        elif x.shape[1] != dim:
            raise ValueError(
                f"Mismatched dimensions: the snapshot at time {t:g} has {x.shape[1]} dims, earlier ones {dim}."
            )
        if not np.all(np.isfinite(x)):
            raise ValueError(f"The snapshot at time {t:g} contains NaN or infinite values; remove or impute them.")
        arrays.append(x)
    order = np.argsort(times)
    arrays = [arrays[i] for i in order]
    times = times[order]
    if masses is not None:
        masses = np.asarray(masses, dtype=np.float64)
        if masses.shape != (len(xs),):
            raise ValueError(f"`masses` must have one value per time point ({len(xs)}), got shape {masses.shape}.")
        if not np.all(np.isfinite(masses)) or np.any(masses <= 0):
            raise ValueError("`masses` must be positive and finite.")
        masses = masses[order] / masses[order][0]
    return arrays, times, masses


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def fit(
    xs: list[np.ndarray],
    times,
    *,
    masses=None,
    log_growth: list[np.ndarray] | None = None,
    network: PotentialConfig | None = None,
    config: TrainConfig | None = None,
    rng: int | np.random.Generator | None = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    threads: int | str | None = "auto",
) -> ActionModel:
    """Learn an Action Matching model from time-labelled snapshots.

    Parameters
    ----------
    xs
        One ``(n_k, d)`` array of cells per time point.
    times
        The time of each snapshot (any order, any unit; need not be evenly spaced).
    masses
        Relative population size at each time point (unbalanced models only; default: all equal).
    log_growth
        Optional prior log growth rate of every cell (per time unit of ``times``), one array per
        snapshot in the order of ``xs``: source cells are weighted by ``exp(g dt)`` in the couplings,
        so the path's mass shifts towards proliferating cells (requires ``growth_weight > 0``).
    network
        Architecture; default ``PotentialConfig(dim=d)``.
    config
        Training settings; default ``TrainConfig()``.
    rng
        Seed or numpy Generator: the only source of randomness (network init, couplings, batches).
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, or a torch device.
    progress
        Show a tqdm progress bar.
    threads
        torch CPU threads for the duration of the fit (restored afterwards). ``"auto"``: torch's own
        setting on a quiet machine, fewer when other jobs keep the cores busy (cores minus the 1-minute
        load average, at least 1): with 2 threads beside another 2-thread job a fit took 30x its quiet
        wall time (15x the CPU time: OpenMP threads spinning for cores they do not get), with 1 thread
        2x (``benchmarks/threads.py``). ``None`` leaves torch's setting; an integer sets it.

    Returns
    -------
    ActionModel
        With ``history`` holding ``step``, ``loss`` (mean training loss since the last evaluation)
        and ``val_loss`` (EMA weights, fixed validation batch).
    """
    if threads == "auto":
        threads = None if resolve_device(device).type == "cuda" else cpu_threads()
    elif threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise ValueError(f"`threads` must be 'auto', None or a whole number >= 1, got {threads!r}.")
    with torch_threads(threads):
        return _fit(xs, times, masses=masses, log_growth=log_growth, network=network, config=config, rng=rng,
                    device=device, progress=progress)


def _fit(xs, times, *, masses, log_growth, network, config, rng, device, progress) -> ActionModel:
    config = config or TrainConfig()
    if log_growth is not None:
        if config.growth_weight == 0:
            raise ValueError("`log_growth` needs an unbalanced model: set TrainConfig(growth_weight=...) > 0.")
        if len(log_growth) != len(xs) or any(np.shape(g) != (len(x),) for g, x in zip(log_growth, xs)):
            raise ValueError("`log_growth` needs one rate per cell: one (n_k,) array per snapshot.")
        if not all(np.all(np.isfinite(g)) for g in log_growth):
            raise ValueError("`log_growth` contains NaN or infinite values.")
        order = np.argsort(np.asarray(times, dtype=float))
        log_growth = [np.asarray(log_growth[i], dtype=float) for i in order]
    xs, times, masses = validate_snapshots(xs, times, masses)
    if masses is None:
        masses = np.ones(len(xs))
    elif config.growth_weight == 0 and not np.allclose(masses, 1.0):
        raise ValueError(
            "Relative masses differ between time points but growth_weight is 0 (a balanced model "
            "conserves mass); set TrainConfig(growth_weight=...) > 0 or drop `masses`."
        )
    coupling = config.resolved_coupling(prior=log_growth is not None, equal_masses=np.allclose(masses, masses[0]))
    if coupling in ("uot", "unbalanced", "weighted") and config.growth_weight == 0:
        raise ValueError(
            f"coupling={config.coupling!r} creates and destroys mass but growth_weight is 0 (a balanced "
            "model conserves mass); set TrainConfig(growth_weight=...) > 0 or use coupling='ot'."
        )
    dim = xs[0].shape[1]
    network = network or PotentialConfig(dim=dim)
    if network.dim != dim:
        raise ValueError(f"PotentialConfig.dim={network.dim} but the data have {dim} dimensions.")
    rng = make_rng(rng)
    dev = resolve_device(device)

    pooled = np.concatenate(xs)
    shift = pooled.mean(axis=0)
    scale = float(np.sqrt(pooled.var(axis=0).mean())) or 1.0
    t_min, t_max = float(times[0]), float(times[-1])
    duration = t_max - t_min
    zs = [(x - shift) / scale for x in xs]
    u = (times - t_min) / duration
    sigma_u = config.sigma * math.sqrt(duration) / scale

    logger.info("scam: building %s couplings between %d time points", coupling, len(xs))
    path = SnapshotPath(
        zs, u, masses, coupling=coupling, sigma=sigma_u, ot_reg=config.ot_reg, reg_m=config.reg_m,
        max_plan_size=config.max_plan_size, uot_threshold=config.uot_threshold, rng=rng,
        log_growth=None if log_growth is None else [g * duration for g in log_growth],
    ).to(dev)

    separate = config.growth_weight > 0 and config.growth_model == "separate"
    growth_cfg = None
    if separate and path.changes_mass:
        growth_cfg = PotentialConfig(
            dim=dim, hidden=GROWTH_HIDDEN, n_layers=GROWTH_LAYERS, n_frequencies=network.n_frequencies,
            activation=network.activation,
        )
    elif separate:
        logger.info("scam: the data show no growth (pure transport between equal masses): growth rate 0")

    tgen = torch_generator(rng)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(0, 2**62)))
        modules = {"potential": PotentialNet(network)}
        if growth_cfg is not None:
            modules["growth"] = PotentialNet(growth_cfg)
    net = torch.nn.ModuleDict(modules)
    net.to(dev)
    ema = copy.deepcopy(net)
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: _lr_factor(step, config.warmup, config.n_steps)
    )
    loss_kw = dict(
        sigma=sigma_u, growth_weight=0.0 if separate and growth_cfg is None else config.growth_weight,
        n_probes=config.n_probes, estimator=config.resolved_estimator(),
    )

    def loss_fn(nets, batch, generator):
        return action_matching_loss(
            nets["potential"], batch, generator=generator, growth_net=nets["growth"] if "growth" in nets else None,
            **loss_kw,
        )

    val_rng = np.random.default_rng(rng.integers(0, 2**62))
    val_batch = path.sample(4 * config.batch_size, val_rng)
    val_gen = torch_generator(val_rng)
    val_state = val_gen.get_state()

    def evaluate() -> float:
        val_gen.set_state(val_state)
        loss, _ = loss_fn(ema, val_batch, val_gen)
        return float(loss.detach())

    hist_step, hist_loss, hist_val = [], [], []
    best, best_state, bad = math.inf, copy.deepcopy(ema.state_dict()), 0
    running, n_running = 0.0, 0
    bar = tqdm(range(config.n_steps), disable=not progress, desc="action matching", leave=False)
    for step in bar:
        batch = path.sample(config.batch_size, rng)
        loss, _ = loss_fn(net, batch, tgen)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"The loss became {float(loss)} at step {step}; lower the learning rate "
                "or the growth weight."
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.mul_(decay).add_(p.detach(), alpha=1 - decay)
        running += float(loss.detach())
        n_running += 1
        if (step + 1) % config.eval_every == 0 or step + 1 == config.n_steps:
            val = evaluate()
            hist_step.append(step + 1)
            hist_loss.append(running / n_running)
            hist_val.append(val)
            running, n_running = 0.0, 0
            bar.set_postfix(val=f"{val:.4g}")
            if val < best:
                best, best_state, bad = val, copy.deepcopy(ema.state_dict()), 0
            else:
                bad += 1
                if bad >= config.patience:
                    logger.info("scam: stopping at step %d (no improvement for %d evaluations)", step + 1, bad)
                    break
    bar.close()
    ema.load_state_dict(best_state)
    history = {
        "step": np.asarray(hist_step),
        "loss": np.asarray(hist_loss),
        "val_loss": np.asarray(hist_val),
    }
    info = {
        "coupling": coupling,
        "estimator": loss_kw["estimator"],
        "growth": "none" if config.growth_weight == 0 else (
            "potential" if not separate else ("network" if growth_cfg is not None else "none (no evidence)")),
        "growth_evidence": None if path.growth is None else [g.to_dict() for g in path.growth],
    }
    return ActionModel(
        ema["potential"], shift=shift, scale=scale, t_min=t_min, t_max=t_max,
        growth_weight=0.0 if separate else config.growth_weight, sigma=config.sigma, history=history,
        growth_net=ema["growth"] if growth_cfg is not None else None, info=info,
    )
