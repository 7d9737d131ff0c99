"""Built-in targets with known normalisers or moments: banana, funnel, 40-mode mixture, many-well.

Each is given unnormalised (the constants of its Gaussians left out), so that log Z is a real
quantity to estimate; `Target.log_z` holds the true value.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import FlowforgeError
from .base import Target


def banana(curvature: float = 0.5, scale: float = 2.0) -> Target:
    """A twisted Gaussian: x1 ~ N(0, scale^2), x2 | x1 ~ N(curvature (x1^2 - scale^2), 1).

        log p~(x) = -x1^2 / (2 scale^2) - (x2 - curvature (x1^2 - scale^2))^2 / 2,   Z = 2 pi scale

    Reference: Haario, Saksman and Tamminen, Adaptive proposal distribution for random walk
    Metropolis algorithm, 1999 (the twisted Gaussian).
    """
    def log_density(x: Tensor) -> Tensor:
        x1, x2 = x[:, 0], x[:, 1]
        return -0.5 * (x1 / scale) ** 2 - 0.5 * (x2 - curvature * (x1 ** 2 - scale ** 2)) ** 2

    std2 = math.sqrt(1 + 2 * curvature ** 2 * scale ** 4)  # Var(x2) = 1 + b^2 Var(x1^2) = 1 + 2 b^2 s^4
    return Target(log_density, 2, name="banana", log_z=math.log(2 * math.pi * scale),
                  mean=[0.0, 0.0], std=[scale, std2], loc=0.0, scale=[scale, std2])


def funnel(features: int = 10, sigma: float = 3.0) -> Target:
    """Neal's funnel: v = x0 ~ N(0, sigma^2), x_i | v ~ N(0, e^v) for i = 1..D-1.

        log p~(x) = -v^2 / (2 sigma^2) - (D - 1) v / 2 - sum_i x_i^2 e^-v / 2,   Z = (2 pi)^(D/2) sigma

    Reference: Neal, Slice sampling, Annals of Statistics, 2003.
    """
    if isinstance(features, bool) or not isinstance(features, int) or features < 2:
        raise FlowforgeError(f"funnel: features must be an integer >= 2, got {features!r}")

    def log_density(x: Tensor) -> Tensor:
        v, rest = x[:, 0], x[:, 1:]
        return -0.5 * (v / sigma) ** 2 - 0.5 * (features - 1) * v - 0.5 * (rest ** 2).sum(1) * torch.exp(-v)

    std_rest = math.exp(sigma ** 2 / 4)  # Var(x_i) = E[e^v] = e^(sigma^2 / 2)
    return Target(log_density, features, name="funnel", log_z=0.5 * features * math.log(2 * math.pi) + math.log(sigma),
                  mean=0.0, std=[sigma] + [std_rest] * (features - 1), loc=0.0, scale=[sigma] + [1.0] * (features - 1))


def gmm40_locations(modes: int = 40, spread: float = 40.0, seed: int = 0) -> Tensor:
    """The modes' centres: uniform on [-spread, spread]^2 drawn after torch.manual_seed(seed), as FAB does."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(modes, 2, generator=generator) - 0.5) * 2 * spread


GMM40_STD = math.log1p(math.e)  # softplus(1): FAB's scale of each component


def gmm40(modes: int = 40, spread: float = 40.0, seed: int = 0) -> Target:
    """The 2-D mixture of 40 equally weighted Gaussians of Midgley et al. (FAB): centres uniform on
    [-40, 40]^2, each with standard deviation softplus(1) = 1.313 in both coordinates.

        log p~(x) = logsumexp_k -|x - mu_k|^2 / (2 s^2),   Z = K 2 pi s^2

    `reference["locations"]` and `reference["std"]` give the modes, for counting those covered.

    Reference: Midgley et al., Flow annealed importance sampling bootstrap, ICLR 2023 (arXiv:2208.01893).
    """
    locations = gmm40_locations(modes, spread, seed)
    s = GMM40_STD

    def log_density(x: Tensor) -> Tensor:
        squared = ((x[:, None, :] - locations.to(x)) ** 2).sum(-1)
        return torch.logsumexp(-0.5 * squared / s ** 2, 1)

    covariance = locations.T.cov(correction=0) + s ** 2 * torch.eye(2)
    return Target(log_density, 2, name="gmm40", log_z=math.log(modes * 2 * math.pi * s ** 2),
                  mean=locations.mean(0), std=covariance.diagonal().sqrt(), loc=locations.mean(0),
                  scale=covariance.diagonal().sqrt(), reference={"locations": locations, "std": s})


@functools.lru_cache(maxsize=1)
def _double_well_log_z() -> float:
    """log of the integral of exp(0.5 x + 6 x^2 - x^4) dx on a fine grid (the integrand is smooth
    and below 1e-60 outside [-5, 5], so the grid sum is the trapezoid rule to float64 precision)."""
    x, dx = np.linspace(-6.0, 6.0, 240_001, retstep=True)
    log_f = 0.5 * x + 6 * x ** 2 - x ** 4
    peak = log_f.max()
    return float(peak + np.log(np.exp(log_f - peak).sum() * dx))


def many_well(features: int = 8) -> Target:
    """FAB's many-well energy: D / 2 independent copies of a double well in (x_even, x_odd),

        log p~(x) = sum_pairs 0.5 a + 6 a^2 - a^4 - b^2 / 2,   2^(D/2) modes,

    with log Z from a one-dimensional quadrature. `features=2` is the double well.

    Reference: Midgley et al., Flow annealed importance sampling bootstrap, ICLR 2023.
    """
    if isinstance(features, bool) or not isinstance(features, int) or features < 2 or features % 2:
        raise FlowforgeError(f"many_well: features must be an even integer >= 2, got {features!r}")

    def log_density(x: Tensor) -> Tensor:
        a, b = x[:, 0::2], x[:, 1::2]
        return (0.5 * a + 6 * a ** 2 - a ** 4 - 0.5 * b ** 2).sum(1)

    pairs = features // 2
    return Target(log_density, features, name="many_well" if features > 2 else "double_well",
                  log_z=pairs * (_double_well_log_z() + 0.5 * math.log(2 * math.pi)),
                  loc=0.0, scale=[1.7, 1.0] * pairs)


def double_well() -> Target:
    """The two-dimensional double well: many_well(features=2), two modes near a = -1.7 and a = 1.7."""
    return many_well(2)


def make_target(name: str) -> Target:
    """A built-in target by name, with its default settings; see `TARGETS`."""
    key = name.lower().replace("-", "_")
    if key not in TARGETS:
        raise FlowforgeError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}, or give path/to/file.py:function")
    return TARGETS[key]()


def _logistic_regression() -> Target:
    from .logistic import logistic_regression

    return logistic_regression()


TARGETS: dict[str, Callable[[], Target]] = {
    "banana": banana,
    "funnel": funnel,
    "gmm40": gmm40,
    "double_well": double_well,
    "many_well": many_well,
    "logistic_regression": _logistic_regression,
}
