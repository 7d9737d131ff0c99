"""Elementwise maps (x, params, inverse) -> (y, logabsdet), shared by Coupling and MaskedAutoregressive.

A map is a small frozen object: `params_per_feature` says how many numbers the conditioner
emits per transformed feature, and calling it applies the map. All-zero params give the
identity, so a conditioner with a zero-initialised last layer starts the flow at the identity.
`grouped` says how a coupling's conditioner lays out its output: all the first parameters, then
all the second ones (Real NVP's log-scales, then shifts), or each feature's parameters together
(Neural Spline Flows). MADE emits (B, D, P) itself, so MaskedAutoregressive ignores it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from ..errors import FlowforgeError, check_bound
from .splines import MIN_BIN_WIDTH, rational_quadratic_spline


def soft_clamp(s: Tensor, bound: float) -> Tensor:
    """bound * tanh(s / bound): smooth, identity near 0, |s| < bound (exp(s) never overflows)."""
    return bound * torch.tanh(s / bound)


class ElementwiseMap(Protocol):
    params_per_feature: int
    grouped: ClassVar[bool]

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]: ...


@dataclass(frozen=True)
class AffineMap:
    """z = x * exp(s) + t with params (s_raw, t); s = bound * tanh(s_raw / bound).

    The soft clamp keeps exp(s) finite on outliers (bound 3: a layer scales by at most e^3 ~ 20
    either way) while leaving small scales untouched.
    Args (of a call): x (B, *shape), params (B, *shape, 2); returns y (B, *shape) and logabsdet (B,).
    """

    bound: float = 3.0
    params_per_feature: int = 2
    grouped: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_bound("bound", self.bound)

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        s, t = params.unbind(-1)  # one autograd node for both (its backward is one stack)
        s = soft_clamp(s, self.bound)
        if inverse:
            return (x - t) * (-s).exp(), -s.flatten(1).sum(1)
        return x * s.exp() + t, s.flatten(1).sum(1)


@dataclass(frozen=True)
class AdditiveMap:
    """z = x + t with params (t,): volume-preserving, log|det| = 0 (NICE).

    Args (of a call): x (B, *shape), params (B, *shape, 1); returns y (B, *shape) and logabsdet (B,).
    """

    params_per_feature: ClassVar[int] = 1
    grouped: ClassVar[bool] = True

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        t = params[..., 0]
        return x - t if inverse else x + t, x.new_zeros(x.shape[0])


@dataclass(frozen=True)
class SplineMap:
    """Rational-quadratic spline with `bins` bins on [-bound, bound], identity tails.

    Params per feature: bins widths, bins heights, bins - 1 interior derivatives (unnormalised).
    Args (of a call): x (B, D), params (B, D, 3 * bins - 1); returns y (B, D) and logabsdet (B,).

    Reference: Durkan et al., Neural Spline Flows, 2019 (arXiv:1906.04032).
    """

    bins: int = 8
    bound: float = 3.0
    grouped: ClassVar[bool] = False

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
