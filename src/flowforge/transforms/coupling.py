"""Coupling layers for vectors: AffineCoupling (Real NVP) and AdditiveCoupling (NICE)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError, check_bound
from ..nn.mlp import MLP
from .base import CouplingTransform
from .fused import MIN_BLOCK_ROWS, blocked_rows, coupling_
from .inplace import plain_no_grad


def alternating_mask(features: int, even: bool = True) -> Tensor:
    """0/1 mask 1,0,1,0,... (or 0,1,0,1,... when even=False); ones pass through unchanged."""
    mask = (torch.arange(features) % 2 == 0).float()
    return mask if even else 1 - mask


def half_mask(features: int, first: bool = True) -> Tensor:
    """0/1 mask keeping the first ceil(D/2) features (or the last floor(D/2) when first=False)."""
    mask = torch.zeros(features)
    k = (features + 1) // 2
    if first:
        mask[:k] = 1
    else:
        mask[k:] = 1
    return mask


def soft_clamp(s: Tensor, bound: float) -> Tensor:
    """bound * tanh(s / bound): smooth, identity near 0, |s| < bound (exp(s) never overflows)."""
    return bound * torch.tanh(s / bound)


class AffineCoupling(CouplingTransform):
    """Affine coupling (Real NVP) on vectors.

        x_A = x[mask == 1] passes through; (s, t) = net(x_A, context)
        z_B = x_B * exp(s) + t,     log|det dz/dx| = sum(s)
        x_B = (z_B - t) * exp(-s)

    The log-scale is soft-clamped, s = bound * tanh(s_raw / bound) (bound 3 by default: a
    layer scales by at most e^3 ~ 20 either way), which keeps exp(s) finite on outliers while
    leaving small scales untouched. The network sees only x_A (no wasted masked inputs) and
    emits log-scale and shift in one pass; zero-initialise its last layer to start at identity.
    With a ReLU `MLP` on a contiguous split (`half_mask`) it runs the hand-written kernel of
    fused.py: the same values, one autograd node instead of about twenty (`is_fused`).

    Args:
        mask: (D,) 0/1; ones pass through, zeros are transformed. Needs both kinds.
        net_factory: (in_features, out_features) -> module mapping (B, in) and context to (B, out).
        scale: False gives NICE's additive coupling (s = 0).
        bound: soft-clamp bound for the log-scale.

    Reference: Dinh et al., Density estimation using Real NVP, 2017 (arXiv:1605.08803).
    """

    def __init__(
        self,
        mask: Tensor,
        net_factory: Callable[[int, int], nn.Module],
        scale: bool = True,
        bound: float = 3.0,
    ) -> None:
        super().__init__()
        mask = torch.as_tensor(mask).flatten().bool()
        if mask.all() or not mask.any():
            raise FlowforgeError("coupling mask needs both ones (kept) and zeros (transformed)")
        identity = mask.nonzero().flatten()
        transformed = (~mask).nonzero().flatten()
        order = torch.cat([identity, transformed])
        self.register_buffer("identity_index", identity, persistent=False)
        self.register_buffer("transformed_index", transformed, persistent=False)
        self.register_buffer("merge_index", torch.argsort(order), persistent=False)
        # a contiguous split [kept | transformed] needs only slicing, no gather/scatter
        self.is_contiguous = bool((order == torch.arange(len(order))).all())
        self.split = len(identity)
        check_bound("bound", bound)
        self.scale, self.bound = scale, bound
        self.net = net_factory(len(identity), len(transformed) * (2 if scale else 1))
        # the default conditioner on a contiguous split runs the hand-written kernel of fused.py
        self.is_fused = self.is_contiguous and isinstance(self.net, MLP) and self.net.activation == "relu"

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.is_contiguous:
            return x[:, : self.split], x[:, self.split :]
        return x.index_select(1, self.identity_index), x.index_select(1, self.transformed_index)

    def _merge(self, a: Tensor, b: Tensor) -> Tensor:
        merged = torch.cat([a, b], dim=1)
        return merged if self.is_contiguous else merged.index_select(1, self.merge_index)

    def _scale_shift(self, a: Tensor, context: Tensor | None) -> tuple[Tensor | None, Tensor]:
        out = self.net(a, context)
        if not self.scale:
            return None, out
        s, t = out.chunk(2, dim=1)
        return soft_clamp(s, self.bound), t

    def fused_args(self, x: Tensor, context: Tensor | None) -> tuple[Tensor | None, tuple[Tensor, ...]]:
        """The context the MLP uses (checked) and its (w1, b1, w2, b2, ...), for fused.py."""
        if not self.net.context_features:
            return None, self._params()
        self.net.check_context(x.shape[0], context)
        return context.to(x.dtype), self._params()

    def _params(self) -> tuple[Tensor, ...]:
        return tuple(p for layer in self.net.linears() for p in (layer.weight, layer.bias))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self._runs_fused():
            return self._fused_on_copy(x, context, inverse=False)
        return super().forward(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self._runs_fused():
            return self._fused_on_copy(z, context, inverse=True)
        return super().inverse(z, context)

    def _runs_fused(self) -> bool:
        """Without autograd the blocked kernel of fused.py runs (activations stay in cache). With
        it the plain ops do (as fast here, and torch.func and double backward need them); also
        when compiled (inductor fuses the plain ops), under torch.func transforms, and in mixed
        precision (the kernel is float32-only)."""
        return self.is_fused and self.net.autocast_dtype is None and plain_no_grad()

    def steps_in_place(self, x: Tensor) -> bool:
        """Runs in place in a no-grad Compose pass (inplace.py): the hand-written kernel's case."""
        return self._runs_fused() and x.dtype == self.net.linears()[0].weight.dtype

    def runs_blocked(self, x: Tensor) -> bool:
        """A no-grad pass over x would run the CPU kernel in blocks: x has more rows than one block."""
        if x.shape[0] <= MIN_BLOCK_ROWS:  # never blocked: skip the checks below (~7 us a layer)
            return False
        return self.steps_in_place(x) and blocked_rows(x, self._params()) is not None

    def _fused_on_copy(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        y = x.clone(memory_format=torch.contiguous_format)
        return y, self.step_(y, context, inverse, flipped=False)[0]

    def step_(self, x: Tensor, context: Tensor | None, inverse: bool, flipped: bool) -> tuple[Tensor, bool]:
        """The coupling in place on x, whose columns are reversed when `flipped` (inplace.py)."""
        context, params = self.fused_args(x, context)
        kept = x[:, x.shape[1] - self.split :] if flipped else x[:, : self.split]
        inp = self.net.join(kept, context)
        return coupling_(x, inp, self.split, self.bound, self.scale, params, inverse, flipped), flipped

    def condition(self, x: Tensor, context: Tensor | None) -> tuple[Tensor | None, Tensor]:
        """(s, t) from the kept part of x (s is None for the additive coupling); x's other part is not read."""
        return self._scale_shift(self._split(x)[0], context)

    def couple(self, x: Tensor, theta: tuple[Tensor | None, Tensor], inverse: bool = False) -> tuple[Tensor, Tensor]:
        """The coupling given the conditioner's (s, t): the kept part of x passes through."""
        (a, b), (s, t) = self._split(x), theta
        if s is None:
            return self._merge(a, b - t if inverse else b + t), x.new_zeros(x.shape[0])
        if inverse:
            return self._merge(a, (b - t) * (-s).exp()), -s.sum(1)
        return self._merge(a, b * s.exp() + t), s.sum(1)


class AdditiveCoupling(AffineCoupling):
    """Additive coupling (NICE): z_B = x_B + t(x_A), log|det| = 0.

    Reference: Dinh et al., NICE: Non-linear Independent Components Estimation, 2015 (arXiv:1410.8516).
    """

    def __init__(self, mask: Tensor, net_factory: Callable[[int, int], nn.Module]) -> None:
        super().__init__(mask, net_factory, scale=False)
