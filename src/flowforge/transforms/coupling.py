"""Coupling: the one coupling layer (vectors and images; affine, additive or spline), and its masks."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError
from .base import CouplingTransform
from .fused import MIN_BLOCK_ROWS, FusedKernel, blocked_rows, choose_kernel, mlp_params
from .inplace import plain_no_grad
from .maps import AdditiveMap, AffineMap, ElementwiseMap

NetFactory = Callable[[int, int], nn.Module]


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


def reversed_complement(mask: Tensor) -> Tensor:
    """The mask for the coupling after a Reverse: it keeps, in the reversed order, exactly what
    `mask` transformed, so two layers with a Reverse between them transform every feature.
    With an odd number of features, reusing `mask` itself would keep the middle feature in both
    (half_mask) or the same half (alternating_mask) forever."""
    return (1 - mask).flip(0)


class Coupling(CouplingTransform):
    """Coupling layer: where mask = 1, x passes through and conditions an elementwise map of the rest.

        x_A = x where mask = 1, passed through;   params = net(x_A, context)
        z_B = map(x_B; params),    log|det dz/dx| = the map's log|det|

    AffineMap gives Real NVP (z_B = x_B * exp(s) + t, log|det| = sum(s)), AdditiveMap NICE and
    SplineMap the neural spline coupling. The mask sets the structure:
      - a (D,) mask splits vectors: the net sees only x_A, (B, |A|), and emits (B, P * |B|);
      - a mask broadcastable to one image ((1, H, W) from checkerboard_mask, (C, 1, 1) from
        channel_mask) masks: the net sees x * mask, (B, C, H, W), and emits (B, P * C, H, W),
        read as zero where mask = 1, where the map must then be exactly the identity: AffineMap
        and AdditiveMap are, SplineMap only up to rounding (its round trip would drift).
    P is map_fn.params_per_feature; with map_fn.grouped the net emits all first parameters, then
    all second ones (AffineMap: log-scales, then shifts), else each feature's P together.
    Zero-initialise the net's last layer (MLP and ConvNet do) to start at the identity.

    Without autograd, an affine or additive map on a contiguous split ([kept | transformed], as
    half_mask gives) with a ReLU MLP runs the hand-written kernel of fused.py: the same map in
    one pass, without autograd's bookkeeping (`fused.choose_kernel` decides).

    Args:
        mask: 0/1; ones pass through, zeros are transformed. Needs both kinds.
        net: the conditioner; for vectors also (in_features, out_features) -> module.
        map_fn: AffineMap(bound) (the default), AdditiveMap() or SplineMap(bins, bound).

    Reference: Dinh et al., Density estimation using Real NVP, 2017 (arXiv:1605.08803).
    """

    def __init__(self, mask: Tensor, net: nn.Module | NetFactory, map_fn: ElementwiseMap | None = None) -> None:
        super().__init__()
        mask = torch.as_tensor(mask)
        if mask.all() or not mask.any():
            raise FlowforgeError("coupling mask needs both ones (kept) and zeros (transformed)")
        self.map_fn = map_fn = map_fn if map_fn is not None else AffineMap()
        if mask.dim() > 1:  # images: multiply by the mask
            self.register_buffer("mask", mask.float())
            if not isinstance(net, nn.Module):
                raise FlowforgeError("an image coupling needs its conditioner built: a module, not a factory")
            self.net, self._kernel = net, None
            return
        self.register_buffer("mask", None)
        mask = mask.flatten().bool()
        identity, transformed = mask.nonzero().flatten(), (~mask).nonzero().flatten()
        order = torch.cat([identity, transformed])
        self.register_buffer("identity_index", identity, persistent=False)
        self.register_buffer("transformed_index", transformed, persistent=False)
        self.register_buffer("merge_index", torch.argsort(order), persistent=False)
        # a contiguous split [kept | transformed] needs only slicing, no gather/scatter
        self.is_contiguous = bool((order == torch.arange(len(order))).all())
        self.split = len(identity)
        out_features = len(transformed) * map_fn.params_per_feature
        self.net = net if isinstance(net, nn.Module) else net(len(identity), out_features)
        self._kernel = choose_kernel(map_fn, self.net, self.split if self.is_contiguous else None)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.is_contiguous:
            return x[:, : self.split], x[:, self.split :]
        return x.index_select(1, self.identity_index), x.index_select(1, self.transformed_index)

    def _merge(self, a: Tensor, b: Tensor) -> Tensor:
        merged = torch.cat([a, b], dim=1)
        return merged if self.is_contiguous else merged.index_select(1, self.merge_index)

    def condition(self, x: Tensor, context: Tensor | None) -> Tensor:
        """The map's params, (B, *transformed shape, P), from x's kept part (x's other part is not read)."""
        out = self.net(self._split(x)[0] if self.mask is None else x * self.mask, context)
        size = self.map_fn.params_per_feature
        keep = None if self.mask is None else 1 - self.mask
        if self.map_fn.grouped:
            out = out.unflatten(1, (size, -1))
            return (out if keep is None else out * keep).movedim(1, -1)
        out = out.unflatten(1, (-1, size))
        return (out if keep is None else out * keep.unsqueeze(-3)).movedim(2, -1)

    def couple(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        """The coupling given the map's params: the kept part of x passes through."""
        if self.mask is not None:
            return self.map_fn(x, params, inverse)  # params are zero where x is kept: the identity
        a, b = self._split(x)
        b, logabsdet = self.map_fn(b, params, inverse)
        return self._merge(a, b), logabsdet

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(x, context, inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(z, context, inverse=True)  # z's kept part is x's: the same params

    def _run(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        if self._runs_fused():
            y = x.clone(memory_format=torch.contiguous_format)
            return y, self._kernel.step_(self.net, y, context, inverse, flipped=False)
        return self.couple(x, self.condition(x, context), inverse)

    def fused_kernel(self) -> FusedKernel | None:
        """fused.py's kernel for this layer, unless its conditioner runs in mixed precision (the
        kernel runs in the weights' dtype)."""
        return self._kernel if self._kernel is not None and self.net.autocast_dtype is None else None

    def _runs_fused(self) -> bool:
        """The kernel runs without autograd; with it the plain ops do (as fast, and torch.func and
        double backward need them), and so they do when compiled (inductor fuses them) and under
        torch.func transforms (plain_no_grad)."""
        return self.fused_kernel() is not None and plain_no_grad()

    def steps_in_place(self, x: Tensor) -> bool:
        """Runs in place in a no-grad Compose pass (inplace.py): the hand-written kernel's case."""
        return self._runs_fused() and x.dtype == self.net.linears()[0].weight.dtype

    def step_(self, x: Tensor, context: Tensor | None, inverse: bool, flipped: bool) -> tuple[Tensor, bool]:
        """The coupling in place on x, whose columns are reversed when `flipped` (inplace.py)."""
        return self._kernel.step_(self.net, x, context, inverse, flipped), flipped

    def runs_blocked(self, x: Tensor) -> bool:
        """A no-grad pass over x would run the CPU kernel in blocks: x has more rows than one block."""
        if x.shape[0] <= MIN_BLOCK_ROWS:  # never blocked: skip the checks below
            return False
        return self.steps_in_place(x) and blocked_rows(x, mlp_params(self.net)) is not None


class AffineCoupling(Coupling):
    """Affine coupling (Real NVP) on vectors: Coupling(mask, net_factory, AffineMap(bound)).

        x_A = x[mask == 1] passes through; (s, t) = net(x_A, context), s soft-clamped to |s| < bound
        z_B = x_B * exp(s) + t,     log|det dz/dx| = sum(s);     x_B = (z_B - t) * exp(-s)

    Args:
        mask: (D,) 0/1; ones pass through, zeros are transformed. Needs both kinds.
        net_factory: (in_features, out_features) -> module mapping (B, in) and context to (B, out).
        scale: False gives NICE's additive coupling (s = 0, AdditiveMap).
        bound: soft-clamp bound for the log-scale.

    Reference: Dinh et al., Density estimation using Real NVP, 2017 (arXiv:1605.08803).
    """

    def __init__(self, mask: Tensor, net_factory: NetFactory, scale: bool = True, bound: float = 3.0) -> None:
        affine = AffineMap(bound)
        super().__init__(mask, net_factory, affine if scale else AdditiveMap())


class AdditiveCoupling(Coupling):
    """Additive coupling (NICE): z_B = x_B + t(x_A), log|det| = 0; Coupling with AdditiveMap().

    Reference: Dinh et al., NICE: Non-linear Independent Components Estimation, 2015 (arXiv:1410.8516).
    """

    def __init__(self, mask: Tensor, net_factory: NetFactory) -> None:
        super().__init__(mask, net_factory, AdditiveMap())
