"""CUDA: the layers and flows on a GPU. Every test is skipped where CUDA is not available.

Each builder's round trip, exact log-density (float64 autograd Jacobian), sampling and gradients;
memory="invertible" gradients. Training, checkpoints and the command line are in
test_cuda_training.py, DDP over nccl in test_cuda_ddp.py; the device and the builders in cuda_cases.py.

    FLOWFORGE_TEST_DEVICE=cpu pytest tests/test_cuda*.py    # dry run of the same tests on the CPU
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.distributions import Normal
from torch.testing import assert_close

import flowforge
from flowforge.transforms.recompute import InvertibleCompose

from .cuda_cases import BUILDERS, DEVICE, FEATURES, cloud, needs_device
from .transforms.cases import autograd_logabsdet, randomized

pytestmark = needs_device


def prepared(name: str, dtype: torch.dtype = torch.float64) -> flowforge.Flow:
    """`name` with its Standardize and ActNorms set from data, off its identity init, in eval mode, on DEVICE."""
    torch.manual_seed(0)
    flow = BUILDERS[name]()
    x = cloud(512)
    flow.transform[0].fit_(x)
    with torch.no_grad():
        flow.train().log_prob(x)  # data-dependent initialisation
    return randomized(flow).to(DEVICE, dtype).eval()


def finite_grads(flow: flowforge.Flow) -> None:
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# -- every builder on the GPU ---------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILDERS)
def test_round_trip_and_log_prob_equal_the_autograd_jacobian(name: str) -> None:
    flow = prepared(name)
    x = cloud(6, seed=7).to(DEVICE, torch.float64)
    z = flow.encode(x)
    assert (z.device, z.dtype, z.shape) == (x.device, x.dtype, x.shape)
    assert_close(flow.decode(z), x)
    log_prob = flow.log_prob(x)
    jacobian = autograd_logabsdet(lambda v: flow.transform(v)[0], x)
    assert_close(log_prob, Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(1) + jacobian)
    with torch.no_grad():  # without autograd the hand-written coupling kernels run instead
        assert_close(flow.log_prob(x), log_prob)
        assert_close(flow.decode(z), x)
    assert_close(copy.deepcopy(flow).cpu().log_prob(x.cpu()), log_prob.detach().cpu())


@pytest.mark.parametrize("name", BUILDERS)
def test_sampling_and_gradients(name: str) -> None:
    flow = prepared(name, torch.float32)
    x, log_prob = flow.sample_and_log_prob(300, chunk_size=128)
    assert x.shape == (300, FEATURES) and x.device.type == DEVICE.type and torch.isfinite(x).all()
    assert_close(log_prob, flow.log_prob(x), rtol=1e-3, atol=1e-3)
    assert not flow.sample(5, temperature=0.5).requires_grad
    (-flow.log_prob(cloud(64).to(DEVICE)).mean()).backward()
    finite_grads(flow)


def test_arrays_and_lists_land_on_the_flow_device() -> None:
    flow = flowforge.MAF(2, layers=2, hidden=(8,), context_features=1).to(DEVICE)
    log_prob = flow.log_prob(np.zeros((3, 2), dtype=np.float32), context=[[0.5], [0.0], [1.0]])
    assert log_prob.device.type == DEVICE.type and torch.isfinite(log_prob).all()
    assert flow.sample(4, context=[0.5]).device.type == DEVICE.type
    assert flow.distribution([0.5]).sample((3,)).device.type == DEVICE.type



# -- memory="invertible" ----------------------------------------------------------------------------
INVERTIBLE = {
    "realnvp": (flowforge.RealNVP, {}),  # fused couplings: the hand-written backward of fused.py
    "realnvp_context": (flowforge.RealNVP, {"context_features": 3, "mask": "alternating"}),
    "realnvp_batchnorm": (flowforge.RealNVP, {"norm": "batchnorm"}),  # a layer that falls back to autograd
    "nice": (flowforge.NICE, {}),
    "glow": (flowforge.Glow, {}),
}


@pytest.mark.parametrize("name", INVERTIBLE)
def test_invertible_memory_gradients_equal_autograd(name: str) -> None:
    builder, kwargs = INVERTIBLE[name]
    torch.manual_seed(0)
    standard = builder(4, 4, (32, 32), **kwargs).to(DEVICE, torch.float64)
    x = torch.randn(128, 4, dtype=torch.float64, device=DEVICE) * 2 + 1
    context = torch.randn(128, 3, dtype=torch.float64, device=DEVICE) if "context_features" in kwargs else None
    optimizer = torch.optim.Adam(standard.parameters(), lr=1e-2)
    for step in range(30):  # trained at a high learning rate (ActNorm initialised on the first batch):
        rows = slice(32 * (step % 4), 32 * (step % 4 + 1))  # where round-trip drift is largest
        optimizer.zero_grad()
        (-standard.train().log_prob(x[rows], None if context is None else context[rows]).mean()).backward()
        optimizer.step()
    invertible = builder(4, 4, (32, 32), memory="invertible", **kwargs).to(DEVICE, torch.float64)
    invertible.load_state_dict(standard.state_dict())
    assert isinstance(invertible.transform, InvertibleCompose)
    grads = []
    for flow in (standard, invertible):
        inputs = [*flow.parameters(), x.requires_grad_()] + ([context.requires_grad_()] if context is not None else [])
        grads.append(torch.autograd.grad(flow.train().log_prob(x, context).mean(), inputs))
    for i, (ours, reference) in enumerate(zip(grads[1], grads[0])):
        error = float((ours - reference).norm() / reference.norm().clamp_min(1e-30))
        assert error <= 1e-10, f"gradient {i}: relative error {error:.2e}"

