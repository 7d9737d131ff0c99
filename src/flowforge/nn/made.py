"""MADE: a masked MLP whose outputs for feature i see only features < i (and the context)."""
from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import Tensor, nn
from torch.nn.functional import linear

from ..errors import FlowforgeError
from .mlp import ACTIVATIONS, check_activation, last_layer
from .precision import conditioner_autocast


class MaskedLinear(nn.Linear):
    """nn.Linear whose weight is multiplied by a fixed 0/1 mask of shape (out, in)."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight * self.mask, self.bias)


class _ResidualBlock(nn.Module):
    """h + W2 act(W1 act(h)), both masks keeping the hidden degrees (autoregressive preserved)."""

    def __init__(self, mask: Tensor, activation: str) -> None:
        super().__init__()
        self.net = nn.Sequential(ACTIVATIONS[activation](), MaskedLinear(mask), ACTIVATIONS[activation](), MaskedLinear(mask))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.net(h)


class MADE(nn.Module):
    """Masked autoencoder: (B, D) and context -> (B, D, P), output row i depends on x_<i only.

    Degrees: input i has degree i (1..D); hidden units cycle through degrees lo..D-1 and see
    inputs of degree <= theirs; output i sees hidden units of degree < i. With a context, lo is 0:
    degree-0 units see only the context (fed to the whole first layer), so every output, the
    first feature's included, can depend on it.

    Args:
        features: D.
        params_per_feature: P, outputs per feature.
        hidden: hidden widths; with `residual`, all equal, one residual block (two masked layers)
            per entry after the first layer.
        context_features: size of the context vector (0 for none).
        activation: one of nn.mlp.ACTIVATIONS.
        residual: use residual blocks.
        zero_init: zero the output layer, so the layer built on it starts at the identity.

    Reference: Germain et al., MADE: Masked Autoencoder for Distribution Estimation, 2015 (arXiv:1502.03509).
    """

    def __init__(
        self,
        features: int,
        params_per_feature: int,
        hidden: Sequence[int] = (256, 256),
        context_features: int = 0,
        activation: str = "relu",
        residual: bool = False,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        check_activation(activation)
        if not hidden or (residual and len(set(hidden)) != 1):
            raise FlowforgeError(f"MADE: hidden must be non-empty (and all equal with residual=True), got {list(hidden)}")
        self.features, self.params_per_feature, self.context_features = features, params_per_feature, context_features
        inputs = torch.arange(1, features + 1)
        lo = 0 if context_features or features == 1 else 1
        degrees = [inputs] + [lo + torch.arange(h) % max(features - lo, 1) for h in hidden]
        first = degrees[1][:, None] >= inputs[None, :]
        self.first = MaskedLinear(first) if first.any() else None  # one feature: x_1 sees no input
        self.width = hidden[0]
        self.context_layer = nn.Linear(context_features, hidden[0]) if context_features else None
        layers: list[nn.Module] = []
        for d_in, d_out in pairwise(degrees[1:]):
            mask = d_out[:, None] >= d_in[None, :]
            layers += [_ResidualBlock(mask, activation)] if residual else [ACTIVATIONS[activation](), MaskedLinear(mask)]
        outputs = inputs.repeat_interleave(params_per_feature)
        self.last = last_layer(MaskedLinear(outputs[:, None] > degrees[-1][None, :]), zero_init)
        self.body = nn.Sequential(*layers, ACTIVATIONS[activation]())

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        with conditioner_autocast(self, x):
            return self._forward(x, context).to(x.dtype)

    def _forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        h = self.first(x) if self.first is not None else x.new_zeros(x.shape[0], self.width)
        if self.context_layer is not None:
            if context is None or context.shape != (x.shape[0], self.context_features):
                got = None if context is None else tuple(context.shape)
                raise FlowforgeError(f"context: expected ({x.shape[0]}, {self.context_features}), got {got}")
            h = h + self.context_layer(context.to(x.dtype))
        return self.last(self.body(h)).view(x.shape[0], self.features, self.params_per_feature)
