"""MAF, IAF, NSF (coupling and autoregressive): exact, invertible, conditional, registered, trainable."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import Tensor
from torch.distributions import Normal
from torch.testing import assert_close

import flowforge
from flowforge import FlowforgeError

from ..transforms.cases import autograd_logabsdet, randomized

BUILDERS = {
    "maf": lambda d, **kw: flowforge.MAF(d, layers=3, hidden=(16, 16), **kw),
    "maf_residual_random": lambda d, **kw: flowforge.MAF(d, layers=2, hidden=(16, 16), residual=True, permute="random", **kw),
    "iaf": lambda d, **kw: flowforge.IAF(d, layers=2, hidden=(16,), permute="lu", **kw),
    "nsf": lambda d, **kw: flowforge.NSF(d, layers=3, hidden=(16,), bins=4, **kw),
    "nsf_reverse": lambda d, **kw: flowforge.NSF(d, layers=2, hidden=(16,), bins=4, permute="reverse", **kw),
    "nsf-ar": lambda d, **kw: flowforge.build_model("nsf-ar", features=d, layers=2, hidden=(16,), bins=4, **kw),
}


def curved(n: int, seed: int = 7) -> Tensor:
    a, b, c = torch.randn(3, n, generator=torch.Generator().manual_seed(seed))
    return torch.stack([2 * a + 1, a**2 + 0.3 * b - 1, torch.sin(2 * a) + 0.2 * c], 1)


@pytest.mark.parametrize("context_features", [0, 2])
@pytest.mark.parametrize("name", BUILDERS)
def test_log_prob_is_base_density_plus_autograd_logabsdet(name: str, context_features: int) -> None:
    flow = randomized(BUILDERS[name](3, context_features=context_features)).double().eval()
    x = curved(5).double()
    context = torch.randn(5, 2, dtype=torch.float64) if context_features else None
    z, logabsdet = flow.transform(x, context)
    assert_close(flow.decode(z, context), x)
    assert_close(logabsdet, autograd_logabsdet(lambda v, *c: flow.transform(v, *c)[0], x, context))
    expected = Normal(0.0, 1.0).log_prob(z).sum(1) + logabsdet
    assert_close(flow.log_prob(x, context), expected)
    x_new, log_prob = flow.sample_and_log_prob(4, context=None if context is None else context[:4])
    assert_close(log_prob, flow.log_prob(x_new, None if context is None else context[:4]))


@pytest.mark.parametrize("name", BUILDERS)
def test_shares_the_flow_api_and_gets_gradients_everywhere(name: str) -> None:
    flow = randomized(BUILDERS[name](3)).train()
    assert isinstance(flow, flowforge.Flow) and flow.event_shape == (3,)
    assert isinstance(flow.transform, flowforge.transforms.Compose) and isinstance(flow.base, flowforge.StandardNormal)
    assert flow.sample(5).shape == flow.encode(curved(5)).shape == flow.decode(torch.randn(5, 3)).shape == (5, 3)
    (-flow.log_prob(curved(32)).mean()).backward()
    for pname, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ["maf", "iaf", "nsf_reverse", "nsf-ar"])
def test_untrained_flows_are_the_standard_normal(name: str) -> None:
    """Zero-initialised last layers (and Reverse between layers): exactly N(0, I) at init."""
    flow = BUILDERS[name](3, standardize=False) if name != "iaf" else flowforge.IAF(3, layers=2, hidden=(8,), standardize=False)
    x = 2 * torch.randn(6, 3)
    assert_close(flow.log_prob(x), Normal(0.0, 1.0).log_prob(x).sum(1))


def test_registry_names_signatures_and_checkpoints(tmp_path) -> None:
    for name in ["maf", "iaf", "nsf", "nsf-ar"]:
        parameters = inspect.signature(flowforge.MODELS[name]).parameters
        assert list(parameters)[:3] == ["features", "layers", "hidden"]
        assert parameters["context_features"].kind is inspect.Parameter.KEYWORD_ONLY
    flow = randomized(BUILDERS["nsf-ar"](3, context_features=2))
    assert flow.spec["model"] == "nsf-ar" and "autoregressive" not in flow.spec["kwargs"]
    assert [type(t).__name__ for t in flow.transform][1:] == ["MaskedAutoregressive", "LULinear", "MaskedAutoregressive"]
    x, context = curved(4), torch.randn(4, 2)
    loaded = flowforge.load(flowforge.save(flow, tmp_path / "nsf-ar.pt"))
    assert_close(loaded.log_prob(x, context), flow.log_prob(x, context))


def test_conditional_sampling_shapes_and_context_broadcast() -> None:
    flow = randomized(flowforge.MAF(3, layers=2, hidden=(8,), context_features=2, base="conditional")).eval()
    assert isinstance(flow.base, flowforge.ConditionalDiagNormal)
    one = torch.tensor([0.5, -1.0])
    torch.manual_seed(3)
    broadcast = flow.sample(6, context=one)
    torch.manual_seed(3)
    per_row = flow.sample(6, context=one.expand(6, 2))
    assert broadcast.shape == (6, 3) and torch.equal(broadcast, per_row)
    assert flow.sample(0, context=one).shape == (0, 3)
    x = curved(6)
    assert_close(flow.log_prob(x, one), flow.log_prob(x, one.expand(6, 2)))
    assert not torch.allclose(flow.log_prob(x, one), flow.log_prob(x, -one))
    for bad in [None, torch.zeros(3), torch.zeros(5, 2), torch.zeros(6, 3)]:
        with pytest.raises(FlowforgeError, match="context"):
            flow.log_prob(x, bad)


@pytest.mark.parametrize(
    "build",
    [
        lambda: flowforge.NSF(1),  # a coupling needs two features
        lambda: flowforge.NSF(2, bins=1),
        lambda: flowforge.MAF(0),
        lambda: flowforge.MAF(2, permute="zigzag"),
        lambda: flowforge.IAF(2, hidden=(8, 16), residual=True),
        lambda: flowforge.MAF(2, base="conditional"),  # no context to condition on
        lambda: flowforge.build_model("nsf-ar", features=2, autoregressive=False),
    ],
)
def test_bad_builder_arguments_raise(build) -> None:
    with pytest.raises(FlowforgeError):
        build()


@pytest.mark.parametrize("name", ["maf", "nsf-ar"])
def test_conditional_flow_learns_a_gaussian_simulator(name: str) -> None:
    """x | theta ~ N(theta, 0.5^2), theta ~ U(-2, 2); 1,500 steps of batch 512 (the issue's bar):
    samples at theta = -1 and 1.5 have mean within 0.05 of theta and std within 10% of 0.5."""
    generator = torch.Generator().manual_seed(0)
    theta = 4 * torch.rand(20_000, 1, generator=generator) - 2
    x = theta + 0.5 * torch.randn(20_000, 1, generator=generator)
    flow = flowforge.build_model(name, features=1, layers=1, hidden=(32,), context_features=1)
    flowforge.fit(flow, x, context=theta, steps=1500, batch_size=512, lr=3e-3, val_fraction=0, progress=False)
    for value in (-1.0, 1.5):
        samples = flow.sample(40_000, context=torch.tensor([value]))
        assert abs(samples.mean().item() - value) < 0.05
        assert abs(samples.std().item() / 0.5 - 1) < 0.10
