"""Flow: sampling, encode/decode, temperature, torch.distributions bases, input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal
from torch.testing import assert_close

import flowforge
from flowforge import DiagNormal, Flow, FlowforgeError, StandardNormal
from flowforge.nn import MLP
from flowforge.transforms import AffineCoupling, Compose, LULinear, Reverse, alternating_mask

from ..transforms.cases import autograd_logabsdet, randomized


def realnvp(features: int = 2, **kwargs) -> Flow:
    """A small RealNVP moved off its identity init."""
    return randomized(flowforge.RealNVP(features, layers=3, hidden=(16, 16), **kwargs)).eval()


def hand_built_transform(features: int = 2) -> Compose:
    coupling = AffineCoupling(alternating_mask(features), lambda i, o: MLP(i, o, (8,)))
    return randomized(Compose([coupling, Reverse(), LULinear(features, seed=0)]))


def test_encode_decode_shapes_and_inverse() -> None:
    flow = realnvp(3)
    x = torch.randn(10, 3)
    z = flow.encode(x)
    assert z.shape == (10, 3) and z.dtype == torch.float32
    assert_close(z, flow.transform(x)[0])
    assert_close(flow.decode(z), x, rtol=1e-4, atol=1e-4)
    assert flow.encode(x[:1]).shape == flow.decode(z[:1]).shape == (1, 3)


@pytest.mark.parametrize("n", [0, 1, 7])
def test_sample_shapes(n: int) -> None:
    flow = realnvp(3)
    x = flow.sample(n)
    assert x.shape == (n, 3) and x.dtype == torch.float32 and not x.requires_grad
    x, log_prob = flow.sample_and_log_prob(n)
    assert x.shape == (n, 3) and log_prob.shape == (n,)


def test_sampling_in_chunks_gives_every_row() -> None:
    flow = realnvp(2)
    x, log_prob = flow.sample_and_log_prob(10, chunk_size=3)
    assert x.shape == (10, 2) and log_prob.shape == (10,)
    assert torch.unique(x, dim=0).shape[0] == 10
    assert flow.sample(10, chunk_size=4).shape == (10, 2)


@pytest.mark.parametrize("base", ["standard", "diag"])
def test_sample_and_log_prob_agrees_with_log_prob(base: str) -> None:
    flow = realnvp(3, base=base).double()
    with torch.no_grad():
        flow.base.log_scale.add_(0.5) if base == "diag" else None
    x, log_prob = flow.sample_and_log_prob(50, chunk_size=16)
    assert x.dtype == torch.float64
    assert_close(log_prob, flow.log_prob(x), rtol=0, atol=1e-9)
    x, log_prob = flow.sample_and_log_prob(50, temperature=0.7)
    assert_close(log_prob, flow.log_prob(x), rtol=0, atol=1e-9)


def test_sample_and_log_prob_in_float32() -> None:
    flow = realnvp(2)
    x, log_prob = flow.sample_and_log_prob(100)
    assert_close(log_prob, flow.log_prob(x), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("builder", ["Glow", "NSF", "MAF"])
def test_half_precision_flows_sample_and_decode(builder: str, dtype: torch.dtype) -> None:
    """LU layers invert with float32 solves (torch has no half-precision ones on the CPU)."""
    flow = randomized(getattr(flowforge, builder)(4, layers=2, hidden=(8,))).eval().to(dtype)
    x = flow.sample(6)
    assert x.dtype == dtype and torch.isfinite(x.float()).all()
    assert flow.decode(flow.encode(x)).dtype == dtype


def test_samples_that_overflow_are_named_in_a_warning() -> None:
    flow = realnvp(2)
    with pytest.warns(RuntimeWarning, match="5 of 5 rows are NaN or Inf"):
        flow.sample(5, temperature=1e300)  # z overflows float32
    with pytest.warns(RuntimeWarning, match="of 7 rows"):
        flow.sample_and_log_prob(7, temperature=1e300, chunk_size=3)


@pytest.mark.parametrize("base", ["standard", "diag"])
def test_lower_temperature_gives_smaller_spread(base: str) -> None:
    flow = realnvp(2, base=base)
    spread = {t: flow.sample(4000, temperature=t).std(0) for t in (0.5, 1.0)}
    assert (spread[0.5] < 0.8 * spread[1.0]).all()
    identity = Flow(Compose([]), StandardNormal(2))
    assert_close(identity.sample(20000, temperature=0.5).std(0), torch.full((2,), 0.5), rtol=0.05, atol=0)


def test_log_prob_integrates_to_where_samples_land() -> None:
    """2-D: the density's mass on a grid over a box equals the fraction of samples in that box."""
    flow = realnvp(2)
    grid = torch.linspace(-8, 8, 401)
    step = (grid[1] - grid[0]).item()
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    with torch.no_grad():
        mass = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().sum().item() * step**2
    inside = (flow.sample(50000).abs() <= 8 + step / 2).all(1).float().mean().item()
    assert mass > 0.5
    assert abs(mass - inside) < 0.01


BASES = {
    "independent_normal": lambda: Independent(Normal(torch.zeros(2), torch.ones(2)), 1),
    "plain_normal": lambda: Normal(torch.zeros(2), torch.ones(2)),
    "multivariate_normal": lambda: MultivariateNormal(torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 0.6], [0.6, 0.5]])),
}


@pytest.mark.parametrize("base", BASES)
def test_any_torch_distribution_works_as_base(base: str) -> None:
    distribution = BASES[base]()
    flow = Flow(hand_built_transform(), distribution).eval()
    assert flow.event_shape == (2,)
    x = torch.randn(6, 2)
    log_prob = flow.log_prob(x)
    assert log_prob.shape == (6,)
    expected = distribution.log_prob(flow.encode(x))
    expected = expected.sum(1) if expected.dim() == 2 else expected
    assert_close(log_prob, expected + autograd_logabsdet(flow.encode, x), rtol=1e-5, atol=1e-5)
    samples, sample_log_prob = flow.sample_and_log_prob(8)
    assert samples.shape == (8, 2)
    assert_close(sample_log_prob, flow.log_prob(samples), rtol=1e-4, atol=1e-4)
    hot, cold = flow.encode(flow.sample(4000)), flow.encode(flow.sample(4000, temperature=0.5))
    assert_close(cold.std(0) / hot.std(0), torch.full((2,), 0.5), rtol=0.1, atol=0)


def test_torch_distribution_base_matches_the_built_in_standard_normal() -> None:
    transform = hand_built_transform()
    x = torch.randn(6, 2)
    reference = Flow(transform, StandardNormal(2)).log_prob(x)
    for make in (BASES["independent_normal"], BASES["plain_normal"]):
        assert_close(Flow(transform, make()).log_prob(x), reference)


def test_flow_needs_an_event_shape() -> None:
    class Bare:
        def log_prob(self, z):
            return z.sum(1)

    with pytest.raises(FlowforgeError, match="event_shape"):
        Flow(Compose([]), Bare())
    assert Flow(Compose([]), Bare(), event_shape=(3,)).log_prob(torch.ones(2, 3)).tolist() == [3.0, 3.0]


def test_diag_normal_base_is_learnable_and_exact() -> None:
    base = DiagNormal(3)
    with torch.no_grad():
        base.loc.copy_(torch.tensor([1.0, 0.0, -2.0]))
        base.log_scale.copy_(torch.tensor([0.0, 1.0, -1.0]))
    z = torch.randn(5, 3)
    assert_close(base.log_prob(z), Normal(base.loc, base.log_scale.exp()).log_prob(z).sum(1))
    samples = base.sample((20000,))
    assert_close(samples.mean(0), base.loc, rtol=0, atol=0.05)
    assert_close(samples.std(0), base.log_scale.exp(), rtol=0.03, atol=0)


@pytest.mark.parametrize(
    "bad",
    [
        torch.randn(4, 3),  # wrong feature count
        torch.randn(2),  # no batch dimension
        torch.randn(4, 2, 1),  # extra dimension
        torch.tensor([[0.0, float("nan")]]),
        torch.tensor([[float("inf"), 0.0]]),
        torch.ones(4, 2, dtype=torch.bool),
        torch.ones(4, 2, dtype=torch.complex64),
        "x",
    ],
    ids=["features", "1d", "3d", "nan", "inf", "bool", "complex", "string"],
)
@pytest.mark.parametrize("method", ["log_prob", "encode", "decode"])
def test_bad_inputs_raise(bad, method: str) -> None:
    flow = realnvp(2)
    with pytest.raises(FlowforgeError):
        getattr(flow, method)(bad)


def test_float_inputs_of_any_precision_are_accepted() -> None:
    flow = realnvp(2)
    x = torch.randn(3, 2)
    expected = flow.log_prob(x)
    assert_close(flow.log_prob(x.double()), expected)
    assert_close(flow.log_prob(x.tolist()), expected)  # nested lists become float tensors
    assert flow.log_prob(x.double()).dtype == torch.float32
    counts = torch.tensor([[0, 3], [2, 1]])  # integers (pixel levels, counts) are cast, as fit casts them
    assert_close(flow.log_prob(counts), flow.log_prob(counts.float()))
    assert_close(flow.encode(counts.to(torch.uint8)), flow.encode(counts.float()))


@pytest.mark.parametrize("n", [-1, 2.5, True, None, "3"])
def test_bad_sample_count_raises(n) -> None:
    with pytest.raises(FlowforgeError, match="n must be"):
        realnvp(2).sample(n)


@pytest.mark.parametrize("temperature", [0, -0.5, float("inf"), float("nan"), "1", None])
def test_bad_temperature_raises(temperature) -> None:
    flow = realnvp(2)
    with pytest.raises(FlowforgeError, match="temperature"):
        flow.sample(3, temperature=temperature)
    with pytest.raises(FlowforgeError, match="temperature"):
        flow.sample_and_log_prob(3, temperature=temperature)


def test_context_rules() -> None:
    unconditional = realnvp(2)
    with pytest.raises(FlowforgeError, match="unconditional"):
        unconditional.log_prob(torch.randn(3, 2), torch.randn(3, 1))
    flow = realnvp(2, context_features=3)
    x, context = torch.randn(4, 2), torch.randn(3)
    with pytest.raises(FlowforgeError, match="conditional"):
        flow.log_prob(x)
    for bad in (torch.randn(4, 2), torch.randn(5, 3), torch.randn(4, 3, 1), torch.tensor([[math.nan] * 3] * 4)):
        with pytest.raises(FlowforgeError, match="context"):
            flow.log_prob(x, bad)
    # one (context_features,) vector is shared by the whole batch
    assert_close(flow.log_prob(x, context), flow.log_prob(x, context.expand(4, 3)))
    assert flow.sample(5, context=context).shape == (5, 2)
    with pytest.raises(FlowforgeError, match="context"):
        flow.sample(5, context=torch.randn(4, 3))
    samples, log_prob = flow.sample_and_log_prob(5, context=context)
    assert_close(log_prob, flow.log_prob(samples, context), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n", [np.int64(3), torch.tensor(3), 3])
def test_any_integer_sample_count_is_accepted(n) -> None:
    assert realnvp(2).sample(n).shape == (3, 2)


@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True])
def test_bad_chunk_size_raises(chunk_size) -> None:
    with pytest.raises(FlowforgeError, match="chunk_size must be a positive integer"):
        realnvp(2).sample(10, chunk_size=chunk_size)


def test_a_context_is_cast_to_the_flows_dtype_and_checked_there() -> None:
    flow = realnvp(2, context_features=1)
    x = torch.randn(2, 2)
    with pytest.raises(FlowforgeError, match="context: values too large for this flow's float32"):
        flow.log_prob(x, torch.full((2, 1), 1e40, dtype=torch.float64))  # was -inf, no error
    with pytest.raises(FlowforgeError, match="context: expected a tensor or an array of numbers"):
        flow.log_prob(x, ["a", "b"])
    expected = flow.log_prob(x, torch.tensor([[1.0], [0.0]]))
    assert_close(flow.log_prob(x, torch.tensor([[1], [0]])), expected)  # integer labels
    assert_close(flow.log_prob(x, torch.tensor([[True], [False]])), expected)
