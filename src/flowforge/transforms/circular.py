"""Angles: circular splines, a spline map for rows that mix angles and real numbers, the
conditioner input for angles (cos, sin), the wrap onto [-pi, pi), and a Standardize that leaves
angles alone.

The circle is handled through its lift to the real line: a circle map f with f(x + 2 pi) =
f(x) + 2 pi is a bijection of R with a periodic log-derivative, so every layer stays a true
bijection of R^D (the contract's tests apply as they are), while the base (uniform on each
angle, flowforge.distributions.TorusBase) and the conditioners (cos, sin) see only the angle
modulo 2 pi. The flow's first layer, WrapAngles, maps data onto [-pi, pi) and samples back there.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError, check_bound
from .base import Transform, zero_logabsdet
from .splines import MIN_BIN_WIDTH, circular_rational_quadratic_spline, rational_quadratic_spline
from .standardize import Standardize

TWO_PI = 2 * math.pi


def wrap(x: Tensor) -> Tensor:
    """x modulo 2 pi, in [-pi, pi) (rounding that lands on pi goes to -pi)."""
    y = torch.remainder(x + math.pi, TWO_PI) - math.pi
    return torch.where(y >= math.pi, y - TWO_PI, y)


def _check_bins(bins: int) -> None:
    limit = round(1 / MIN_BIN_WIDTH) - 1
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= limit:
        raise FlowforgeError(f"bins must be an integer in [2, {limit}], got {bins!r}")


@dataclass(frozen=True)
class CircularSplineMap:
    """A circle map: a periodic-slope rational-quadratic spline on [-pi, pi], then a rotation phi.

        on the lift, x = x0 + 2 pi k with x0 in [-pi, pi):  y = spline(x0) + phi + 2 pi k
        log|dy/dx| = log spline'(x0), periodic

    Params per feature: `bins` widths, `bins` heights, `bins` knot derivatives, and phi: 3K + 1.
    All zero: the identity.

    Reference: Rezende et al., Normalizing Flows on Tori and Spheres, 2020 (arXiv:2002.02428).
    """

    bins: int = 8
    grouped: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_bins(self.bins)

    @property
    def params_per_feature(self) -> int:
        return 3 * self.bins + 1

    def elementwise(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        """y and the elementwise log|dy/dx|."""
        widths, heights, derivatives, phi = params.split([self.bins, self.bins, self.bins, 1], dim=-1)
        phi = phi[..., 0]
        v = x - phi if inverse else x
        turns = torch.floor((v + math.pi) / TWO_PI).detach()
        y, logabsdet = circular_rational_quadratic_spline(v - TWO_PI * turns, widths, heights, derivatives, inverse)
        y = y + TWO_PI * turns
        return (y if inverse else y + phi), logabsdet

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        y, logabsdet = self.elementwise(x, params, inverse)
        return y, logabsdet.flatten(1).sum(1)


@dataclass(frozen=True)
class MixedSplineMap:
    """Splines for rows mixing angles and real numbers: CircularSplineMap where `circular[i]`,
    an ordinary rational-quadratic spline on [-bound, bound] (identity tails) elsewhere.

    Params per feature: 3K + 1 for every feature (a real one reads the first 3K - 1)."""

    circular: tuple[bool, ...]
    bins: int = 8
    bound: float = 4.0
    grouped: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_bins(self.bins)
        check_bound("bound", self.bound)

    @property
    def params_per_feature(self) -> int:
        return 3 * self.bins + 1

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        angles = torch.tensor(self.circular, device=x.device)
        k = self.bins
        y_circle, log_circle = CircularSplineMap(k).elementwise(x, params, inverse)
        widths, heights, derivatives = params[..., : 3 * k - 1].split([k, k, k - 1], dim=-1)
        y_line, log_line = rational_quadratic_spline(x, widths, heights, derivatives, inverse, self.bound)
        y = torch.where(angles, y_circle, y_line)
        return y, torch.where(angles, log_circle, log_line).flatten(1).sum(1)


class AngleFeatures(nn.Module):
    """A conditioner that reads angles as (cos, sin): net([x_real, cos x_angle, sin x_angle], context).

    The input of a coupling's conditioner is continuous on the circle, so the map it sets does
    not jump where an angle wraps. `net` is built by `net_factory(in, out)` with in counting
    two inputs per angle."""

    def __init__(self, circular: Sequence[bool], out_features: int, net_factory: Callable[[int, int], nn.Module]) -> None:
        super().__init__()
        self.register_buffer("angles", torch.tensor(list(circular), dtype=torch.bool), persistent=False)
        self.net = net_factory(len(circular) + int(sum(circular)), out_features)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        angles = x[:, self.angles]
        features = torch.cat([x[:, ~self.angles], angles.cos(), angles.sin()], dim=1)
        return self.net(features, context)


class WrapAngles(Transform):
    """The angle columns modulo 2 pi, onto [-pi, pi), both ways; log|det| 0.

    A bijection of the torus (not of R): the flow's data-side layer, so that data given in
    [0, 2 pi) or any other turn is scored as the same angle, and samples come out in [-pi, pi)."""

    def __init__(self, circular: Sequence[bool]) -> None:
        super().__init__()
        self.register_buffer("angles", torch.tensor(list(circular), dtype=torch.bool), persistent=False)

    def _wrap(self, x: Tensor) -> Tensor:
        return torch.where(self.angles, wrap(x), x)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._wrap(x), zero_logabsdet(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._wrap(z), zero_logabsdet(z)


class CircularStandardize(Standardize):
    """Standardize for the real columns; the angle columns keep mean 0 and scale 1 (an angle's
    scale is fixed by the circle)."""

    def __init__(self, circular: Sequence[bool]) -> None:
        super().__init__(len(circular))
        self.register_buffer("angles", torch.tensor(list(circular), dtype=torch.bool), persistent=False)

    @torch.no_grad()
    def fit_(self, x: Tensor, chunk: int = 16384) -> None:
        super().fit_(x, chunk)
        self.mean.masked_fill_(self.angles, 0.0)
        self.scale.masked_fill_(self.angles, 1.0)


def circular_flags(features: int, circular: Sequence[int]) -> tuple[bool, ...]:
    """(features,) flags from column indices, with named errors for bad ones."""
    columns = list(circular)
    for c in columns:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < features:
            raise FlowforgeError(f"circular: column {c!r} is not an index in [0, {features})")
    if len(set(columns)) != len(columns):
        raise FlowforgeError(f"circular: columns repeat in {columns}")
    return tuple(i in set(columns) for i in range(features))
