"""Action Matching objectives, separate from the network.

With observed (internal) times ``0 = u_0 < ... < u_K = 1``, masses ``M_k`` and a path ``q_u`` through the
snapshots, the loss of a potential ``s`` is

    L(s) = M_0 E_{p_0}[s_0] - M_K E_{p_K}[s_1]
           + int_0^1 M_u E_{p_u}[ 1/2 |grad s|^2 + ds/du + sigma^2/2 lap s + lambda/2 s^2 ] du,

balanced AM for ``sigma = lambda = 0`` (and all masses 1), entropic AM with ``sigma > 0`` (the
Laplacian is estimated with Hutchinson's trick, Rademacher probes), unbalanced AM with ``lambda > 0``
(growth rate ``g = lambda s``). Its minimiser is the potential whose gradient (and, unbalanced, whose
value) generates the path: ``d q/du = -div(q grad s) + sigma^2/2 lap q + lambda s q``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


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
    """

    t: torch.Tensor
    x: torch.Tensor
    w: torch.Tensor
    x_start: torch.Tensor
    x_end: torch.Tensor
    mass_start: float = 1.0
    mass_end: float = 1.0


def potential_derivatives(net: nn.Module, t: torch.Tensor, x: torch.Tensor, *, create_graph: bool):
    """``s``, ``grad_x s`` and ``ds/dt`` at ``(t, x)``; the inputs are detached copies."""
    t = t.detach().requires_grad_(True)
    x = x.detach().requires_grad_(True)
    s = net(t, x)
    gx, gt = torch.autograd.grad(s.sum(), (x, t), create_graph=create_graph)
    return s, gx, gt, x


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
    *,
    sigma: float = 0.0,
    growth_weight: float = 0.0,
    n_probes: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Action Matching loss (balanced, entropic and/or unbalanced) on one minibatch.

    Parameters
    ----------
    net
        Potential network ``s(t, x)`` (internal units).
    batch
        Samples of the path and of the first and last snapshot.
    sigma
        Diffusion coefficient in internal units; ``> 0`` adds ``sigma^2/2 lap s`` (entropic AM).
    growth_weight
        ``lambda``: ``> 0`` adds ``lambda/2 s^2`` (unbalanced AM, growth rate ``lambda s``).
    n_probes
        Number of Rademacher probes of the Hutchinson estimator.
    generator
        Torch generator (CPU) for the probes.

    Returns
    -------
    loss
        Scalar tensor (differentiable in the network's parameters).
    parts
        Values of the boundary and integral terms, for logging.
    """
    s, gx, gt, x = potential_derivatives(net, batch.t, batch.x, create_graph=True)
    integrand = 0.5 * (gx**2).sum(dim=1) + gt
    if sigma > 0:
        probes = torch.randint(0, 2, (n_probes, *x.shape), generator=generator).to(x) * 2 - 1
        integrand = integrand + 0.5 * sigma**2 * hutchinson_laplacian(gx, x, probes)
    if growth_weight > 0:
        integrand = integrand + 0.5 * growth_weight * s**2
    integral = (batch.w * integrand).mean()
    t0 = torch.zeros(batch.x_start.shape[0], device=x.device, dtype=x.dtype)
    t1 = torch.ones(batch.x_end.shape[0], device=x.device, dtype=x.dtype)
    start = batch.mass_start * net(t0, batch.x_start).mean()
    end = batch.mass_end * net(t1, batch.x_end).mean()
    loss = start - end + integral
    return loss, {"start": float(start.detach()), "end": float(end.detach()), "integral": float(integral.detach())}
