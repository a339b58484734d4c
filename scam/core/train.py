"""Training loop: snapshots in, :class:`~scam.core.model.ActionModel` out.

The fit's steps in order (checks, units, the path decision and couplings, networks, the optimisation loop
with its schedule, EMA and early stopping, the report); its settings live in :mod:`scam.core.config`.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm  # plain bars: no ipywidgets needed in notebooks

from .._utils import caller_stacklevel, logger, make_rng
from . import backprop, distributed
from ._utils import cpu_threads, resolve_device, torch_generator, torch_threads
from .config import OptimConfig, TrainConfig
from .growth_plans import gap_evidence
from .losses import ObjectiveConfig, action_matching_loss
from .model import ActionModel
from .network import PotentialConfig, PotentialNet
from .noise import snapshot_moments
from .path_choice import resolve_path
from .paths import SnapshotPath
from .report import FitReport
from .scaling import Scaling

GROWTH_HIDDEN, GROWTH_LAYERS = 64, 2  # the growth network: smaller than the potential (a smooth rate)
VAL_BATCHES = 4  # the fixed validation batch is this many training batches
BLOCK_SAMPLES = 16384  # training batches are drawn this many samples at a time (one pass over the plans)
EMA_RAMP = 10  # EMA decay min(ema_decay, (1 + step) / (EMA_RAMP + step)): early weights fade fast
LR_FLOOR = 0.1  # the cosine schedule decays to this fraction of lr


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
        x = np.asarray(x)
        x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)  # float32 atlases stay float32
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
    return LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))


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
        load average, and on Linux at most minus the threads runnable now, at least 1:
        :func:`scam.core._utils.cpu_threads`): OpenMP threads that spin for cores they do not get multiply
        a fit's time (``benchmarks/threads.py``). ``None`` leaves torch's setting; an integer sets it.

    Returns
    -------
    ActionModel
        With ``history`` holding ``step``, ``loss`` (mean training loss since the last evaluation)
        and ``val_loss`` (EMA weights, fixed validation batch).
    """
    if threads == "auto":
        threads = None if resolve_device(device).type == "cuda" else cpu_threads()
    elif threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1
    ):
        raise ValueError(f"`threads` must be 'auto', None or a whole number >= 1, got {threads!r}.")
    with torch_threads(threads):
        return _fit(xs, times, masses=masses, log_growth=log_growth, network=network, config=config, rng=rng,
                    device=device, progress=progress)


def _fit(xs, times, *, masses, log_growth, network, config, rng, device, progress) -> ActionModel:
    config = config or TrainConfig()
    xs, times, masses, log_growth = _check_inputs(xs, times, masses, log_growth, config)
    config = config.resolved(prior=log_growth is not None, equal_masses=np.allclose(masses, masses[0]))
    coupling = config.path.coupling
    if coupling in ("uot", "unbalanced", "weighted") and config.objective.growth_weight == 0:
        raise ValueError(
            f"coupling={coupling!r} creates and destroys mass but growth_weight is 0 (a balanced "
            "model conserves mass); set growth_weight > 0 or use coupling='ot'."
        )
    dim = xs[0].shape[1]
    network = network or PotentialConfig(dim=dim)
    if network.dim != dim:
        raise ValueError(f"PotentialConfig.dim={network.dim} but the data have {dim} dimensions.")
    rng = make_rng(rng)
    dev = distributed.setup(resolve_device(device))
    progress = progress and distributed.rank_and_size()[0] == 0  # one set of bars, on rank 0

    scaling = Scaling.from_snapshots(xs, times)
    clock = time.perf_counter()
    path = _build_path(xs, times, masses, log_growth, scaling, config, rng, progress).to(dev)
    plan_seconds = time.perf_counter() - clock
    logger.info("scam: couplings built in %.1f s", plan_seconds)
    objective = config.objective
    growth_cfg = None
    if objective.separate_growth and path.changes_mass:
        growth_cfg = PotentialConfig(
            dim=dim, hidden=GROWTH_HIDDEN, n_layers=GROWTH_LAYERS, n_frequencies=network.n_frequencies,
            activation=network.activation,
        )
    unplaced = _unplaced_growth(path.growth) if objective.separate_growth and growth_cfg is None else []
    if unplaced:
        _warn_unplaced(path.growth, unplaced, times)
    elif objective.separate_growth and growth_cfg is None:
        logger.info("scam: the data show no growth (pure transport between equal masses): growth rate 0")
    tgen = torch_generator(rng)
    net = _build_networks(network, growth_cfg, rng).to(dev)
    # the loss in internal units, growth only where a growth network (or the potential) carries it
    loss = replace(objective, sigma=scaling.sigma_to_internal(objective.sigma),
                   growth_weight=0.0 if objective.separate_growth and growth_cfg is None else objective.growth_weight)
    clock = time.perf_counter()
    ema, history, n_done = _train(net, path, loss, config.optim, rng, tgen, progress)
    train_seconds = time.perf_counter() - clock
    logger.info("scam: trained %d steps in %.1f s (%.0f steps/s)", n_done, train_seconds,
                n_done / max(train_seconds, 1e-9))
    report = FitReport(
        coupling=coupling, path=path.choice, estimator=objective.estimator,
        growth=_growth_label(objective, growth_cfg is not None, bool(unplaced)), growth_evidence=path.growth,
        plan_cells=[int(len(x)) for x in path.xs],
        matching_noise=None if path.corrections is None else [
            float("nan") if c is None else float(c.noise_share) for c in path.corrections],
        mean_directions=next((c.mean_directions for c in path.corrections or [] if c is not None), None),
        seconds={"plans": plan_seconds, "training": train_seconds}, steps=n_done, lr=config.optim.lr,
    )
    return ActionModel(
        ema["potential"], scaling=scaling, sigma=objective.sigma, history=history, info=report.to_info(),
        growth_weight=0.0 if objective.separate_growth else objective.growth_weight,
        growth_net=ema["growth"] if growth_cfg is not None else None,
    )


def _growth_label(objective: ObjectiveConfig, network: bool, unplaced: bool) -> str:
    """What carries growth in the fitted model (``info["growth"]``, ``params["growth_fit"]`` in tl)."""
    if objective.growth_weight == 0:
        return "none"
    if not objective.separate_growth:
        return "potential"
    if network:
        return "network"
    return "none (evidence not placed)" if unplaced else "none (no evidence)"


def _unplaced_growth(evidence) -> list[int]:
    """Gaps whose snapshots show growth (:func:`~scam.core.growth.growth_evidence`); called for a path
    that changes no mass, where that growth could not be given to any group of cells."""
    return [k for k, gap in enumerate(evidence or []) if gap.threshold is not None]


def _warn_unplaced(evidence, unplaced: list[int], times) -> None:
    from .growth import CELLS_PER_STATE

    gaps = ", ".join(f"{times[k]:g} -> {times[k + 1]:g} (excess {evidence[k].excess:.3f})" for k in unplaced)
    warnings.warn(
        f"The snapshots show growth between time points {gaps}, but it could not be placed on any group "
        f"of cells: growth is shared by compartments of states (about {CELLS_PER_STATE} cells each) that "
        "exchange mass, and here no compartment could be told apart from the rest (a time point with fewer "
        f"than {2 * CELLS_PER_STATE} cells is a single state). Every growth rate is 0. For a growth map, give a "
        "per-cell prior (`scam.pp.score_growth`) or population sizes (`growth={time: mass}`).",
        UserWarning, stacklevel=caller_stacklevel(),
    )


def _check_inputs(xs, times, masses, log_growth, config):
    """Validate and sort the snapshots, masses (default all ones) and growth prior."""
    unbalanced = config.objective.growth_weight > 0
    if log_growth is not None:
        if not unbalanced:
            raise ValueError("`log_growth` needs an unbalanced model: set growth_weight > 0.")
        if len(log_growth) != len(xs) or any(np.shape(g) != (len(x),) for g, x in zip(log_growth, xs)):
            raise ValueError("`log_growth` needs one rate per cell: one (n_k,) array per snapshot.")
        if not all(np.all(np.isfinite(g)) for g in log_growth):
            raise ValueError("`log_growth` contains NaN or infinite values.")
        order = np.argsort(np.asarray(times, dtype=float))
        log_growth = [np.asarray(log_growth[i], dtype=float) for i in order]
    xs, times, masses = validate_snapshots(xs, times, masses)
    if masses is None:
        masses = np.ones(len(xs))
    elif not unbalanced and not np.allclose(masses, 1.0):
        raise ValueError(
            "Relative masses differ between time points but growth_weight is 0 (a balanced model "
            "conserves mass); set growth_weight > 0 or drop `masses`."
        )
    return xs, times, masses, log_growth


def plan_subsample(xs, log_growth, max_cells: int | None, rng):
    """The cells that enter the couplings: at most ``max_cells`` per snapshot, uniformly at random
    (:attr:`PathConfig.max_cells`); the growth prior follows its cells."""
    if max_cells is None or all(len(x) <= max_cells for x in xs):
        return xs, log_growth
    keep = [np.sort(rng.choice(len(x), max_cells, replace=False)) if len(x) > max_cells else slice(None) for x in xs]
    xs = [x[k] for x, k in zip(xs, keep)]
    if log_growth is not None:
        log_growth = [g[k] for g, k in zip(log_growth, keep)]
    return xs, log_growth


def _build_path(xs, times, masses, log_growth, scaling: Scaling, config: TrainConfig, rng, progress) -> SnapshotPath:
    """Standardise the snapshots, decide how pairs move through each gap
    (:func:`~scam.core.path_choice.resolve_path`) and join them by the couplings (internal units), once."""
    pc = config.path
    moments = None
    if pc.noise_correction and any(pc.max_cells is not None and len(x) > pc.max_cells for x in xs):
        moments = []  # of every cell (internal units): the noise correction's Gaussian maps
        for x in xs:
            mean, cov, n = snapshot_moments(x)
            moments.append(((mean - scaling.shift) / scaling.scale, cov / scaling.scale**2, n))
    xs, log_growth = plan_subsample(xs, log_growth, pc.max_cells, rng)
    internal = [scaling.to_internal(x) for x in xs]
    evidence = gap_evidence(internal, masses, rng, progress) if pc.coupling == "weighted" else None
    changes_mass = (not np.allclose(masses, masses[0]) or pc.coupling in ("uot", "unbalanced")
                    or log_growth is not None or any(g.threshold is not None for g in evidence or []))
    choice = resolve_path(config, internal, times, changes_mass=changes_mass, rng=rng)
    logger.info("scam: %s path (%s)", choice.path, choice.reason)
    logger.info("scam: building %s couplings between %d time points (%s cells)", pc.coupling, len(xs),
                "/".join(str(len(x)) for x in xs))
    return SnapshotPath(
        internal, scaling.time_to_internal(times), masses, pc, choice=choice,
        sigma=scaling.sigma_to_internal(config.objective.sigma), moments=moments, evidence=evidence, rng=rng,
        progress=progress,
        log_growth=None if log_growth is None else [scaling.growth_to_internal(g) for g in log_growth],
    )


def _build_networks(network: PotentialConfig, growth_cfg: PotentialConfig | None, rng) -> torch.nn.ModuleDict:
    """The potential (and growth) networks, initialised from ``rng`` without touching torch's global seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(0, 2**62)))
        modules = {"potential": PotentialNet(network)}
        if growth_cfg is not None:
            modules["growth"] = PotentialNet(growth_cfg)
    return torch.nn.ModuleDict(modules)


class _Objective(torch.nn.Module):
    """The networks and their loss as one module (what DistributedDataParallel wraps)."""

    def __init__(self, nets: torch.nn.ModuleDict, objective: ObjectiveConfig):
        super().__init__()
        self.nets = nets
        self.objective = objective

    def forward(self, batch, generator):
        nets = self.nets
        return action_matching_loss(nets["potential"], batch, self.objective, generator=generator,
                                    growth_net=nets["growth"] if "growth" in nets else None)


def _adamw(params: list, opt_cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW, fused where this torch build has the fused kernel for the parameters' device (CPU:
    torch >= 2.4; 7.2 instead of 7.9 ms per LARRY step on 2 cores), else the multi-tensor one."""
    try:
        return torch.optim.AdamW(params, lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.AdamW(params, lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay, foreach=True)


def _train(net: torch.nn.ModuleDict, path: SnapshotPath, objective_cfg: ObjectiveConfig, opt_cfg: OptimConfig, rng,
           tgen, progress):
    """AdamW with warm-up and cosine decay, EMA weights, early stopping on a fixed validation batch.

    Returns the EMA networks holding the best validated weights, the history and the number of steps taken.
    """
    objective = _Objective(net, objective_cfg)
    rank, world = distributed.rank_and_size()
    batch_size = opt_cfg.batch_size
    batch_rng = rng
    if world > 1:  # DDP: each rank its share of every batch, from its own stream; gradients averaged
        # find_unused_parameters: the pathwise loss reads only grad s, so the output bias gets no gradient
        # (DDP also broadcasts rank 0's parameters)
        objective = torch.nn.parallel.DistributedDataParallel(objective, find_unused_parameters=True)
        batch_size = math.ceil(opt_cfg.batch_size / world)
        batch_rng = np.random.default_rng([int(rng.integers(0, 2**62)), rank])
        tgen = torch_generator(batch_rng)
        progress = progress and rank == 0
    written_out = world == 1 and backprop.supports(net, objective_cfg)
    ema = copy.deepcopy(net)
    for p in ema.parameters():
        p.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]  # listed once: no module walk per step
    ema_params = [pe for pe, p in zip(ema.parameters(), net.parameters()) if p.requires_grad]
    opt = _adamw(params, opt_cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: _lr_factor(step, opt_cfg.warmup, opt_cfg.n_steps))
    ema_objective = _Objective(ema, objective_cfg)

    val_rng = np.random.default_rng(rng.integers(0, 2**62))
    val_batch = path.sample(VAL_BATCHES * opt_cfg.batch_size, val_rng)
    val_gen = torch_generator(val_rng)
    val_state = val_gen.get_state()

    def evaluate() -> float:  # the same batch and weights on every rank: the same decisions
        val_gen.set_state(val_state)
        with torch.set_grad_enabled(not written_out):  # written out: the loss needs no graph either
            loss, _ = ema_objective(val_batch, val_gen)
        return float(loss.detach())

    hist_step, hist_loss, hist_val = [], [], []
    best, best_state, bad = math.inf, copy.deepcopy(ema.state_dict()), 0
    running, n_running = 0.0, 0
    bar = tqdm(range(opt_cfg.n_steps), disable=not progress, desc="action matching", leave=False)
    block = max(1, BLOCK_SAMPLES // batch_size)
    batches: list = []
    for step in bar:
        if not batches:  # the next steps' batches, drawn together
            batches = path.sample_batches(batch_size, min(block, opt_cfg.n_steps - step), batch_rng)[::-1]
        batch = batches.pop()
        if written_out:  # the gradients set by one pass forward and one back (no autograd graph)
            loss = backprop.loss_and_gradients(net, batch, objective_cfg)
        else:
            loss, _ = objective(batch, tgen)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"The loss became {float(loss)} at step {step}; lower the learning rate "
                "or the growth weight."
            )
        if not written_out:
            opt.zero_grad(set_to_none=True)
            loss.backward()
        if opt_cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, opt_cfg.grad_clip, foreach=True)
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(opt_cfg.ema_decay, (1 + step) / (EMA_RAMP + step))
            torch._foreach_lerp_(ema_params, params, 1 - decay)
        running += float(loss.detach())
        n_running += 1
        if (step + 1) % opt_cfg.eval_every == 0 or step + 1 == opt_cfg.n_steps:
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
                if bad >= opt_cfg.patience:
                    logger.info("scam: stopping at step %d (no improvement for %d evaluations)", step + 1, bad)
                    break
    bar.close()
    ema.load_state_dict(best_state)
    history = {"step": np.asarray(hist_step), "loss": np.asarray(hist_loss), "val_loss": np.asarray(hist_val)}
    return ema, history, step + 1
