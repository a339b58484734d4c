"""The potential network's written-out chain rule against autograd."""

import numpy as np
import pytest
import torch

from scam.core import backprop
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


def _batch(n, d, dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    return PathBatch(t=torch.rand(n, generator=g, dtype=dtype), x=torch.randn(n, d, generator=g, dtype=dtype) * 2,
                     w=torch.rand(n, generator=g, dtype=dtype) + 0.5, x_start=torch.randn(n, d, dtype=dtype),
                     x_end=torch.randn(n, d, dtype=dtype), mass_start=1.0, mass_end=1.3,
                     v=torch.randn(n, d, generator=g, dtype=dtype), w_dot=torch.randn(n, generator=g, dtype=dtype))


@pytest.mark.parametrize("activation", ["silu", "softplus", "tanh"])
@pytest.mark.parametrize(("growth_weight", "growth_model", "n_layers", "n_frequencies"),
                         [(0.0, "separate", 3, 1), (0.7, "separate", 2, 0), (0.5, "potential", 3, 2),
                          (0.0, "potential", 1, 1)])
def test_written_out_weight_gradients_are_autograds(activation, growth_weight, growth_model, n_layers,
                                                    n_frequencies):
    """The training step's gradients without autograd: the same loss and the same gradient of every
    weight as autograd's backward of ``action_matching_loss`` (float64, to 1e-10)."""
    torch.manual_seed(0)
    d = 4
    modules = {"potential": PotentialNet(PotentialConfig(dim=d, hidden=16, n_layers=n_layers,
                                                         n_frequencies=n_frequencies, activation=activation))}
    if growth_model == "separate" and growth_weight > 0:
        modules["growth"] = PotentialNet(PotentialConfig(dim=d, hidden=8, n_layers=2, activation=activation))
    nets = torch.nn.ModuleDict(modules).double()
    objective = ObjectiveConfig(estimator="pathwise", growth_weight=growth_weight, growth_model=growth_model)
    assert backprop.supports(nets, objective)
    batch = _batch(96, d)
    ref, _ = action_matching_loss(nets["potential"], batch, objective, growth_net=nets["growth"] if "growth" in nets
                                  else None)
    ref.backward()
    expected = [None if p.grad is None else p.grad.clone() for p in nets.parameters()]
    nets.zero_grad(set_to_none=True)
    loss = backprop.loss_and_gradients(nets, batch, objective)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
    for (name, p), e in zip(nets.named_parameters(), expected):
        if e is None:  # a weight the loss does not read: no gradient either way
            assert p.grad is None, name
        else:
            torch.testing.assert_close(p.grad, e, rtol=1e-10, atol=1e-12, msg=name)
    # with a growth network the potential's loss reads only grad s: its output bias gets no gradient
    assert any(e is None for e in expected) == ("growth" in nets)


def test_written_out_gradients_cover_only_what_they_can():
    nets = torch.nn.ModuleDict({"potential": PotentialNet(PotentialConfig(dim=2))})
    assert backprop.supports(nets, ObjectiveConfig())
    assert not backprop.supports(nets, ObjectiveConfig(estimator="boundary"))
    assert not backprop.supports(nets, ObjectiveConfig(sigma=0.3))
    gelu = torch.nn.ModuleDict({"potential": PotentialNet(PotentialConfig(dim=2, activation="gelu"))})
    assert not backprop.supports(gelu, ObjectiveConfig())
    with pytest.raises(ValueError, match="gelu"):
        gelu["potential"].hidden_pass(torch.rand(4), torch.randn(4, 2), curvature=True)
    plain = torch.nn.ModuleDict({"potential": _Plain(PotentialNet(PotentialConfig(dim=2)))})
    assert not backprop.supports(plain, ObjectiveConfig())


@pytest.mark.parametrize("course", ["geodesic", "branching"])
def test_training_with_written_out_gradients_follows_autograds(monkeypatch, course):
    """The same fit step by step: 30 steps of the training loop with either gradient end at the same weights
    (float32 rounding apart) and the same validation losses; the paper's single potential on a geodesic,
    the default separate growth network on a branching system with growth."""
    from scam.core.config import TrainConfig
    from scam.core.scaling import Scaling
    from scam.core.train import GROWTH_HIDDEN, GROWTH_LAYERS, _build_networks, _build_path, _train
    from scam.datasets._synthetic import branching_growth, gaussian_geodesic

    if course == "geodesic":
        tc = gaussian_geodesic(300, times=(0.0, 0.5, 1.0), rng=0)
        settings = {"growth_model": "potential"}
    else:
        tc = branching_growth(300, times=(0.0, 0.5, 1.0), rng=0)
        settings = {}
    xs, times, masses = tc.xs, np.asarray(tc.times, float), np.asarray(tc.masses, float)
    config = TrainConfig.from_flat(n_steps=30, eval_every=10, growth_weight=1.0, **settings).resolved(
        prior=False, equal_masses=bool(np.allclose(masses, 1)))
    path = _build_path(xs, times, masses, None, Scaling.from_snapshots(xs, times), config,
                       np.random.default_rng(0), False)
    growth = None
    if course == "branching":
        assert path.changes_mass
        growth = PotentialConfig(dim=2, hidden=GROWTH_HIDDEN, n_layers=GROWTH_LAYERS)
    runs = []
    for written_out in (True, False):
        if not written_out:
            monkeypatch.setattr(backprop, "supports", lambda nets, objective: False)
        rng = np.random.default_rng(1)
        net = _build_networks(PotentialConfig(dim=2), growth, rng)
        assert backprop.supports(net, config.objective) == written_out
        ema, history, _ = _train(net, path, config.objective, config.optim, rng, torch.Generator().manual_seed(0),
                                 False)
        runs.append((torch.cat([p.detach().ravel() for p in ema.parameters()]), history["val_loss"]))
    (w1, v1), (w2, v2) = runs
    assert float((w1 - w2).abs().max()) < 1e-4 * float(w2.abs().max())
    np.testing.assert_allclose(v1, v2, rtol=1e-4, atol=1e-6)
