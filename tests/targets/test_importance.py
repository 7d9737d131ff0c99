"""Importance sampling: the estimators against hand computations and a target with known Z."""
import math

import pytest
import torch

import flowforge
from flowforge import FlowforgeError
from flowforge.targets import ImportanceSamples, importance_sample


def samples_with_weights(weights: list[float], drawn: int) -> ImportanceSamples:
    log_w = torch.tensor(weights, dtype=torch.float64).log()
    x = torch.arange(len(weights), dtype=torch.float64)[:, None]
    return ImportanceSamples(x, torch.zeros(len(weights), dtype=torch.float64), log_w, drawn)


def test_ess_log_z_and_expectations_match_a_hand_computation() -> None:
    result = samples_with_weights([1.0, 2.0, 3.0, 4.0], drawn=5)  # a fifth sample was dropped
    assert result.dropped == 1
    assert result.ess == pytest.approx(10.0 ** 2 / 30.0 / 5, rel=1e-12)  # (sum w)^2 / sum w^2 / drawn
    assert result.log_z == pytest.approx(math.log(10.0 / 4), rel=1e-12)  # mean of the kept weights
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    assert result.log_z_stderr == pytest.approx(float(w.std() / (2 * w.mean())), rel=1e-12)
    assert float(result.expectation()[0]) == pytest.approx((0 * 1 + 1 * 2 + 2 * 3 + 3 * 4) / 10, rel=1e-12)
    assert result.summary() == {"ess": result.ess, "log_z": result.log_z, "log_z_stderr": result.log_z_stderr,
                                "samples": 5, "dropped": 1}


def test_equal_weights_give_full_ess_and_resampling_follows_the_weights() -> None:
    assert samples_with_weights([2.0] * 8, drawn=8).ess == pytest.approx(1.0, rel=1e-12)
    skewed = samples_with_weights([1.0, 0.0, 3.0], drawn=3)
    points = skewed.resample(4000, torch.Generator().manual_seed(0))[:, 0]
    assert not bool((points == 1).any())  # zero weight: never drawn
    assert float((points == 2).double().mean()) == pytest.approx(0.75, abs=0.05)  # 4000 draws: sd 0.007


def test_log_z_estimate_is_unbiased_on_a_gaussian_with_known_z() -> None:
    """q = N(0, I) (an untrained flow), p~ = exp(-|x - 0.5|^2 / (2 * 1.2^2)): Z = 2 pi 1.44. Over 300
    independent estimates from 64 samples each, mean(exp(log_z)) matches Z within 4 standard errors,
    and the reported standard error matches the spread of log_z."""
    flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
    true_log_z = math.log(2 * math.pi * 1.2 ** 2)

    def log_density(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x - 0.5) ** 2).sum(1) / 1.2 ** 2

    runs = [importance_sample(flow, log_density, n=64) for _ in range(300)]
    z_hat = torch.tensor([math.exp(r.log_z - true_log_z) for r in runs], dtype=torch.float64)  # Z_hat / Z
    assert abs(float(z_hat.mean()) - 1) < 4 * float(z_hat.std()) / math.sqrt(len(runs))
    log_z = torch.tensor([r.log_z for r in runs], dtype=torch.float64)
    reported = sum(r.log_z_stderr for r in runs) / len(runs)
    assert 0.7 < float(log_z.std()) / reported < 1.4


def test_a_target_that_fails_somewhere_has_those_samples_dropped_and_counted() -> None:
    flow = flowforge.RealNVP(2, layers=2, hidden=(8,))

    def log_density(x: torch.Tensor) -> torch.Tensor:
        value = -0.5 * (x ** 2).sum(1)
        value = torch.where(x[:, 0] > 1, torch.nan, value)
        return torch.where(x[:, 0] < -2, torch.inf, value)

    result = importance_sample(flow, log_density, n=4000)
    expected = 4000 * (0.1587 + 0.0228)  # P(x0 > 1) + P(x0 < -2) under N(0, 1)
    assert abs(result.dropped - expected) < 5 * math.sqrt(expected)
    assert bool(torch.isfinite(result.log_weights).all())
    assert math.isfinite(result.log_z) and 0 < result.ess < 1


def test_a_target_with_the_wrong_output_shape_is_a_named_error() -> None:
    flow = flowforge.RealNVP(3, layers=2, hidden=(8,))
    with pytest.raises(FlowforgeError, match=r"must return shape \(10,\).*got \(10, 3\).*sum"):
        importance_sample(flow, lambda x: -0.5 * x ** 2, n=10)
    with pytest.raises(FlowforgeError, match=r"must return shape \(10,\).*got \(10, 1\)"):
        importance_sample(flow, lambda x: -0.5 * (x ** 2).sum(1, keepdim=True), n=10)
    with pytest.raises(FlowforgeError, match="must return a torch.Tensor"):
        importance_sample(flow, lambda x: 0.0, n=10)


def test_conditional_importance_sampling_takes_one_context_or_one_per_sample() -> None:
    flow = flowforge.MAF(2, layers=2, hidden=(8,), context_features=1)
    target = flowforge.Target(lambda x, c: -0.5 * ((x - c) ** 2).sum(1), 2, context_features=1)
    assert importance_sample(flow, target, n=50, context=torch.tensor([0.5])).x.shape == (50, 2)
    assert importance_sample(flow, target, n=50, context=torch.zeros(50, 1)).context.shape == (50, 1)
    with pytest.raises(FlowforgeError, match="conditional"):
        importance_sample(flow, target, n=50)
    with pytest.raises(FlowforgeError, match="context must have shape"):
        importance_sample(flow, target, n=50, context=torch.zeros(7, 1))
