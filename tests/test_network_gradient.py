"""The potential network's written-out chain rule against autograd."""

import pytest
import torch

from scam.core.losses import ObjectiveConfig, PathBatch, action_matching_loss
from scam.core.network import PotentialConfig, PotentialNet


def _autograd(net, t, x):
    x = x.detach().requires_grad_(True)
    s = net(t, x)
    (gx,) = torch.autograd.grad(s.sum(), x, create_graph=True)
    return s, gx


@pytest.mark.parametrize("activation", ["silu", "softplus", "tanh", "gelu"])
@pytest.mark.parametrize(("n_layers", "n_frequencies"), [(1, 0), (3, 1), (2, 3)])
def test_value_and_grad_is_autograds_gradient_and_trains_alike(activation, n_layers, n_frequencies):
    torch.manual_seed(0)
    net = PotentialNet(PotentialConfig(dim=4, hidden=16, n_layers=n_layers, n_frequencies=n_frequencies,
                                       activation=activation))
    t, x = torch.rand(64), torch.randn(64, 4) * 3
    s_ref, g_ref = _autograd(net, t, x)
    s, g = net.value_and_grad(t, x)
    torch.testing.assert_close(s, s_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6)
    # the gradients the training step takes (through grad_x s) are autograd's too
    params = list(net.parameters())
    d_ref = torch.autograd.grad((g_ref**2).sum() + (s_ref**2).sum(), params, allow_unused=True)
    d = torch.autograd.grad((g**2).sum() + (s**2).sum(), params, allow_unused=True)
    for a, b in zip(d, d_ref):
        if b is None:
            assert a is None or torch.count_nonzero(a) == 0
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # inference: no graph kept
        s0, g0 = net.value_and_grad(t, x)
    assert not s0.requires_grad and not g0.requires_grad
    torch.testing.assert_close(g0, g_ref.detach(), rtol=1e-5, atol=1e-6)


class _Plain(torch.nn.Module):
    """A potential without the written-out chain rule: the loss falls back to autograd."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, t, x):
        return self.net(t, x)


def test_pathwise_loss_is_the_same_with_either_gradient():
    torch.manual_seed(1)
    net = PotentialNet(PotentialConfig(dim=3, hidden=16))
    n = 128
    batch = PathBatch(t=torch.rand(n), x=torch.randn(n, 3), w=torch.rand(n) + 0.5, x_start=torch.randn(n, 3),
                      x_end=torch.randn(n, 3), mass_start=1.0, mass_end=1.3, v=torch.randn(n, 3),
                      w_dot=torch.randn(n))
    for objective in (ObjectiveConfig(estimator="pathwise"),
                      ObjectiveConfig(estimator="pathwise", growth_weight=0.5, growth_model="potential")):
        loss, _ = action_matching_loss(net, batch, objective)
        ref, _ = action_matching_loss(_Plain(net), batch, objective)
        torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
