"""flow.distribution(): a torch.distributions.Distribution with the right shapes and gradients."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import Distribution, Normal
from torch.testing import assert_close

import flowforge
from flowforge import FlowDistribution, FlowforgeError

from ..transforms.cases import randomized


@pytest.fixture(autouse=True)
def _float64():
    """These tests check bookkeeping (shapes, batching, contexts), comparing one batch with its parts. In
    float32 the parts round differently from the whole (another BLAS blocking: 2e-5 apart under
    MKL_CBWR=COMPATIBLE), so they run in float64, where rounding stays ~1e-15, far below any tolerance."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


def conditional_maf() -> flowforge.Flow:
    return randomized(flowforge.MAF(2, layers=2, hidden=(8,), context_features=3, base="conditional")).eval()


def test_unconditional_shapes_and_log_prob() -> None:
    flow = randomized(flowforge.NSF(3, layers=2, hidden=(8,), bins=4)).eval()
    q = flow.distribution()
    assert isinstance(q, Distribution) and q.has_rsample
    assert q.batch_shape == () and q.event_shape == (3,)
    assert q.sample().shape == (3,) and q.sample((4, 5)).shape == (4, 5, 3)
    x = torch.randn(4, 5, 3)
    assert_close(q.log_prob(x), flow.log_prob(x.reshape(20, 3)).reshape(4, 5))
    assert q.log_prob(x[0, 0]).shape == ()


def test_a_batch_of_contexts_is_a_batch_of_distributions() -> None:
    flow, context = conditional_maf(), torch.randn(4, 3)
    q = flow.distribution(context)
    assert q.batch_shape == (4,) and q.event_shape == (2,)
    x = q.sample((5,))
    assert x.shape == (5, 4, 2) and not x.requires_grad
    expected = torch.stack([flow.log_prob(x[:, b], context[b]) for b in range(4)], dim=1)
    assert_close(q.log_prob(x), expected)
    assert q.log_prob(x[0]).shape == (4,)
    assert q.log_prob(torch.zeros(2)).shape == (4,)  # one value, scored under each context


def test_each_batch_member_samples_under_its_own_context() -> None:
    flow, context = conditional_maf(), torch.randn(2, 3)
    torch.manual_seed(5)
    x = flow.distribution(context).sample((4,))
    torch.manual_seed(5)
    expected = flow.sample(8, context=context.repeat(4, 1)).reshape(4, 2, 2)  # row k * B + b: context b
    assert_close(x, expected)
    assert not torch.allclose(x[:, 0], x[:, 1])


def test_a_single_context_vector_gives_an_unbatched_distribution() -> None:
    flow, context = conditional_maf(), torch.randn(3)
    q = flow.distribution(context)
    assert q.batch_shape == () and q.sample((7,)).shape == (7, 2)
    x = torch.randn(7, 2)
    assert_close(q.log_prob(x), flow.log_prob(x, context))


def test_rsample_gradients_reach_the_flow_parameters() -> None:
    flow = randomized(flowforge.IAF(2, layers=2, hidden=(8,), context_features=3, base="conditional")).train()
    x = flow.distribution(torch.randn(4, 3)).rsample((3,))
    assert x.shape == (3, 4, 2) and x.requires_grad
    (x**2).sum().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_works_as_a_variational_posterior() -> None:
    """A few steps of ELBO on a Gaussian target, written only against the Distribution API."""
    torch.manual_seed(0)
    flow = flowforge.IAF(2, layers=2, hidden=(16,), standardize=False)
    target = Normal(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0]))
    optimizer = torch.optim.Adam(flow.parameters(), lr=2e-2)

    def kl(q: Distribution) -> torch.Tensor:
        x = q.rsample((128,))
        return (q.log_prob(x) - target.log_prob(x).sum(-1)).mean()

    start = kl(flow.distribution()).item()
    for _ in range(40):
        optimizer.zero_grad()
        kl(flow.distribution()).backward()
        optimizer.step()
    assert kl(flow.distribution()).item() < start - 1.0


def test_bad_contexts_and_values_raise() -> None:
    with pytest.raises(FlowforgeError, match="context"):
        conditional_maf().distribution()
    with pytest.raises(FlowforgeError, match="context"):
        conditional_maf().distribution(torch.zeros(2, 4))
    with pytest.raises(FlowforgeError, match="context"):
        conditional_maf().distribution(torch.zeros(2, 2, 3))
    with pytest.raises(FlowforgeError, match="unconditional"):
        flowforge.MAF(2, hidden=(8,)).distribution(torch.zeros(3))
    with pytest.raises(ValueError):
        FlowDistribution(flowforge.MAF(2, hidden=(8,)), validate_args=True).log_prob(torch.zeros(4, 3))
