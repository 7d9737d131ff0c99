"""Monotone rational-quadratic splines with identity tails: pure maths, no parameters."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn.functional import pad, softmax, softplus

from .linear import solve_dtype

MIN_BIN_WIDTH = 1e-3  # default smallest bin, as a fraction of [-bound, bound]: at most 999 bins


def _knots(unnormalized: Tensor, bound: float, minimum: float) -> tuple[Tensor, Tensor]:
    """Bin sizes (..., K) and knots (..., K + 1) on [-bound, bound]; each bin at least minimum * 2B."""
    bins = unnormalized.shape[-1]
    fractions = minimum + (1 - minimum * bins) * softmax(unnormalized, dim=-1)
    knots = 2 * bound * pad(torch.cumsum(fractions, dim=-1), (1, 0)) - bound
    # exact end knots: cumsum rounding must not move the spline's edges off +-bound
    ends = torch.full_like(knots[..., :1], bound)
    knots = torch.cat([-ends, knots[..., 1:-1], ends], dim=-1)
    return knots.diff(dim=-1), knots


def _slopes(unnormalized: Tensor, minimum: float) -> Tensor:
    """Knot derivatives (..., K + 1): interior ones >= minimum, both ends 1 to meet the identity tails."""
    shift = math.log(math.expm1(1 - minimum))  # a zero input gives exactly 1: the identity at init
    inner = minimum + softplus(unnormalized + shift)
    ones = torch.ones_like(inner[..., :1])
    return torch.cat([ones, inner, ones], dim=-1)


def _log_slope(theta: Tensor, s: Tensor, d0: Tensor, d1: Tensor) -> Tensor:
    """log dy/dx inside a bin at relative position theta."""
    mix = theta * (1 - theta)
    numerator = s * s * (d1 * theta * theta + 2 * s * mix + d0 * (1 - theta) ** 2)
    return torch.log(numerator) - 2 * torch.log(s + (d1 + d0 - 2 * s) * mix)


def rational_quadratic_spline(
    x: Tensor,
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    inverse: bool = False,
    bound: float = 3.0,
    min_width: float = MIN_BIN_WIDTH,
    min_height: float = MIN_BIN_WIDTH,
    min_derivative: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    """Elementwise monotone rational-quadratic spline on [-B, B], identity outside.

    In bin k, with theta = (x - x_k) / w_k, slope s_k = h_k / w_k and knot derivatives d_k, d_k+1:

        y = y_k + h_k (s_k theta^2 + d_k theta (1 - theta)) / (s_k + (d_k+1 + d_k - 2 s_k) theta (1 - theta))

    The inverse solves a theta^2 + b theta + c = 0 by the root 2c / (-b - sqrt(b^2 - 4ac)): as
    a + b = h_k s_k > 0 and c <= 0, its denominator is always negative, so nothing cancels (the
    textbook (-b + sqrt(...)) / 2a loses all precision as a -> 0, the near-linear bins).
    End derivatives are 1, so the spline meets the identity tails with a continuous slope.

    Args:
        x: (...) inputs (the latent side when `inverse`).
        widths, heights: (..., K) unnormalised bin sizes (softmax, then each at least min_width * 2B).
        derivatives: (..., K - 1) unnormalised interior derivatives (softplus, then >= min_derivative).
            All-zero widths, heights and derivatives give the identity.
        inverse: evaluate the inverse map.
        bound: B, the half-width of the spline's square.

    Returns:
        y with x's shape, and the elementwise log|dy/dx| of the map applied (zero in the tails).

    float16 and bfloat16 inputs are computed in float32 and returned in their dtype (b^2 overflows
    float16 at steep bins, which gave NaN samples).

    Reference: Durkan et al., Neural Spline Flows, 2019 (arXiv:1906.04032).
    """
    dtype = x.dtype
    work = solve_dtype(dtype)
    x, widths, heights, derivatives = (t.to(work) for t in (x, widths, heights, derivatives))
    widths, x_knots = _knots(widths, bound, min_width)
    heights, y_knots = _knots(heights, bound, min_height)
    slopes = _slopes(derivatives, min_derivative)
    inside = (x >= -bound) & (x <= bound)
    v = x.clamp(-bound, bound)  # tails are evaluated too, then discarded, so their gradients stay finite
    index = torch.searchsorted((y_knots if inverse else x_knots)[..., 1:-1].contiguous(), v[..., None].contiguous(), right=True)
    x_k, w, y_k, h, d0, d1 = (t.gather(-1, i)[..., 0] for t, i in (
        (x_knots, index), (widths, index), (y_knots, index), (heights, index), (slopes, index), (slopes, index + 1)))
    in_bin = _inverse_in_bin if inverse else _forward_in_bin
    y, logabsdet = in_bin(v, x_k, w, y_k, h, d0, d1)
    return torch.where(inside, y, x).to(dtype), torch.where(inside, logabsdet, torch.zeros_like(logabsdet)).to(dtype)


def _forward_in_bin(
    v: Tensor, x_k: Tensor, w: Tensor, y_k: Tensor, h: Tensor, d0: Tensor, d1: Tensor
) -> tuple[Tensor, Tensor]:
    """y and log dy/dx for x = v in the bin at x_k (width w, height h, knot derivatives d0, d1)."""
    s = h / w
    theta = ((v - x_k) / w).clamp(0, 1)
    mix = theta * (1 - theta)
    y = y_k + h * (s * theta * theta + d0 * mix) / (s + (d1 + d0 - 2 * s) * mix)
    return y, _log_slope(theta, s, d0, d1)


def _inverse_in_bin(
    v: Tensor, x_k: Tensor, w: Tensor, y_k: Tensor, h: Tensor, d0: Tensor, d1: Tensor
) -> tuple[Tensor, Tensor]:
    """x and log dx/dy for y = v in the bin at y_k: the root of a theta^2 + b theta + c = 0 (see
    rational_quadratic_spline for why this form of it)."""
    s = h / w
    dy, curvature = v - y_k, d1 + d0 - 2 * s
    a, b, c = h * (s - d0) + dy * curvature, h * d0 - dy * curvature, -s * dy
    root = 2 * c / (-b - torch.sqrt((b * b - 4 * a * c).clamp_min(0)))
    # the root can round just past [0, 1] at a knot: clamp its value but keep its gradient
    theta = root + (root.clamp(0, 1) - root).detach()
    return x_k + theta * w, -_log_slope(theta, s, d0, d1)


def circular_rational_quadratic_spline(
    x: Tensor,
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    inverse: bool = False,
    min_width: float = MIN_BIN_WIDTH,
    min_height: float = MIN_BIN_WIDTH,
    min_derivative: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    """Monotone rational-quadratic spline of [-pi, pi] onto itself whose slope is periodic: the
    derivative at -pi equals the one at pi, so it is a smooth map of the circle.

    As rational_quadratic_spline, with K knot derivatives (..., K) rather than K - 1: the K + 1-th
    (at pi) repeats the first. x must lie in [-pi, pi] (CircularSplineMap lifts the real line
    onto it). All-zero parameters give the identity.

    Reference: Rezende et al., Normalizing Flows on Tori and Spheres, 2020 (arXiv:2002.02428).
    """
    dtype = x.dtype
    work = solve_dtype(dtype)
    x, widths, heights, derivatives = (t.to(work) for t in (x, widths, heights, derivatives))
    widths, x_knots = _knots(widths, math.pi, min_width)
    heights, y_knots = _knots(heights, math.pi, min_height)
    shift = math.log(math.expm1(1 - min_derivative))
    slopes = min_derivative + softplus(derivatives + shift)
    slopes = torch.cat([slopes, slopes[..., :1]], dim=-1)
    v = x.clamp(-math.pi, math.pi)
    index = torch.searchsorted((y_knots if inverse else x_knots)[..., 1:-1].contiguous(), v[..., None].contiguous(), right=True)
    x_k, w, y_k, h, d0, d1 = (t.gather(-1, i)[..., 0] for t, i in (
        (x_knots, index), (widths, index), (y_knots, index), (heights, index), (slopes, index), (slopes, index + 1)))
    in_bin = _inverse_in_bin if inverse else _forward_in_bin
    y, logabsdet = in_bin(v, x_k, w, y_k, h, d0, d1)
    return y.to(dtype), logabsdet.to(dtype)
