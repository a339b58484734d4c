"""The GPU path (``pytest -m gpu``; skipped without CUDA): device="auto" trains on the GPU, the model
is as accurate as on the CPU against ground truth, and everything downstream reads it back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scam
from scam.core import TrainConfig, fit
from scam.datasets._synthetic import gaussian_geodesic

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _err(model, tc):
    x = np.concatenate(tc.xs)
    truth = tc.velocity(x, 0.5)
    return np.sqrt(np.mean(np.sum((model.velocity(x, 0.5) - truth) ** 2, axis=1) / np.mean(np.sum(truth**2, axis=1))))


def test_auto_device_trains_on_the_gpu_as_accurately_as_the_cpu():
    tc = gaussian_geodesic(n_cells=1000, times=(0.0, 0.5, 1.0), rng=0)
    cfg = TrainConfig.from_flat(n_steps=1500)
    gpu = fit(tc.xs, tc.times, config=cfg, rng=0, device="auto", progress=False)
    assert gpu.device.type == "cuda"
    cpu = fit(tc.xs, tc.times, config=cfg, rng=0, device="cpu", progress=False)
    e_gpu, e_cpu = _err(gpu, tc), _err(cpu, tc)
    assert e_gpu < 0.1 and abs(e_gpu - e_cpu) < 0.05, (e_gpu, e_cpu)
    # a GPU model saved and read back on the CPU gives the same field
    back = scam.ActionModel.from_dict(gpu.to_dict(), device="cpu")
    x = np.concatenate(tc.xs)
    np.testing.assert_allclose(back.velocity(x, 0.5), gpu.velocity(x, 0.5), rtol=1e-4, atol=1e-5)


def test_anndata_workflow_on_the_gpu():
    adata = scam.datasets.simulate("branching", n_cells=300, rng=0)
    scam.tl.action_matching(adata, "time", use_rep="X_pca", device="auto", rng=0, progress=False,
                            config={"n_steps": 300})
    assert adata.uns["action_matching"]["params"]["device"].startswith("cuda")
    assert np.isfinite(adata.obsm["action_matching_velocity"]).all()
    model = scam.tl.get_model(adata, device="cuda")
    x = adata.obsm["X_pca"][:100]
    np.testing.assert_allclose(model.velocity(x, 0.5), scam.tl.get_model(adata).velocity(x, 0.5), rtol=1e-4, atol=1e-5)
    scam.tl.simulate(adata)
    assert np.isfinite(adata.uns["action_matching_simulation"]["positions"]).all()
