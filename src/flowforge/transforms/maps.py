"""Elementwise maps (x, params, inverse) -> (y, logabsdet), shared by Coupling and MaskedAutoregressive.

A map is a small frozen object: `params_per_feature` says how many numbers the conditioner
emits per transformed feature, and calling it applies the map. All-zero params give the
identity, so a conditioner with a zero-initialised last layer starts the flow at the identity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

from ..errors import FlowforgeError, check_bound
from .coupling import soft_clamp
from .splines import MIN_BIN_WIDTH, rational_quadratic_spline


class ElementwiseMap(Protocol):
    params_per_feature: int

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]: ...


@dataclass(frozen=True)
class AffineMap:
    """z = x * exp(s) + t with params (s_raw, t); s = bound * tanh(s_raw / bound) (as AffineCoupling).

    Args (of a call): x (B, D), params (B, D, 2); returns y (B, D) and logabsdet (B,).
    """

    bound: float = 3.0
    params_per_feature: int = 2

    def __post_init__(self) -> None:
        check_bound("bound", self.bound)

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        s, t = soft_clamp(params[..., 0], self.bound), params[..., 1]
        if inverse:
            return (x - t) * (-s).exp(), -s.flatten(1).sum(1)
        return x * s.exp() + t, s.flatten(1).sum(1)


@dataclass(frozen=True)
class SplineMap:
    """Rational-quadratic spline with `bins` bins on [-bound, bound], identity tails.

    Params per feature: bins widths, bins heights, bins - 1 interior derivatives (unnormalised).
    Args (of a call): x (B, D), params (B, D, 3 * bins - 1); returns y (B, D) and logabsdet (B,).

    Reference: Durkan et al., Neural Spline Flows, 2019 (arXiv:1906.04032).
    """

    bins: int = 8
    bound: float = 3.0

    def __post_init__(self) -> None:
        check_bound("bound", self.bound)
        # each bin is at least MIN_BIN_WIDTH of the interval, so at most 1 / MIN_BIN_WIDTH - 1 bins fit
        limit = round(1 / MIN_BIN_WIDTH) - 1
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or not 2 <= self.bins <= limit:
            raise FlowforgeError(f"bins must be an integer in [2, {limit}], got {self.bins!r}")

    @property
    def params_per_feature(self) -> int:
        return 3 * self.bins - 1

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        widths, heights, derivatives = params.split([self.bins, self.bins, self.bins - 1], dim=-1)
        y, logabsdet = rational_quadratic_spline(x, widths, heights, derivatives, inverse, self.bound)
        return y, logabsdet.flatten(1).sum(1)
