"""ConvNet conditioner: (B, C_in, H, W) and optional context -> (B, C_out, H, W), residual blocks."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError
from .mlp import ACTIVATIONS, check_activation, last_layer, require_context
from .precision import conditioner_autocast


class _Block(nn.Module):
    """x + conv3x3(act(conv3x3(act(x)))): a pre-activation residual block."""

    def __init__(self, hidden: int, activation: str) -> None:
        super().__init__()
        self.net = nn.Sequential(
            ACTIVATIONS[activation](), nn.Conv2d(hidden, hidden, 3, padding=1),
            ACTIVATIONS[activation](), nn.Conv2d(hidden, hidden, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class ConvNet(nn.Module):
    """A ResNet-style convolutional conditioner; every convolution keeps the height and width.

        conv3x3(in -> hidden), `blocks` residual blocks, act, conv3x3(hidden -> out)

    A context, if any, enters as extra input channels: a (B, K) vector is broadcast over the
    pixels, a (B, K, H, W) map is used as is (e.g. an image a dequantiser conditions on).

    Args:
        in_channels, out_channels: channels of the input and output maps.
        hidden: channels of the hidden maps.
        blocks: number of residual blocks.
        context_features: K, the context's channels (0 for none).
        activation: one of flowforge.nn.mlp.ACTIVATIONS.
        zero_init: zero the last convolution, so a coupling built on it starts at the identity.

    Reference: He et al., Deep residual learning for image recognition, 2016 (as used by Real NVP).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int = 64,
        blocks: int = 1,
        context_features: int = 0,
        activation: str = "relu",
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        check_activation(activation)
        self.context_features = context_features
        last = last_layer(nn.Conv2d(hidden, out_channels, 3, padding=1), zero_init)  # before the body: seeded runs depend on the init order
        self.net = nn.Sequential(
            nn.Conv2d(in_channels + context_features, hidden, 3, padding=1),
            *[_Block(hidden, activation) for _ in range(blocks)],
            ACTIVATIONS[activation](),
            last,
        )

    def _with_context(self, x: Tensor, context: Tensor | None) -> Tensor:
        b, _, h, w = x.shape
        require_context(context, self.context_features)
        if context.dim() == 2 and context.shape == (b, self.context_features):
            context = context[:, :, None, None].expand(b, self.context_features, h, w)
        elif context.shape != (b, self.context_features, h, w):
            raise FlowforgeError(
                f"context: expected ({b}, {self.context_features}) or ({b}, {self.context_features}, {h}, {w}), "
                f"got {tuple(context.shape)}"
            )
        return torch.cat([x, context.to(x.dtype)], dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        with conditioner_autocast(self, x):
            h = self._with_context(x, context) if self.context_features else x
            return self.net(h).to(x.dtype)
