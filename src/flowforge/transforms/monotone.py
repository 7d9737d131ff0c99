"""Monotone neural maps for neural autoregressive flows (NAF, UNAF), and their numerical inverse.

Both are ElementwiseMaps (maps.py): MaskedAutoregressive(features, DeepSigmoidMap()) is NAF's
layer, with UnconstrainedMonotoneMap() UNAF's. Neither has a closed-form inverse; `bisect`
inverts an increasing elementwise function on an exact bracket to a stated tolerance, and
`newton_polish` takes one Newton step from there, which also gives the inverse its exact
(implicit-function) gradient.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import log_softmax, logsigmoid, softplus

from ..errors import FlowforgeError, check_int

MIN_SLOPE = 1e-2  # smallest slope a_j of a sigmoid unit, and smallest integrand value: keeps brackets finite
MAX_BISECTIONS = 200


def default_tolerance(dtype: torch.dtype) -> float:
    """sqrt(machine epsilon): 3.5e-4 in float32, 1.5e-8 in float64. After the Newton step that
    follows bisection the error is of order tol^2, i.e. at the dtype's rounding."""
    return math.sqrt(torch.finfo(dtype).eps)


def bisect(f: Callable[[Tensor], Tensor], y: Tensor, lo: Tensor, hi: Tensor, tol: float) -> Tensor:
    """x with |x - x*| <= tol where f(x*) = y, for f increasing elementwise and f(lo) <= y <= f(hi).

    Halves every bracket together until the widest is below 2 tol (ceil(log2(width / 2 tol))
    steps, at most MAX_BISECTIONS); no autograd graph.
    """
    with torch.no_grad():
        lo, hi = torch.minimum(lo, hi), torch.maximum(lo, hi)
        width = float((hi - lo).max()) if lo.numel() else 0.0
        if not math.isfinite(width):
            raise FlowforgeError("bisection: the bracket is not finite (an input or parameter is Inf or NaN)")
        steps = min(MAX_BISECTIONS, max(0, math.ceil(math.log2(max(width, 1e-300) / (2 * tol)))))
        for _ in range(steps):
            mid = (lo + hi) / 2
            above = f(mid) > y
            hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
        return (lo + hi) / 2


def newton_polish(f: Callable[[Tensor], tuple[Tensor, Tensor]], y: Tensor, x0: Tensor) -> Tensor:
    """x0 + (y - f(x0)) / f'(x0) with f'(x0) held constant: one Newton step in value, and in
    autograd the implicit derivatives dx/dy = 1 / f'(x), dx/dtheta = -(df/dtheta) / f'(x).

    f returns (f(x), log f'(x)), elementwise."""
    x0 = x0.detach()
    value, log_slope = f(x0)
    return x0 + (y - value) / log_slope.detach().exp()


@functools.lru_cache(maxsize=16)
def _gauss_legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(nodes)


def gauss_legendre(nodes: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre nodes and weights on [-1, 1], in like's dtype and device."""
    t, w = _gauss_legendre(nodes)
    return torch.as_tensor(t, dtype=like.dtype, device=like.device), torch.as_tensor(w, dtype=like.dtype, device=like.device)


def _offsets(units: int, like: Tensor) -> Tensor:
    """Spread the units' centres over [-2, 2] so that they start different (zero params would
    give identical units, and identical units get identical gradients forever)."""
    return torch.linspace(-2.0, 2.0, units, dtype=like.dtype, device=like.device) if units > 1 else like.new_zeros(1)


def _slope(raw: Tensor) -> Tensor:
    """MIN_SLOPE + softplus, shifted so that a raw 0 gives exactly 1."""
    return MIN_SLOPE + softplus(raw + math.log(math.expm1(1 - MIN_SLOPE)))


@dataclass(frozen=True)
class DeepSigmoidMap:
    """NAF's deep sigmoidal flow: a convex mixture of K sigmoids, mapped back to the real line.

        y = logit(sum_j w_j sigmoid(a_j x + b_j)),   a_j > 0, w = softmax: increasing, onto R
        dy/dx = sum_j w_j a_j s_j (1 - s_j) / (S (1 - S)),   S the mixture, s_j its sigmoids

    computed in log space (logsigmoid, logsumexp), so |x| of hundreds neither overflows nor
    rounds y to +-inf. Params per feature: K slopes (softplus, >= MIN_SLOPE), K shifts (plus a
    fixed spread over [-2, 2]), K weight logits.

    Inverse: as y lies between min_j (a_j x + b_j) and max_j (a_j x + b_j), x lies in
    [min_j (y - b_j) / a_j, max_j (y - b_j) / a_j]: bisection on that bracket to `tol`
    (None: sqrt of the dtype's epsilon), then one Newton step.

    Reference: Huang et al., Neural Autoregressive Flows, 2018 (arXiv:1804.00779).
    """

    units: int = 8
    tol: float | None = None
    grouped: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_int("units", self.units, 1)

    @property
    def params_per_feature(self) -> int:
        return 3 * self.units

    def _unpack(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, b, w = params.split(self.units, dim=-1)
        return _slope(a), b + _offsets(self.units, params), log_softmax(w, dim=-1)

    def evaluate(self, x: Tensor, a: Tensor, b: Tensor, log_w: Tensor) -> tuple[Tensor, Tensor]:
        """y and log dy/dx, elementwise."""
        u = a * x[..., None] + b
        log_s, log_1ms = logsigmoid(u), logsigmoid(-u)
        log_mix, log_1m_mix = torch.logsumexp(log_w + log_s, -1), torch.logsumexp(log_w + log_1ms, -1)
        log_slope = torch.logsumexp(log_w + a.log() + log_s + log_1ms, -1) - log_mix - log_1m_mix
        return log_mix - log_1m_mix, log_slope

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        a, b, log_w = self._unpack(params)
        if not inverse:
            y, log_slope = self.evaluate(x, a, b, log_w)
            return y, log_slope.flatten(1).sum(1)
        ends = (x[..., None] - b) / a
        f = functools.partial(self.evaluate, a=a.detach(), b=b.detach(), log_w=log_w.detach())
        tol = self.tol if self.tol is not None else default_tolerance(x.dtype)
        root = bisect(lambda v: f(v)[0], x.detach(), ends.min(-1).values, ends.max(-1).values, tol)
        root = newton_polish(lambda v: self.evaluate(v, a, b, log_w), x, root)
        return root, -self.evaluate(root, a, b, log_w)[1].flatten(1).sum(1)


@dataclass(frozen=True)
class UnconstrainedMonotoneMap:
    """UNAF: the integral of a positive function that a small unconstrained network computes.

        y = d + int_0^x g(t) dt,   g(t) = MIN_SLOPE + softplus(c + sum_j v_j tanh(a_j t + b_j))
        log dy/dx = log g(x)   (exact; the integral is Gauss-Legendre with `nodes` points)

    The integrand's weights (v, a, b, c) and the offset d come from the conditioner: K hidden
    units give 3K + 2 params per feature; zero params give g = 1, d = 0, the identity. Since
    g lies in [g_min, g_max] = MIN_SLOPE + softplus(c -+ sum |v_j|), the quadrature's y - d lies
    between x g_min and x g_max: the inverse bisects on [(y - d) / g_max, (y - d) / g_min] to
    `tol` (None: sqrt of the dtype's epsilon), then takes one Newton step. The quadrature is
    exact enough (hence the map monotone) where the integrand is smooth on the scale of [0, x]:
    standardised data, |x| of a few units; far beyond, raise `nodes`.

    Reference: Wehenkel & Louppe, Unconstrained Monotonic Neural Networks, 2019 (arXiv:1908.05164).
    """

    units: int = 8
    nodes: int = 32
    tol: float | None = None
    grouped: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_int("units", self.units, 1)
        check_int("nodes", self.nodes, 2)

    @property
    def params_per_feature(self) -> int:
        return 3 * self.units + 2

    def _unpack(self, params: Tensor) -> tuple[Tensor, ...]:
        v, a, b, cd = params.split([self.units, self.units, self.units, 2], dim=-1)
        c = cd[..., 0] + math.log(math.expm1(1 - MIN_SLOPE))
        return v, a + 1.0, b + _offsets(self.units, params), c, cd[..., 1]

    @staticmethod
    def _pre(t: Tensor, v: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
        """The integrand before its positive link, at t (..., n) for the units (..., K)."""
        return c[..., None] + (v[..., None, :] * torch.tanh(a[..., None, :] * t[..., None] + b[..., None, :])).sum(-1)

    def evaluate(self, x: Tensor, v: Tensor, a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """y (the quadrature) and log g(x), elementwise."""
        nodes, weights = gauss_legendre(self.nodes, x)
        t = x[..., None] * (nodes + 1) / 2  # the nodes mapped onto [0, x]
        g = MIN_SLOPE + softplus(self._pre(t, v, a, b, c))
        y = d + x / 2 * (g * weights).sum(-1)
        return y, torch.log(MIN_SLOPE + softplus(self._pre(x[..., None], v, a, b, c)[..., 0]))

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        v, a, b, c, d = self._unpack(params)
        if not inverse:
            y, log_slope = self.evaluate(x, v, a, b, c, d)
            return y, log_slope.flatten(1).sum(1)
        with torch.no_grad():
            spread = v.abs().sum(-1)
            g_min, g_max = MIN_SLOPE + softplus(c - spread), MIN_SLOPE + softplus(c + spread)
            rest = x - d
        held = [p.detach() for p in (v, a, b, c, d)]
        tol = self.tol if self.tol is not None else default_tolerance(x.dtype)
        root = bisect(lambda u: self.evaluate(u, *held)[0], x.detach(), rest / g_max, rest / g_min, tol)
        root = newton_polish(lambda u: self.evaluate(u, v, a, b, c, d), x, root)
        return root, -self.evaluate(root, v, a, b, c, d)[1].flatten(1).sum(1)
