"""all_finite: one reduction for the usual case, the element-wise check only when the sum overflows."""
from __future__ import annotations

import pytest
import torch

import flowforge
from flowforge.errors import FlowforgeError
from flowforge.flows.checks import all_finite

BIG = 3e38  # float32's largest is 3.4e38: two of them overflow the sum


@pytest.mark.parametrize(
    ("values", "dtype", "finite"),
    [
        ([[0.5, -2.0], [1.0, 3.0]], torch.float32, True),
        ([[0.0, float("nan")]], torch.float32, False),
        ([[float("inf"), 0.0]], torch.float64, False),
        ([[float("inf"), -float("inf")]], torch.float32, False),  # sums to NaN
        ([[BIG, BIG, BIG]], torch.float32, True),  # the sum overflows, the values do not
        ([[BIG, float("inf")]], torch.float32, False),
        ([[60000.0, 60000.0]], torch.float16, True),
        ([[60000.0, float("nan")]], torch.bfloat16, False),
        ([[1, 2]], torch.int64, True),
    ],
)
def test_all_finite(values, dtype, finite: bool) -> None:
    assert all_finite(torch.tensor(values, dtype=dtype)) is finite
    assert all_finite(torch.tensor(values, dtype=dtype)) == bool(torch.isfinite(torch.tensor(values, dtype=dtype)).all())


def test_large_but_finite_rows_are_accepted_and_a_nan_among_them_is_named() -> None:
    flow = flowforge.RealNVP(2, layers=1, hidden=(8,))
    assert flow.log_prob(torch.full((3, 2), BIG)).shape == (3,)
    with pytest.raises(FlowforgeError, match="x contains NaN or Inf"):
        flow.log_prob(torch.tensor([[BIG, BIG], [BIG, float("nan")]]))
