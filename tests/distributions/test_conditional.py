"""ConditionalDiagNormal: exact log-density, sample shapes, temperature, named context errors."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal
from torch.testing import assert_close

from flowforge import ConditionalDiagNormal, FlowforgeError

from ..transforms.cases import randomized


def test_log_prob_matches_torch_and_starts_standard() -> None:
    base, context, z = ConditionalDiagNormal(3, 2, hidden=(8,)), torch.randn(5, 2), torch.randn(5, 3)
    assert_close(base.log_prob(z, context), Normal(0.0, 1.0).log_prob(z).sum(1))
    randomized(base)
    out = base.net(context)
    mean, scale = out[:, :3], (base.bound * torch.tanh(out[:, 3:] / base.bound)).exp()
    assert_close(base.log_prob(z, context), Normal(mean, scale).log_prob(z).sum(1))


def test_sample_shapes_temperature_and_context_effect() -> None:
    base = randomized(ConditionalDiagNormal(2, 1, hidden=(8,)))
    context = torch.tensor([[1.0]]).expand(4000, 1)
    assert base.sample(4000, context=context).shape == (4000, 2)
    assert base.sample((2, 3), context=torch.randn(6, 1)).shape == (2, 3, 2)
    spread = base.sample(4000, context=context).std(0)
    assert_close(base.sample(4000, temperature=0.5, context=context).std(0), 0.5 * spread, rtol=0.1, atol=0)
    assert not torch.allclose(base.log_prob(torch.zeros(1, 2), context[:1]), base.log_prob(torch.zeros(1, 2), -context[:1]))


@pytest.mark.parametrize("context", [None, torch.zeros(3, 2), torch.zeros(4, 1), torch.zeros(3)])
def test_wrong_context_raises(context) -> None:
    with pytest.raises(FlowforgeError, match="context"):
        ConditionalDiagNormal(2, 1).log_prob(torch.zeros(3, 2), context)


def test_needs_a_context() -> None:
    with pytest.raises(FlowforgeError, match="context_features"):
        ConditionalDiagNormal(2, 0)
