"""Builders (RealNVP, NICE, Glow and their options): invertible, exact log_prob, trainable, specced."""
from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor
from torch.distributions import Normal
from torch.testing import assert_close

import flowforge
from flowforge import DiagNormal, Flow, FlowforgeError, StandardNormal

from ..transforms.cases import autograd_logabsdet, randomized

BUILDERS = {
    "realnvp": lambda d: flowforge.RealNVP(d, layers=3, hidden=(16, 16)),
    "realnvp_batchnorm": lambda d: flowforge.RealNVP(d, layers=3, hidden=(16, 16), norm="batchnorm"),
    "realnvp_actnorm": lambda d: flowforge.RealNVP(d, layers=3, hidden=(16, 16), norm="actnorm"),
    "realnvp_diag_base": lambda d: flowforge.RealNVP(d, layers=3, hidden=(16, 16), base="diag"),
    "realnvp_alternating": lambda d: flowforge.RealNVP(d, layers=3, hidden=(16, 16), mask="alternating"),
    "nice": lambda d: flowforge.NICE(d, layers=3, hidden=(16, 16)),
    "glow": lambda d: flowforge.Glow(d, layers=2, hidden=(16, 16)),
}
FEATURES = 4


def wiggly(n: int, generator: torch.Generator) -> Tensor:
    """A curved, correlated, off-centre 4-D cloud: nothing a flow fits at init."""
    a, b, c, d = torch.randn(4, n, generator=generator)
    return torch.stack([3 * a + 5, a**2 + 0.3 * b - 1, torch.sin(2 * a) + 0.2 * c, 0.1 * d + a * b], 1)


@functools.cache
def _trained(name: str) -> Flow:
    torch.manual_seed(1)
    flow = BUILDERS[name](FEATURES)
    x = wiggly(1024, torch.Generator().manual_seed(1))
    flowforge.fit(flow, x, steps=100, batch_size=64, lr=3e-3, val_fraction=0, progress=False)
    return flow


def trained(name: str) -> Flow:
    """`name` after 100 steps of fit on `wiggly` (trained once per session; a fresh copy each call)."""
    return copy.deepcopy(_trained(name))


def at_random_init(name: str) -> Flow:
    return randomized(BUILDERS[name](FEATURES)).eval()


STATES = {"random": at_random_init, "trained": trained}


def reference_base_log_prob(base: torch.nn.Module, z: Tensor) -> Tensor:
    """The base density written out with torch.distributions, independent of flowforge's maths."""
    if isinstance(base, StandardNormal):
        return Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(1)
    assert isinstance(base, DiagNormal)
    return Normal(base.loc, base.log_scale.exp()).log_prob(z).sum(1)


def sample_data(n: int = 6) -> Tensor:
    return wiggly(n, torch.Generator().manual_seed(7))


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", BUILDERS)
def test_log_prob_is_base_density_plus_autograd_logabsdet(name: str, state: str) -> None:
    flow = STATES[state](name).double()
    x = sample_data().double()
    z = flow.encode(x)
    expected = reference_base_log_prob(flow.base, z) + autograd_logabsdet(flow.encode, x)
    assert_close(flow.log_prob(x), expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", BUILDERS)
def test_trained_flow_round_trips_in_float32(name: str) -> None:
    """Under 1e-5, relative to max(1, |x|). (Random init is checked in float64 below: a flow
    whose weights were all jolted by `randomized` is far worse conditioned than a trained one.)"""
    flow = trained(name)
    x = sample_data(256)
    z = flow.encode(x)
    assert z.dtype == torch.float32 and (z - x).abs().max() > 0.1, "the flow should not be the identity"
    assert ((flow.decode(z) - x).abs() / x.abs().clamp_min(1)).max() < 1e-5
    z = torch.randn(256, FEATURES)
    assert ((flow.encode(flow.decode(z)) - z).abs() / z.abs().clamp_min(1)).max() < 1e-5


def test_training_set_the_data_dependent_layers() -> None:
    """Guards the 'trained' state above: the Standardize and ActNorm layers really moved."""
    for name in ("realnvp_actnorm", "glow"):
        flow = trained(name)
        assert bool(flow.transform[0].is_fitted) and flow.transform[0].mean.abs().max() > 1
        actnorms = [t for t in flow.transform if isinstance(t, flowforge.transforms.ActNorm)]
        assert actnorms and all(bool(t.is_initialized) for t in actnorms)
    running_means = [t.running_mean for t in trained("realnvp_batchnorm").transform if isinstance(t, flowforge.transforms.BatchNorm)]
    assert running_means and all(m.abs().max() > 0.01 for m in running_means)


@pytest.mark.parametrize("name", BUILDERS)
def test_batch_of_one_and_many(name: str) -> None:
    flow = trained(name)
    x = sample_data(9)
    log_prob = flow.log_prob(x)
    assert log_prob.shape == (9,) and torch.isfinite(log_prob).all()
    for i in range(9):
        one = flow.log_prob(x[i : i + 1])
        assert one.shape == (1,)
        assert_close(one[0], log_prob[i])
    assert flow.encode(x[:1]).shape == flow.decode(x[:1]).shape == (1, FEATURES)


@pytest.mark.parametrize("name", BUILDERS)
def test_gradients_reach_every_parameter(name: str) -> None:
    flow = at_random_init(name).train()
    (-flow.log_prob(sample_data(32)).mean()).backward()
    for pname, p in flow.named_parameters():
        assert p.grad is not None, f"{pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", BUILDERS)
def test_training_improves_the_fit(name: str) -> None:
    x = wiggly(512, torch.Generator().manual_seed(2))
    torch.manual_seed(1)
    assert flowforge.mean_nll(trained(name), x) < flowforge.mean_nll(BUILDERS[name](FEATURES), x) - 1.0


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from(sorted(BUILDERS)),
    features=st.integers(2, 7),
    batch=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_any_size_round_trips_with_exact_logabsdet(name: str, features: int, batch: int, seed: int) -> None:
    torch.manual_seed(seed)
    flow = randomized(BUILDERS[name](features)).double().eval()
    x = 2 * torch.randn(batch, features, dtype=torch.float64) + 1
    z, logabsdet = flow.transform(x)
    assert z.shape == x.shape
    assert_close(flow.decode(z), x)
    assert_close(logabsdet, autograd_logabsdet(flow.encode, x))
    log_prob = flow.log_prob(x)
    assert log_prob.shape == (batch,)
    assert_close(flow.log_prob(x[-1:]), log_prob[-1:])


@pytest.mark.parametrize("name", BUILDERS)
def test_spec_rebuilds_the_same_architecture(name: str) -> None:
    flow = BUILDERS[name](3)
    spec = flow.spec
    assert spec["model"] == name.split("_")[0]
    assert spec["kwargs"]["features"] == 3 and "hidden" in spec["kwargs"]
    rebuilt = flowforge.build_model(spec["model"], **spec["kwargs"])
    assert rebuilt.spec == spec
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in flow.state_dict().items()}


def test_a_numpy_integer_seed_is_stored_as_a_plain_int(tmp_path) -> None:
    import numpy as np

    flow = flowforge.MAF(3, layers=2, hidden=(8,), seed=np.int64(4))
    assert flow.spec["kwargs"]["seed"] == 4 and type(flow.spec["kwargs"]["seed"]) is int
    flowforge.save(flow, tmp_path / "maf.pt")  # JSON: a numpy int64 raised TypeError here
    x = torch.randn(5, 3)
    assert_close(flowforge.load(tmp_path / "maf.pt").log_prob(x), flow.log_prob(x))


def test_builders_start_at_the_identity_on_standardized_data() -> None:
    """Zero-initialised conditioners: an untrained RealNVP/NICE is exactly the standard normal."""
    x = torch.randn(5, 3)
    expected = Normal(0.0, 1.0).log_prob(x).sum(1)
    for builder in (flowforge.RealNVP, flowforge.NICE):
        assert_close(builder(3, layers=2, hidden=(8,)).log_prob(x), expected)


@pytest.mark.parametrize(
    "build",
    [
        lambda: flowforge.RealNVP(1),
        lambda: flowforge.RealNVP(2.0),
        lambda: flowforge.RealNVP(2, layers=0),
        lambda: flowforge.NICE(2, layers=-1),
        lambda: flowforge.Glow(2, hidden=(0,)),
        lambda: flowforge.RealNVP(2, hidden=(8, 2.5)),
        lambda: flowforge.RealNVP(2, context_features=-1),
        lambda: flowforge.RealNVP(2, norm="layernorm"),
        lambda: flowforge.RealNVP(2, mask="checkerboard"),
        lambda: flowforge.RealNVP(2, base="laplace"),
        lambda: flowforge.NICE(2, activation="sigmoid"),
        lambda: flowforge.build_model("maf2000", features=2),
        lambda: flowforge.build_model("realnvp", features=2, depth=3),
        lambda: flowforge.MAF(2, seed=1.5),
        lambda: flowforge.Glow(2, seed="1"),
        lambda: flowforge.NSF(2, seed=True),
    ],
)
def test_bad_builder_arguments_raise(build) -> None:
    with pytest.raises(FlowforgeError):
        build()


def test_conditional_builder_uses_its_context() -> None:
    flow = randomized(flowforge.RealNVP(3, layers=2, hidden=(8,), context_features=2)).eval()
    x, context = torch.randn(4, 3), torch.randn(4, 2)
    log_prob = flow.log_prob(x, context)
    assert log_prob.shape == (4,)
    assert not torch.allclose(log_prob, flow.log_prob(x, context + 1))
    assert math.isfinite(flow.sample_and_log_prob(4, context=context)[1].sum().item())


@pytest.mark.parametrize("bound", [0.0, -1.0, float("nan"), float("inf"), "3"])
@pytest.mark.parametrize("model", ["realnvp", "glow", "maf", "iaf", "nsf", "nsf-ar"])
def test_a_bound_must_be_finite_and_positive(model: str, bound) -> None:
    """bound=0 made every log_prob -inf and fit blame the learning rate."""
    with pytest.raises(FlowforgeError, match="bound must be a finite positive number"):
        flowforge.build_model(model, features=2, layers=1, hidden=(8,), bound=bound)


@pytest.mark.parametrize("features", [3, 5, 7])
@pytest.mark.parametrize("build", [
    lambda d: flowforge.RealNVP(d, layers=4, hidden=(8,)),
    lambda d: flowforge.RealNVP(d, layers=4, hidden=(8,), mask="alternating"),
    lambda d: flowforge.NICE(d, layers=4, hidden=(8,)),
    lambda d: flowforge.NSF(d, layers=4, hidden=(8,), bins=4, permute="reverse"),
], ids=["realnvp", "realnvp-alternating", "nice", "nsf-reverse"])
def test_couplings_with_reverse_transform_every_feature_of_an_odd_row(build, features):
    """With random conditioner weights, no output may be a copy of one input: each row of the
    Jacobian has an entry off its one largest (a feature no coupling transforms keeps a one-hot row)."""
    torch.manual_seed(0)
    flow = build(features).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, 0.3)
    x = torch.randn(features, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: flow.encode(v[None])[0], x)
    rows = jacobian.abs()
    off_peak = rows.sum(1) - rows.max(1).values
    assert (off_peak > 1e-6 * rows.max(1).values).all(), jacobian
