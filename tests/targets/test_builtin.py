"""Built-in targets: their stated normalisers and moments against quadrature or exact densities."""
import math

import pytest
import torch

from flowforge import FlowforgeError
from flowforge.targets import TARGETS, banana, double_well, funnel, gmm40, make_target, many_well


def grid_log_z(target, low: float, high: float, points: int = 521) -> float:
    axis = torch.linspace(low, high, points, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    cell = float(axis[1] - axis[0]) ** 2
    return float(torch.logsumexp(target(grid), 0)) + math.log(cell)


@pytest.mark.parametrize(("make", "low", "high"), [(banana, -12.0, 40.0), (double_well, -8.0, 8.0), (gmm40, -52.0, 52.0)])
def test_two_dimensional_targets_have_the_log_z_they_state(make, low, high) -> None:
    target = make()
    assert grid_log_z(target, low, high) == pytest.approx(target.log_z, abs=1e-3)


def test_funnel_is_neals_funnel_up_to_its_stated_normaliser() -> None:
    target = funnel(10)
    v = torch.randn(200, dtype=torch.float64) * 3
    x = torch.randn(200, 9, dtype=torch.float64) * torch.exp(v / 2)[:, None]
    exact = torch.distributions.Normal(0, 3.0).log_prob(v) + torch.distributions.Normal(0, torch.exp(v / 2)[:, None]).log_prob(x).sum(1)
    points = torch.cat([v[:, None], x], 1)
    assert torch.allclose(target(points) - exact, torch.full_like(exact, target.log_z), atol=1e-9)


def test_banana_moments_are_those_stated() -> None:
    target, x1 = banana(), torch.randn(400_000, dtype=torch.float64) * 2
    x2 = 0.5 * (x1 ** 2 - 4) + torch.randn_like(x1)
    assert torch.allclose(torch.stack([x1.std(), x2.std()]), target.std, rtol=0.02)


def test_many_well_is_a_sum_of_independent_double_wells() -> None:
    x = torch.randn(5, 8, dtype=torch.float64)
    pairs = sum(double_well()(x[:, i:i + 2]) for i in range(0, 8, 2))
    assert torch.allclose(many_well(8)(x), pairs)
    assert many_well(8).log_z == pytest.approx(4 * double_well().log_z)
    with pytest.raises(FlowforgeError, match="even"):
        many_well(3)


def test_gmm40_has_forty_modes_in_the_fab_box() -> None:
    locations = gmm40().reference["locations"]
    assert locations.shape == (40, 2) and float(locations.abs().max()) <= 40


def test_every_built_in_returns_one_value_per_row_and_unknown_names_are_named() -> None:
    pytest.importorskip("sklearn")
    for name in TARGETS:
        target = make_target(name)
        assert target(torch.randn(3, target.features, dtype=torch.float64)).shape == (3,)
    with pytest.raises(FlowforgeError, match="unknown target 'nope'; choose from banana"):
        make_target("nope")


def test_logistic_regression_ships_its_reference_posterior() -> None:
    pytest.importorskip("sklearn")
    target = make_target("logistic_regression")
    assert target.features == 31
    assert target.reference["mean"].shape == (31,) and bool((target.reference["std"] > 0).all())
    assert target.reference["draws"].shape == (1000, 31)
    # the posterior mean is where the gradient of log p~ averages to zero
    draws = target.reference["draws"].double().requires_grad_(True)
    (grad,) = torch.autograd.grad(target(draws).sum(), draws)
    assert float((grad.mean(0) * target.reference["std"]).abs().max()) < 0.2


def test_compare_to_reference_counts_the_modes_a_sample_covers() -> None:
    from flowforge.targets import ImportanceSamples, compare_to_reference

    target = gmm40()
    locations = target.reference["locations"].double()
    kept = locations[1:]  # every mode but the first
    x = kept.repeat_interleave(100, 0) + torch.randn(3900, 2, dtype=torch.float64) * target.reference["std"]
    log_p = target(x)
    checks = compare_to_reference(ImportanceSamples(x, log_p - target.log_z, log_p, 3900), target)  # q = p: w = Z
    assert checks["modes_covered"] == 39 and checks["modes"] == 40
    assert checks["log_z_error"] == pytest.approx(0.0, abs=1e-9)
