"""The potential network s(t, x): a plain ``nn.Module`` built from a frozen config."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .._utils import check_types

_ACTIVATIONS = {"silu": nn.SiLU, "softplus": nn.Softplus, "tanh": nn.Tanh, "gelu": nn.GELU}
WRITTEN_OUT = ("silu", "softplus", "tanh")  # activations whose derivatives are written out (not GELU)


@dataclass(frozen=True)
class PotentialConfig:
    """Architecture of the potential network.

    Parameters
    ----------
    dim
        Dimension of the state space (number of embedding components).
    hidden
        Width of each hidden layer. Default 128: trained at the learning rate that goes with it
        (:class:`~scam.core.OptimConfig`), as accurate as 256 (the default until 2026-12-07) on the
        ground-truth systems and held-out days of ``benchmarks/``, at about half the training time
        (``benchmarks/README.md``).
    n_layers
        Number of hidden layers.
    n_frequencies
        Number of Fourier frequencies of the time embedding (``sin``/``cos`` of ``2^k pi t``).
        Default 1: higher frequencies make the velocity wobble in time (Gaussian geodesic benchmark:
        2.5% velocity error with 1 frequency vs 5.2% with 4; Cite held-out W1 no worse).
    activation
        Smooth activation: ``"silu"`` (default), ``"softplus"``, ``"tanh"`` or ``"gelu"``.
        ReLU is not offered: its gradient field is piecewise constant.
    """

    dim: int
    hidden: int = 128
    n_layers: int = 3
    n_frequencies: int = 1
    activation: str = "silu"

    def __post_init__(self):
        check_types(self, ints=("dim", "hidden", "n_layers", "n_frequencies"), strings=("activation",))
        if self.dim < 1:
            raise ValueError(f"PotentialConfig.dim must be >= 1, got {self.dim}.")
        if self.hidden < 1 or self.n_layers < 1:
            raise ValueError("PotentialConfig.hidden and n_layers must be >= 1.")
        if self.n_frequencies < 0:
            raise ValueError("PotentialConfig.n_frequencies must be >= 0.")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {self.activation!r}; choose one of {sorted(_ACTIVATIONS)}."
            )

    def to_dict(self) -> dict:
        """Plain dictionary (JSON-serialisable)."""
        return asdict(self)


class PotentialNet(nn.Module):
    """Scalar potential ``s(t, x)``; the velocity is ``grad_x s``.

    The time ``t`` is expected in the model's internal unit interval ``[0, 1]``.
    Inputs are ``t`` of shape ``(n,)`` or ``(n, 1)`` and ``x`` of shape ``(n, dim)``;
    the output has shape ``(n,)``.
    """

    def __init__(self, config: PotentialConfig):
        super().__init__()
        self.config = config
        freqs = math.pi * (2.0 ** torch.arange(config.n_frequencies, dtype=torch.float32))
        self.register_buffer("freqs", freqs, persistent=False)
        in_dim = config.dim + 1 + 2 * config.n_frequencies
        act = _ACTIVATIONS[config.activation]
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(config.n_layers):
            layers += [nn.Linear(width, config.hidden), act()]
            width = config.hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, 1)
        if self.config.n_frequencies == 0:
            return t
        ang = t * self.freqs
        return torch.cat([t, torch.sin(ang), torch.cos(ang)], dim=1)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.time_features(t), x], dim=1)
        return self.mlp(h).squeeze(-1)

    def value_and_grad(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``s(t, x)`` and ``grad_x s`` by the chain rule written out, differentiable in the weights.

        The same values as ``torch.autograd.grad(s.sum(), x, create_graph=True)`` (to float rounding), in
        fewer operations: each layer keeps its activation's derivative from the forward pass, so autograd
        differentiates one explicit graph instead of its graph of a graph. (The training step goes
        further where it can: :mod:`scam.core.backprop` writes the weight gradients out as well.) GELU,
        whose derivative has no short form here, takes the autograd route.
        """
        if self.config.activation not in WRITTEN_OUT:
            graph = torch.is_grad_enabled()  # differentiable in the weights only when asked
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                s = self(t, x)
                (gx,) = torch.autograd.grad(s.sum(), x, create_graph=graph)
            return (s, gx) if graph else (s.detach(), gx)
        linears = self.linears()
        inputs, slopes, _ = self.hidden_pass(t, x)
        s = torch.addmm(linears[-1].bias, inputs[-1], linears[-1].weight.t()).squeeze(-1)
        g = linears[-1].weight  # (1, hidden): ds/dz of the last hidden layer, the same for every sample
        for k in reversed(range(len(slopes))):
            weight = linears[k].weight if k else linears[0].weight[:, -x.shape[1]:]
            g = (slopes[k] * g) @ weight
        return s, g

    def linears(self) -> list[nn.Linear]:
        """The linear layers, first to last (the output layer last)."""
        return [m for m in self.mlp if isinstance(m, nn.Linear)]

    def hidden_pass(self, t: torch.Tensor, x: torch.Tensor, *, curvature: bool = False):
        """The forward pass through the hidden layers, keeping what the chain rule needs.

        Returns ``(inputs, slopes, curvatures)``: the input of every linear layer (the features
        ``[time_features(t), x]`` first, the last hidden activation last), and at every hidden
        pre-activation ``h`` the activation's first derivative and, when ``curvature`` is true, its
        second (else ``None``). Not for GELU (no short form of its derivatives here).
        """
        if self.config.activation not in WRITTEN_OUT:
            raise ValueError(f"hidden_pass has no written-out derivatives of {self.config.activation!r}.")
        z = torch.cat([self.time_features(t), x], dim=1)
        inputs, slopes, curvatures = [z], [], []
        for layer in self.linears()[:-1]:
            h = torch.addmm(layer.bias, z, layer.weight.t())
            z, slope, curv = _activation_derivatives(self.config.activation, h, curvature)
            inputs.append(z)
            slopes.append(slope)
            curvatures.append(curv)
        return inputs, slopes, curvatures


def _activation_derivatives(name: str, h: torch.Tensor, curvature: bool = False):
    """An activation's value, first derivative and (``curvature``: else ``None``) second derivative at
    ``h``, from shared intermediate results."""
    if name == "silu":  # a = h sig(h); a' = sig + h sig (1 - sig) = sig + a - a sig
        sig = torch.sigmoid(h)
        a = h * sig
        slope = torch.addcmul(sig + a, a, sig, value=-1)
        # a'' = sig (1 - sig) (2 + h (1 - 2 sig)) = (sig - sig^2) (2 + h - 2 a)
        return a, slope, (sig - sig * sig) * (2 + h - 2 * a) if curvature else None
    if name == "softplus":  # a' = sig, a'' = sig (1 - sig)
        sig = torch.sigmoid(h)
        return nn.functional.softplus(h), sig, sig - sig * sig if curvature else None
    a = torch.tanh(h)  # tanh: a' = 1 - a^2, a'' = -2 a a'
    slope = 1 - a * a
    return a, slope, -2 * a * slope if curvature else None
