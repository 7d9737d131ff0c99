"""Coupling: any elementwise map (e.g. a spline) on half the features, conditioned on the other half."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError
from .base import CouplingTransform
from .maps import ElementwiseMap


class Coupling(CouplingTransform):
    """Coupling layer with a pluggable elementwise map (neural spline coupling with SplineMap).

        x_A = x[mask == 1] passes through; params = net(x_A, context)
        z_B = map(x_B; params),    log|det dz/dx| = the map's log|det|

    Args:
        mask: (D,) 0/1; ones pass through, zeros are transformed. Needs both kinds.
        net_factory: (in_features, out_features) -> module mapping (B, in) and context to
            (B, out); out = (transformed features) * map_fn.params_per_feature, feature-major.
            Zero-initialise its last layer (MLP does) to start at the identity.
        map_fn: an ElementwiseMap, e.g. SplineMap(bins=8, bound=3.0).

    Reference: Durkan et al., Neural Spline Flows, 2019 (arXiv:1906.04032).
    """

    def __init__(self, mask: Tensor, net_factory: Callable[[int, int], nn.Module], map_fn: ElementwiseMap) -> None:
        super().__init__()
        mask = torch.as_tensor(mask).flatten().bool()
        if mask.all() or not mask.any():
            raise FlowforgeError("coupling mask needs both ones (kept) and zeros (transformed)")
        identity, transformed = mask.nonzero().flatten(), (~mask).nonzero().flatten()
        self.register_buffer("identity_index", identity, persistent=False)
        self.register_buffer("transformed_index", transformed, persistent=False)
        self.register_buffer("merge_index", torch.argsort(torch.cat([identity, transformed])), persistent=False)
        self.map_fn = map_fn
        self.net = net_factory(len(identity), len(transformed) * map_fn.params_per_feature)

    def condition(self, x: Tensor, context: Tensor | None) -> Tensor:
        """The map's parameters, (batch, transformed features, params per feature), from x's kept part."""
        params = self.net(x.index_select(1, self.identity_index), context)
        return params.view(x.shape[0], len(self.transformed_index), self.map_fn.params_per_feature)

    def couple(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        """The coupling given the map's parameters: the kept part of x passes through."""
        a, b = x.index_select(1, self.identity_index), x.index_select(1, self.transformed_index)
        b, logabsdet = self.map_fn(b, params, inverse=inverse)
        return torch.cat([a, b], dim=1).index_select(1, self.merge_index), logabsdet
