"""Bits per dimension on the pixel scale, checked on models whose answer is known."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Uniform

import flowforge
from flowforge import Flow
from flowforge.metrics import nats_to_bits_per_dim
from flowforge.transforms import Dequantize


def uniform_model(levels: int, shape: tuple[int, ...] = (1, 4, 4), margin: float = 0.0) -> Flow:
    """Dequantize into the unit box, where the base is uniform: P(x) = levels ** -D exactly."""
    base = Independent(Uniform(torch.zeros(shape), torch.ones(shape)), len(shape))
    return Flow(Dequantize(levels, margin=margin), base)


def test_nats_to_bits_per_dim() -> None:
    assert nats_to_bits_per_dim(64 * 3 * math.log(2), 64) == pytest.approx(3.0)


@pytest.mark.parametrize(("levels", "bits"), [(4, 2.0), (256, 8.0), (2, 1.0)])
def test_a_uniform_model_scores_exactly_its_bits(levels: int, bits: float) -> None:
    x = torch.randint(0, levels, (20, 3, 4, 4))
    assert flowforge.bits_per_dim(uniform_model(levels, (3, 4, 4)), x) == pytest.approx(bits, abs=1e-6)


def test_the_noise_margin_costs_what_it_says() -> None:
    x = torch.randint(0, 4, (10, 1, 4, 4))
    expected = 2.0 - math.log2(1 - 2e-4)
    assert flowforge.bits_per_dim(uniform_model(4, margin=1e-4), x) == pytest.approx(expected, abs=1e-6)


def test_seeded_bits_per_dim_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    flow = flowforge.Glow((1, 4, 4), levels=1, steps_per_level=1, hidden_channels=4, pixel_levels=4, logit=0.05)
    x = torch.randint(0, 4, (8, 1, 4, 4))
    state = torch.get_rng_state()
    first = flowforge.bits_per_dim(flow, x, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert flowforge.bits_per_dim(flow, x, seed=3) == first
    assert flowforge.bits_per_dim(flow, x, seed=4) != first


def test_bits_per_dim_of_a_conditional_flow_uses_the_context() -> None:
    torch.manual_seed(0)
    flow = flowforge.RealNVP(3, 2, (8, 8), context_features=2)
    for p in flow.parameters():  # a flow whose density depends on the context
        torch.nn.init.normal_(p, std=0.3)
    x, context = torch.randn(50, 3), torch.randn(50, 2)
    expected = -flow.eval().log_prob(x, context).mean().item() / (3 * math.log(2))
    assert flowforge.bits_per_dim(flow, x, context=context) == pytest.approx(expected, rel=1e-6)
    assert flowforge.bits_per_dim(flow, x, context=context) != pytest.approx(flowforge.bits_per_dim(flow, x, context=-context))
    with pytest.raises(flowforge.FlowforgeError, match="context"):
        flowforge.bits_per_dim(flow, x)
