"""rational_quadratic_spline: identity at zero, monotone, exact at knots and in the tails, stable."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from flowforge.transforms import SplineMap, rational_quadratic_spline
from flowforge.transforms.splines import _knots

B, K = 2.0, 5


def random_params(n: int, scale: float = 2.0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    return tuple(scale * torch.randn(n, k, dtype=dtype) for k in (K, K, K - 1))


def spline(x: torch.Tensor, params: tuple[torch.Tensor, ...], inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    return rational_quadratic_spline(x, *params, inverse=inverse, bound=B)


def test_zero_params_give_the_identity() -> None:
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    zeros = tuple(torch.zeros(101, k, dtype=torch.float64) for k in (K, K, K - 1))
    for inverse in (False, True):
        y, logabsdet = spline(x, zeros, inverse)
        assert_close(y, x)
        assert_close(logabsdet, torch.zeros_like(x))


def test_monotone_and_onto_the_square() -> None:
    x = torch.linspace(-B, B, 2001, dtype=torch.float64)
    params = tuple(p.expand(2001, -1) for p in random_params(1, scale=3.0))
    y = spline(x, params)[0]
    assert (y.diff() > 0).all()
    assert_close(y[[0, -1]], torch.tensor([-B, B], dtype=torch.float64))


def test_logabsdet_is_the_derivative_both_ways() -> None:
    x = (torch.rand(200, dtype=torch.float64) * 3 - 1.5) * B  # inside and in both tails
    params = random_params(200)
    x.requires_grad_(True)
    y, logabsdet = spline(x, params)
    (dy,) = torch.autograd.grad(y.sum(), x)
    assert_close(logabsdet, dy.log())
    z = y.detach().requires_grad_(True)
    x_back, inverse_logabsdet = spline(z, params, inverse=True)
    (dx,) = torch.autograd.grad(x_back.sum(), z)
    assert_close(inverse_logabsdet, dx.log())
    assert_close(logabsdet + inverse_logabsdet, torch.zeros_like(logabsdet))


def test_round_trip_exact_at_every_knot() -> None:
    params = random_params(30)
    knots = _knots(params[0], B, 1e-3)[1]  # (30, K + 1), ends included
    x = knots.T.reshape(-1)
    params = tuple(p.repeat(K + 1, 1) for p in params)
    y, logabsdet = spline(x, params)
    assert_close(y.reshape(K + 1, 30)[[0, -1]], torch.tensor([-B, B], dtype=torch.float64)[:, None].expand(2, 30))
    x_back, inverse_logabsdet = spline(y, params, inverse=True)
    assert_close(x_back, x, rtol=0, atol=1e-12)
    assert_close(logabsdet + inverse_logabsdet, torch.zeros_like(logabsdet), rtol=0, atol=1e-9)



@pytest.mark.parametrize("inverse", [False, True])
def test_slope_at_every_knot_is_the_derivative(inverse: bool) -> None:
    """At a knot (ends included) the root of the inverse can round just past its bin; the clamp
    that keeps its value in the bin must not zero the gradient there (it did at +bound)."""
    torch.manual_seed(1)
    params = random_params(40, scale=3.0)
    knots = _knots(params[1] if inverse else params[0], B, 1e-3)[1]  # (40, K + 1) on the input side
    v = knots.T.reshape(-1).clone().requires_grad_(True)
    params = tuple(p.repeat(K + 1, 1) for p in params)
    y, logabsdet = spline(v, params, inverse)
    (slope,) = torch.autograd.grad(y.sum(), v)
    assert_close(slope, logabsdet.exp(), rtol=1e-9, atol=0)


def test_spline_map_rejects_more_bins_than_fit_and_a_bad_bound() -> None:
    with pytest.raises(ValueError, match=r"bins must be an integer in \[2, 999\], got 1500"):
        SplineMap(bins=1500)
    with pytest.raises(ValueError, match="bins must be"):
        SplineMap(bins=1)
    for bound in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="bound must be a finite positive number"):
            SplineMap(bins=4, bound=bound)

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tails_are_the_identity_and_join_smoothly(dtype: torch.dtype) -> None:
    x = torch.tensor([-1e4, -7.0, -B - 1e-3, B + 1e-3, 7.0, 1e4], dtype=dtype)
    params = random_params(6, scale=5.0, dtype=dtype)
    for inverse in (False, True):
        y, logabsdet = spline(x, params, inverse)
        assert torch.equal(y, x) and torch.equal(logabsdet, torch.zeros_like(x))
    edge = torch.tensor([-B, B], dtype=dtype)  # slope 1 on the edges: the spline meets the tails C1
    for inverse in (False, True):
        y, logabsdet = spline(edge, tuple(p[:2] for p in params), inverse)
        assert_close(y, edge)
        if dtype == torch.float64:  # in float32 the inverse's root lands a rounding off theta = 1
            assert_close(logabsdet, torch.zeros_like(edge), rtol=0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    raw=st.lists(st.floats(-40, 40), min_size=3 * K - 1, max_size=3 * K - 1),
    xs=st.lists(st.floats(-3 * B, 3 * B), min_size=1, max_size=20),
)
def test_extreme_parameters_stay_finite_monotone_and_invertible(raw: list[float], xs: list[float]) -> None:
    p = torch.tensor(raw, dtype=torch.float64)
    x = torch.tensor(sorted(xs), dtype=torch.float64)
    params = tuple(t.expand(len(x), -1) for t in p.split([K, K, K - 1]))
    y, logabsdet = spline(x, params)
    assert torch.isfinite(y).all() and torch.isfinite(logabsdet).all()
    assert (y.diff() >= -4 * torch.finfo(y.dtype).eps * y.abs().clamp_min(1)[1:]).all()  # non-decreasing, to rounding
    x_back, inverse_logabsdet = spline(y, params, inverse=True)
    assert torch.isfinite(x_back).all() and torch.isfinite(inverse_logabsdet).all()
    # y -> x can be ill-conditioned (slopes far below 1 exist); x -> y -> x is checked in the data's units
    assert_close(spline(x_back, params)[0], y, rtol=0, atol=1e-9)
    steep = logabsdet > -3
    assert_close(x_back[steep], x[steep], rtol=0, atol=1e-7)
    assert_close(inverse_logabsdet[steep], -logabsdet[steep], rtol=0, atol=1e-6)
    y32, logabsdet32 = rational_quadratic_spline(x.float(), *(t.float() for t in params), bound=B)
    assert torch.isfinite(y32).all() and torch.isfinite(logabsdet32).all()
    x32, lad32 = rational_quadratic_spline(y32, *(t.float() for t in params), inverse=True, bound=B)
    assert torch.isfinite(x32).all() and torch.isfinite(lad32).all()


def test_spline_map_sums_over_features_and_matches_the_function() -> None:
    spline_map = SplineMap(bins=K, bound=B)
    assert spline_map.params_per_feature == 3 * K - 1
    x = torch.randn(4, 3, dtype=torch.float64)
    params = torch.randn(4, 3, 3 * K - 1, dtype=torch.float64)
    y, logabsdet = spline_map(x, params)
    y_ref, elementwise = rational_quadratic_spline(x, *params.split([K, K, K - 1], -1), bound=B)
    assert_close(y, y_ref)
    assert_close(logabsdet, elementwise.sum(1))
