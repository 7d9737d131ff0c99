"""MaskedAutoregressive: an elementwise map whose parameters for x_i come from x_<i via MADE."""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..nn.made import MADE
from .base import Transform
from .maps import AffineMap, ElementwiseMap


class MaskedAutoregressive(Transform):
    """z_i = map(x_i; params_i(x_<i, context)), params from one MADE pass.

        forward (density): one pass, all params computed from x at once
        inverse (sampling): D passes, pass k fixes x_k from the already-fixed x_<k

    With AffineMap this is MAF's layer (z_i = x_i exp(s_i) + t_i, log|det| = sum(s)); with
    SplineMap, the autoregressive neural spline layer. Wrap it in Inverse for IAF (sampling in
    one pass, density in D). MADE's last layer is zero-initialised: the layer starts at identity.
    `has_sequential_inverse`: memory="invertible" (recompute.py) keeps this layer's activations
    rather than rebuild its input in D passes; Inverse(layer) (IAF) rebuilds in one and is recomputed.

    Args:
        features: D; the autoregressive order is the feature order (permute between layers).
        map_fn: an ElementwiseMap, e.g. SplineMap(bins=8); AffineMap() (MAF) by default.
        hidden, context_features, activation, residual: passed to MADE.

    Reference: Papamakarios et al., Masked Autoregressive Flow for Density Estimation, 2017
    (arXiv:1705.07057).
    """

    has_sequential_inverse = True

    def __init__(
        self,
        features: int,
        map_fn: ElementwiseMap | None = None,
        hidden: Sequence[int] = (256, 256),
        context_features: int = 0,
        activation: str = "relu",
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.map_fn = map_fn if map_fn is not None else AffineMap()
        self.net = MADE(features, self.map_fn.params_per_feature, hidden, context_features, activation, residual)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.map_fn(x, self.net(x, context), inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = z.new_zeros(z.shape)
        for _ in range(z.shape[1]):
            # the params of x_k depend only on x_<k, fixed by the previous passes
            x, logabsdet = self.map_fn(z, self.net(x, context), inverse=True)
        return x, logabsdet
