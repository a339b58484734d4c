"""Action Matching objectives, separate from the network.

With observed (internal) times ``0 = u_0 < ... < u_K = 1``, masses ``M_k`` and a path ``q_u`` through the
snapshots, the loss of a potential ``s`` is

    L(s) = M_0 E_{p_0}[s_0] - M_K E_{p_K}[s_1]
           + int_0^1 M_u E_{p_u}[ 1/2 |grad s|^2 + ds/du + sigma^2/2 lap s + lambda/2 s^2 ] du,

balanced AM for ``sigma = lambda = 0`` (and all masses 1), entropic AM with ``sigma > 0`` (the
Laplacian is estimated with Hutchinson's trick, Rademacher probes), unbalanced AM with ``lambda > 0``
(growth rate ``g = lambda s``). Its minimiser is the potential whose gradient (and, unbalanced, whose
value) generates the path: ``d q/du = -div(q grad s) + sigma^2/2 lap q + lambda s q``.

One potential for both motion and growth (the paper's unbalanced AM) cannot represent cells that move
without growing: ``g = lambda s`` vanishes only where ``s`` does, and then so does ``grad s``. scam's
default therefore learns a separate growth field ``h(t, x)`` (``growth_net``). The path is built from
pairs whose position ``x_t`` and mass ``w(t)`` are known, so the change of the path splits into
transport (``x_dot``) and growth (``w_dot``), and each field has its own objective:

    L_v(s) = int E[ w (1/2 |grad s|^2 - grad s . x_dot) ] du          (pathwise form), or
           = M_0 E_0[s_0] - M_K E_K[s_1] + int E[ w (1/2 |grad s|^2 + ds/du + sigma^2/2 lap s) + w_dot s ] du,
    L_g(h) = int E[ w h^2 / 2 - w_dot h ] du,

minimised by the path's velocity (projected on gradients) and by its growth rate
``h = E[w_dot | x] / E[w | x]``: zero wherever the path's mass does not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._utils import check_types


@dataclass
class PathBatch:
    """One minibatch of the loss.

    Attributes
    ----------
    t, x
        Times ``(B,)`` in ``[0, 1]`` and points ``(B, d)`` sampled from the path.
    w
        Mass estimator per point ``(B,)``: ``E[w f(x_t)] = M_t E_{p_t}[f]`` (ones for balanced paths).
    x_start, x_end
        Cells of the first and last snapshot.
    mass_start, mass_end
        Masses ``M_0`` and ``M_K``.
    v, w_dot
        Velocity ``dx/dt`` ``(B, d)`` (None for noisy paths) and mass derivative ``dw/dt`` ``(B,)``
        along each sampled pair (needed by the ``"pathwise"`` estimator and by a separate growth
        network).
    """

    t: torch.Tensor
    x: torch.Tensor
    w: torch.Tensor
    x_start: torch.Tensor
    x_end: torch.Tensor
    mass_start: float = 1.0
    mass_end: float = 1.0
    v: torch.Tensor | None = None
    w_dot: torch.Tensor | None = None


ESTIMATORS = ("pathwise", "boundary")
GROWTH_MODELS = ("separate", "potential")


@dataclass(frozen=True)
class ObjectiveConfig:
    """What the loss asks of the networks.

    Parameters
    ----------
    sigma
        Diffusion coefficient in data units; ``> 0`` trains entropic AM.
    growth_weight
        ``> 0`` trains an unbalanced model. With ``growth_model="separate"``: the weight of the growth
        network's objective (it does not change what either network converges to). With
        ``"potential"``: ``lambda`` (internal units) of the paper's growth rate ``lambda s``.
    growth_model
        ``"separate"`` (default): velocity ``grad s`` and growth rate ``h`` are two networks, so cells
        can move without growing; growth is read off the path's mass changes. ``"potential"``: the
        paper's unbalanced AM, one potential for both (``g = lambda s``): it turns motion into growth
        on pure transport (ground-truth table in ``benchmarks/README.md``); kept as an option.
    estimator
        ``"auto"`` (``"pathwise"`` for deterministic paths, ``"boundary"`` for entropic ones) or one of
        :data:`ESTIMATORS`.
    n_probes
        Rademacher probes of the Hutchinson Laplacian estimator (entropic AM).
    """

    sigma: float = 0.0
    growth_weight: float = 0.0
    growth_model: str = "separate"
    estimator: str = "auto"
    n_probes: int = 1

    def __post_init__(self):
        check_types(self, ints=("n_probes",), numbers=("sigma", "growth_weight"),
                    strings=("growth_model", "estimator"))
        for name in ("sigma", "growth_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"ObjectiveConfig.{name} must be >= 0, got {getattr(self, name)}.")
        if self.n_probes < 1:
            raise ValueError(f"ObjectiveConfig.n_probes must be >= 1, got {self.n_probes}.")
        if self.estimator != "auto" and self.estimator not in ESTIMATORS:
            raise ValueError(f"Unknown estimator {self.estimator!r}; choose 'auto' or one of {ESTIMATORS}.")
        if self.estimator == "pathwise" and self.sigma > 0:
            raise ValueError(
                "estimator='pathwise' needs a deterministic path (sigma = 0); use 'boundary' or 'auto' "
                "for entropic AM."
            )
        if self.growth_model not in GROWTH_MODELS:
            raise ValueError(f"Unknown growth_model {self.growth_model!r}; choose one of {GROWTH_MODELS}.")

    @property
    def separate_growth(self) -> bool:
        """Whether growth is a network of its own (unbalanced, ``growth_model="separate"``)."""
        return self.growth_weight > 0 and self.growth_model == "separate"

    def resolved_estimator(self) -> str:
        """The loss estimator ``"auto"`` stands for."""
        if self.estimator != "auto":
            return self.estimator
        return "boundary" if self.sigma > 0 else "pathwise"


def potential_derivatives(net: nn.Module, t: torch.Tensor, x: torch.Tensor, *, create_graph: bool):
    """``s``, ``grad_x s`` and ``ds/dt`` at ``(t, x)``; the inputs are detached copies."""
    t = t.detach().requires_grad_(True)
    x = x.detach().requires_grad_(True)
    s = net(t, x)
    gx, gt = torch.autograd.grad(s.sum(), (x, t), create_graph=create_graph)
    return s, gx, gt, x


def _value_and_grad(net: nn.Module, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``s`` and ``grad_x s``, differentiable in the weights: the network's own chain rule where it has one
    (:meth:`~scam.core.network.PotentialNet.value_and_grad`), else autograd's."""
    if hasattr(net, "value_and_grad"):
        return net.value_and_grad(t, x)
    x = x.requires_grad_(True)
    s = net(t, x)
    (gx,) = torch.autograd.grad(s.sum(), x, create_graph=True)
    return s, gx


def hutchinson_laplacian(gx: torch.Tensor, x: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """Unbiased estimate of ``lap s = tr(Hess s)`` from ``gx = grad s`` and probes ``(n_probes, B, d)``."""
    est = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    for eps in probes:
        hv = torch.autograd.grad((gx * eps).sum(), x, create_graph=True)[0]
        est = est + (hv * eps).sum(dim=1)
    return est / probes.shape[0]


def action_matching_loss(
    net: nn.Module,
    batch: PathBatch,
    objective: ObjectiveConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    growth_net: nn.Module | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Action Matching loss (balanced, entropic and/or unbalanced) on one minibatch.

    Two unbiased estimators of the same objective (same expectation for every ``s``, hence the same
    minimiser):

    - ``"boundary"``: the form of the paper, ``M_0 E_0[s_0] - M_K E_K[s_1] + int E w (1/2 |grad s|^2
      + ds/dt + ...)``; needs only samples of the marginals.
    - ``"pathwise"``: the path is built from pairs ``x_t`` with mass ``w(t)``; integrating ``w ds/dt``
      by parts along each pair, ``int w ds/dt dt = [w s] - int (w_dot s + w grad s . x_dot) dt``, and
      the bracket cancels the boundary terms. The loss is ``int E [w (1/2 |grad s|^2 - grad s . x_dot
      + lambda/2 s^2) - w_dot s]``: no boundary terms and no time derivative. Near the optimum its
      gradient noise is far lower (the boundary form's ``ds/dt`` and end-point terms cancel only in
      expectation; ``tests/test_losses.py`` checks it), so it reaches the same accuracy in fewer,
      cheaper steps (``benchmarks/README.md``).
      Deterministic paths only (``sigma = 0``).

    Parameters
    ----------
    net
        Potential network ``s(t, x)`` (internal units).
    batch
        Samples of the path and of the first and last snapshot (``"pathwise"``: with ``v`` and
        ``w_dot``).
    objective
        What the loss asks, in internal units (default: balanced, deterministic, ``"auto"`` estimator):
        ``sigma`` the diffusion coefficient, ``> 0`` adds ``sigma^2/2 lap s`` (entropic AM);
        ``growth_weight`` without ``growth_net``: ``lambda``, ``> 0`` adds ``lambda/2 s^2`` (the paper's
        unbalanced AM, growth rate ``lambda s``), with ``growth_net``: the weight of ``L_g`` in the sum
        (it does not change either minimiser); ``estimator`` (``"auto"`` resolved by
        :meth:`ObjectiveConfig.resolved_estimator`); ``n_probes``, Rademacher probes of the Hutchinson
        estimator. ``growth_model`` is the fit's business (whether ``growth_net`` is given).
    generator
        Torch generator (CPU) for the probes.
    growth_net
        Separate growth field ``h(t, x)`` (internal units, same signature as ``net``); the loss is then
        ``L_v(s) + growth_weight L_g(h)`` (module docstring). Needs ``batch.w_dot``.

    Returns
    -------
    loss
        Scalar tensor (differentiable in the network's parameters).
    parts
        Values of the boundary and integral terms, for logging (boundary terms are 0 for
        ``"pathwise"``), and ``growth`` (``L_g``, 0 without ``growth_net``).
    """
    objective = objective or ObjectiveConfig()
    sigma, growth_weight, n_probes = objective.sigma, objective.growth_weight, objective.n_probes
    estimator = objective.resolved_estimator()
    if growth_net is not None:
        if batch.w_dot is None:
            raise ValueError("A separate growth network needs the path's mass derivatives (`batch.w_dot`).")
        h = growth_net(batch.t, batch.x.detach())
        growth = (batch.w * 0.5 * h**2 - batch.w_dot * h).mean()
        loss, parts = _velocity_loss(net, batch, sigma, 0.0, estimator, n_probes, generator, separate=True)
        total = loss + growth_weight * growth
        return total, {**parts, "growth": float(growth.detach())}
    loss, parts = _velocity_loss(net, batch, sigma, growth_weight, estimator, n_probes, generator, separate=False)
    return loss, {**parts, "growth": 0.0}


def _velocity_loss(net, batch, sigma, growth_weight, estimator, n_probes, generator, *, separate: bool):
    """The potential's objective: the paper's (``separate=False``, growth ``lambda s``) or ``L_v``."""
    if estimator == "pathwise":
        if sigma > 0 or batch.v is None or batch.w_dot is None:
            raise ValueError(
                "The 'pathwise' estimator needs a deterministic path (sigma = 0) with pair velocities; "
                "use estimator='boundary' for entropic AM."
            )
        s, gx = _value_and_grad(net, batch.t, batch.x.detach())
        integrand = 0.5 * (gx**2).sum(dim=1) - (gx * batch.v).sum(dim=1)
        if growth_weight > 0:
            integrand = integrand + 0.5 * growth_weight * s**2
        integral = (batch.w * integrand).mean()
        if not separate:  # the path's mass change is the potential's job: g = lambda s
            integral = integral - (batch.w_dot * s).mean()
        return integral, {"start": 0.0, "end": 0.0, "integral": float(integral.detach())}
    s, gx, gt, x = potential_derivatives(net, batch.t, batch.x, create_graph=True)
    integrand = 0.5 * (gx**2).sum(dim=1) + gt
    if sigma > 0:
        probes = torch.randint(0, 2, (n_probes, *x.shape), generator=generator).to(x) * 2 - 1
        integrand = integrand + 0.5 * sigma**2 * hutchinson_laplacian(gx, x, probes)
    if growth_weight > 0:
        integrand = integrand + 0.5 * growth_weight * s**2
    integral = (batch.w * integrand).mean()
    if separate:  # the growth network takes the mass change: int E[w_dot s] cancels its share
        integral = integral + (batch.w_dot * s).mean()
    t0 = torch.zeros(batch.x_start.shape[0], device=x.device, dtype=x.dtype)
    t1 = torch.ones(batch.x_end.shape[0], device=x.device, dtype=x.dtype)
    start = batch.mass_start * net(t0, batch.x_start).mean()
    end = batch.mass_end * net(t1, batch.x_end).mean()
    loss = start - end + integral
    return loss, {"start": float(start.detach()), "end": float(end.detach()), "integral": float(integral.detach())}
