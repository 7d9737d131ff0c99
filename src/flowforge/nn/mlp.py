"""MLP conditioner: (B, in) and optional context -> (B, out), last layer zero-initialised."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Module):
    """Fully connected network; the context, if any, is concatenated to the input.

    Args:
        in_features, out_features: sizes of the input and output vectors.
        hidden: widths of the hidden layers, e.g. (256, 256).
        context_features: size of the context vector (0 for none).
        activation: one of ACTIVATIONS.
        zero_init: zero the last layer, so a coupling built on it starts at the identity.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (256, 256),
        context_features: int = 0,
        activation: str = "relu",
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise FlowforgeError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        self.context_features = context_features
        sizes = [in_features + context_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        last = nn.Linear(sizes[-1], out_features)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.context_features:
            if context is None:
                raise FlowforgeError(f"this conditioner needs a context of {self.context_features} features")
            if context.shape != (x.shape[0], self.context_features):
                raise FlowforgeError(
                    f"context: expected ({x.shape[0]}, {self.context_features}), got {tuple(context.shape)}"
                )
            x = torch.cat([x, context.to(x.dtype)], dim=1)
        return self.net(x)
