"""Support maps: exact log-dets against autograd in float64, round trips, samples kept inside."""
import math

import pytest
import torch
from torch.testing import assert_close

from flowforge.tables.schema import Column
from flowforge.tables.support import dequantise, in_support, requantise, to_data, to_latent

COLUMNS = {
    "real": (Column("a", "real"), torch.randn(50, dtype=torch.float64) * 3),
    "positive": (Column("b", "positive"), torch.rand(50, dtype=torch.float64) * 100 + 1e-3),
    "nonnegative": (Column("g", "nonnegative", resolution=0.05), torch.rand(50, dtype=torch.float64) * 10 + 1e-3),
    "bounded": (Column("c", "bounded", low=40.0, high=80.0), 40 + 40 * torch.rand(50, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)),
    "counts": (Column("d", "integer", low=0.0), torch.randint(0, 50, (50,)).double() + torch.rand(50, dtype=torch.float64).clamp_min(1e-6)),
    "signed integers": (Column("e", "integer"), torch.randint(-50, 50, (50,)).double() + torch.rand(50, dtype=torch.float64)),
    "datetime": (Column("f", "datetime", low=19000.0, resolution=86400.0), torch.rand(50, dtype=torch.float64) * 365),
}


@pytest.mark.parametrize("name", COLUMNS)
def test_logabsdet_matches_autograd(name: str) -> None:
    column, x = COLUMNS[name]
    x = x.clone().requires_grad_(True)
    y, logabsdet = to_latent(column, x)
    (dy_dx,) = torch.autograd.grad(y.sum(), x)  # elementwise maps: the Jacobian is diagonal
    assert_close(logabsdet, dy_dx.abs().log())


@pytest.mark.parametrize("name", COLUMNS)
def test_round_trip(name: str) -> None:
    column, x = COLUMNS[name]
    y, _ = to_latent(column, x)
    assert_close(to_data(column, y), x)


def test_bounded_samples_stay_strictly_inside_even_at_extreme_latents() -> None:
    column = COLUMNS["bounded"][0]
    x = to_data(column, torch.tensor([-1e4, -40.0, 0.0, 40.0, 1e4], dtype=torch.float64))
    assert bool(in_support(column, x).all()) and bool((x > 40).all() and (x < 80).all())


def test_positive_samples_stay_positive() -> None:
    column = COLUMNS["positive"][0]
    assert bool((to_data(column, torch.tensor([-800.0, -50.0, 0.0], dtype=torch.float64)) >= 0).all())


def test_outside_the_support_is_detected_and_has_zero_density() -> None:
    positive, bounded, counts = COLUMNS["positive"][0], COLUMNS["bounded"][0], COLUMNS["counts"][0]
    assert in_support(positive, torch.tensor([1.0, 0.0, -1.0])).tolist() == [True, False, False]
    assert in_support(bounded, torch.tensor([40.0, 50.0, 80.0])).tolist() == [False, True, False]
    assert in_support(counts, torch.tensor([3.0, 3.5, -1.0])).tolist() == [True, False, False]
    assert not torch.isfinite(to_latent(bounded, torch.tensor([40.0, 80.0], dtype=torch.float64))[0]).any()


def test_a_nonnegative_columns_zeros_are_a_cell_below_its_positive_values() -> None:
    """Zeros spread over (0, d), positive values shifted above d: requantise undoes dequantise."""
    column = Column("g", "nonnegative", resolution=0.05)
    x = torch.tensor([0.0, 0.0, 0.1, 7.5], dtype=torch.float64)
    u = torch.tensor([0.2, 0.9, 0.5, 0.5], dtype=torch.float64)
    value, log_width = dequantise(column, x, u)
    assert_close(value, torch.tensor([0.01, 0.045, 0.15, 7.55], dtype=torch.float64))
    assert_close(log_width, torch.tensor([math.log(0.05), math.log(0.05), 0.0, 0.0], dtype=torch.float64))
    assert_close(requantise(column, value), x)
    assert in_support(column, torch.tensor([0.0, 3.0, -0.1])).tolist() == [True, True, False]
