"""The pathwise loss's weight gradients written out: one pass forward, one back, no autograd graph.

The pathwise estimator (:func:`~scam.core.losses.action_matching_loss`) reads the potential only
through ``s`` and ``g = grad_x s`` at the path's samples. Its gradient in the weights is a second-order
quantity: autograd reaches it by differentiating the graph of the input gradient, node by node. For
:class:`~scam.core.network.PotentialNet`'s multilayer perceptron both passes have a short closed form,
written out here (reverse mode through the gradient's chain ``g = (a'_1 * (a'_2 * (... w_out) W_2)) W_1``,
then through the forward pass with the activations' second derivatives). Same gradients as autograd's to
float rounding (``tests/test_network_gradient.py``), in fewer operations (the step's time:
``benchmarks/README.md``, "Speed").

Used by the training loop for every fit it covers (:func:`supports`: the pathwise estimator, SiLU,
softplus or tanh, one process); anything else (the boundary estimator, GELU, DistributedDataParallel,
another network) goes through autograd.
"""

from __future__ import annotations

import torch
from torch import nn

from .losses import ObjectiveConfig, PathBatch
from .network import WRITTEN_OUT, PotentialNet


def supports(nets: nn.ModuleDict, objective: ObjectiveConfig) -> bool:
    """Whether :func:`loss_and_gradients` covers these networks and this objective."""
    return (objective.resolved_estimator() == "pathwise" and objective.sigma == 0
            and all(type(net) is PotentialNet and net.config.activation in WRITTEN_OUT for net in nets.values()))


def loss_and_gradients(nets: nn.ModuleDict, batch: PathBatch, objective: ObjectiveConfig) -> torch.Tensor:
    """The pathwise loss of :func:`~scam.core.losses.action_matching_loss` and its weight gradients.

    Parameters
    ----------
    nets
        ``"potential"`` and, for a separate growth field, ``"growth"``
        (:class:`~scam.core.network.PotentialNet`, :func:`supports`).
    batch
        Path samples with pair velocities ``v`` and mass derivatives ``w_dot``.
    objective
        The loss's settings (internal units): ``growth_weight``, as in ``action_matching_loss``.

    Returns
    -------
    The loss (a detached scalar tensor). Every parameter's ``.grad`` is set (replaced, not accumulated);
    a parameter the loss does not read (the potential's output bias when ``s`` itself is not in the
    loss) gets ``None``, as autograd leaves it.
    """
    if batch.v is None or batch.w_dot is None:
        raise ValueError("The written-out gradients need a deterministic path with pair velocities (`batch.v`).")
    with torch.no_grad():
        growth_net = nets["growth"] if "growth" in nets else None
        if growth_net is None:  # the paper's loss: g = lambda s carries the mass change
            return _potential(nets["potential"], batch, objective.growth_weight, separate=False)
        loss = _potential(nets["potential"], batch, 0.0, separate=True)
        return loss + _growth(growth_net, batch, objective.growth_weight)


def _potential(net: PotentialNet, batch: PathBatch, growth_weight: float, *, separate: bool) -> torch.Tensor:
    """``int E[w (1/2 |g|^2 - g . v + lambda/2 s^2)] (- E[w_dot s] unless separate)`` and its gradients."""
    x, v, w = batch.x, batch.v, batch.w
    n, d = x.shape
    linears = net.linears()
    inputs, slopes, curvatures = net.hidden_pass(batch.t, x, curvature=True)
    depth = len(slopes)
    # the input gradient's chain, from the output down: chain[k] = ds/d inputs[k] (the input of linear
    # layer k; chain[0] = grad_x s, the first layer's x columns only), scaled[k] = a'(h_k) * chain[k + 1]
    chain = [None] * (depth + 1)
    scaled = [None] * depth
    chain[depth] = linears[-1].weight
    for k in reversed(range(depth)):
        scaled[k] = slopes[k] * chain[k + 1]
        chain[k] = scaled[k] @ _input_weight(linears[k], k, d)
    g = chain[0]
    loss = (w * (0.5 * (g * g).sum(dim=1) - (g * v).sum(dim=1))).mean()
    g_bar = (w / n)[:, None] * (g - v)
    s_bar = None
    if growth_weight > 0 or not separate:
        s = torch.addmm(linears[-1].bias, inputs[-1], linears[-1].weight.t()).squeeze(-1)
        s_bar = torch.zeros_like(s)
        if growth_weight > 0:
            loss = loss + (w * 0.5 * growth_weight * s * s).mean()
            s_bar = s_bar + (growth_weight / n) * w * s
        if not separate:
            loss = loss - (batch.w_dot * s).mean()
            s_bar = s_bar - batch.w_dot / n
    # back through the chain: each layer's weights, and each slope's adjoint
    weight_grads, slope_bars = [None] * (depth + 1), [None] * depth
    bar = g_bar
    for k in range(depth):
        scaled_bar = bar @ _input_weight(linears[k], k, d).t()
        weight_grads[k] = scaled[k].t() @ bar
        slope_bars[k] = scaled_bar * chain[k + 1]
        bar = scaled_bar * slopes[k]
    weight_grads[depth] = bar.sum(dim=0, keepdim=True)
    # then back through the forward pass: slopes depend on the pre-activations through a''
    z_bar = None
    if s_bar is not None:
        z_bar = s_bar[:, None] * linears[-1].weight
        weight_grads[depth] = torch.addmm(weight_grads[depth], s_bar[None, :], inputs[-1])
    pre_bars = [slope_bars[k] * curvatures[k] for k in range(depth)]
    grads = _back_through_layers(linears, inputs, slopes, pre_bars, z_bar, chain_grads=weight_grads, dim=d)
    _assign(linears, grads, None if s_bar is None else s_bar.sum().reshape(1))
    return loss


def _growth(net: PotentialNet, batch: PathBatch, weight: float) -> torch.Tensor:
    """``weight * E[w h^2 / 2 - w_dot h]`` (the separate growth field's loss) and its gradients."""
    n = batch.x.shape[0]
    linears = net.linears()
    inputs, slopes, _ = net.hidden_pass(batch.t, batch.x)
    h = torch.addmm(linears[-1].bias, inputs[-1], linears[-1].weight.t()).squeeze(-1)
    loss = weight * (batch.w * 0.5 * h * h - batch.w_dot * h).mean()
    h_bar = (weight / n) * (batch.w * h - batch.w_dot)
    z_bar = h_bar[:, None] * linears[-1].weight
    out_grad = h_bar[None, :] @ inputs[-1]
    grads = _back_through_layers(linears, inputs, slopes, [None] * len(slopes), z_bar,
                                 chain_grads=[None] * len(slopes) + [out_grad], dim=batch.x.shape[1])
    _assign(linears, grads, h_bar.sum().reshape(1))
    return loss


def _input_weight(layer: nn.Linear, k: int, dim: int) -> torch.Tensor:
    """The part of layer ``k``'s weight that the input gradient passes through (the first layer: the
    columns of ``x``, not those of the time features)."""
    return layer.weight[:, -dim:] if k == 0 else layer.weight


def _back_through_layers(linears, inputs, slopes, pre_bars, z_bar, *, chain_grads, dim):
    """Reverse mode through the hidden layers' forward pass.

    ``pre_bars[k]``: adjoint of hidden pre-activation ``k`` that does not come through its activation's
    value (or ``None``); ``z_bar``: adjoint of the last hidden activation (or ``None``);
    ``chain_grads[k]``: weight gradients already found for layer ``k`` (or ``None``; the first layer's
    cover the columns of ``x`` only). Returns ``[(weight_grad, bias_grad)]`` of the hidden layers and the
    output layer's weight gradient last (``(chain_grads[-1], None)``).
    """
    depth = len(slopes)
    out = [None] * depth
    for k in reversed(range(depth)):
        pre_bar = pre_bars[k]
        if z_bar is not None:
            pre_bar = z_bar * slopes[k] if pre_bar is None else torch.addcmul(pre_bar, z_bar, slopes[k])
        if k == 0:
            weight_grad = pre_bar.t() @ inputs[0]
            if chain_grads[0] is not None:
                weight_grad[:, -dim:] += chain_grads[0]
        elif chain_grads[k] is not None:
            weight_grad = torch.addmm(chain_grads[k], pre_bar.t(), inputs[k])
        else:
            weight_grad = pre_bar.t() @ inputs[k]
        out[k] = (weight_grad, pre_bar.sum(dim=0))
        z_bar = pre_bar @ linears[k].weight if k else None
    return out + [(chain_grads[depth], None)]


def _assign(linears, grads, out_bias_grad) -> None:
    for layer, (weight_grad, bias_grad) in zip(linears, grads):
        layer.weight.grad = weight_grad
        layer.bias.grad = bias_grad
    linears[-1].bias.grad = out_bias_grad
