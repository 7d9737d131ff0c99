"""MLP conditioner: (B, in) and optional context -> (B, out), last layer zero-initialised."""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError
from .precision import conditioner_autocast

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


def check_activation(name: str) -> None:
    """A named error for an activation that is not in ACTIVATIONS (shared by every conditioner)."""
    if name not in ACTIVATIONS:
        raise FlowforgeError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")


def last_layer(layer: nn.Module, zero_init: bool) -> nn.Module:
    """A network's output layer, its weight and bias zeroed when `zero_init` (a coupling or
    autoregressive layer built on the network then starts at the identity)."""
    if zero_init:
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    return layer


def require_context(context: Tensor | None, features: int) -> None:
    """A named error for a conditioner called without the context it was built for."""
    if context is None:
        raise FlowforgeError(f"this conditioner needs a context of {features} features")


def traced_layers(layers: nn.Sequential, h: Tensor) -> Tensor:
    """The layers as torch.compile should see them: each Linear as a product, then its bias
    subtracted negated (bitwise equal to adding it; under bf16/fp16 autocast the sum comes out in
    float32 rather than in the product's dtype).

    Inductor turns `h @ W.T + b` back into addmm, whose CPU kernel first copies b into every row
    of its output, an extra pass over memory; `- (-b)` stays an elementwise op that inductor fuses
    into the next kernel (the ReLU, or the coupling's clamp and exp).
    """
    for layer in layers:
        h = torch.mm(h, layer.weight.t()) - layer.bias.neg() if isinstance(layer, nn.Linear) else layer(h)
    return h


class MLP(nn.Module):
    """Fully connected network; the context, if any, is concatenated to the input.

    Args:
        in_features, out_features: sizes of the input and output vectors.
        hidden: widths of the hidden layers, e.g. (256, 256).
        context_features: size of the context vector (0 for none).
        activation: one of ACTIVATIONS.
        zero_init: zero the last layer, so a coupling built on it starts at the identity.
    """

    autocast_dtype: torch.dtype | None = None  # set by nn.precision.set_precision

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
        check_activation(activation)
        self.context_features = context_features
        self.activation = activation
        sizes = [in_features + context_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            # in place: a Linear's backward needs its input, not its output
            act = nn.ReLU(inplace=True) if activation == "relu" else ACTIVATIONS[activation]()
            layers += [nn.Linear(a, b), act]
        self.net = nn.Sequential(*layers, last_layer(nn.Linear(sizes[-1], out_features), zero_init))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        with conditioner_autocast(self, x):
            h = self.join(x, context)
            return (traced_layers(self.net, h) if torch.compiler.is_compiling() else self.net(h)).to(x.dtype)

    def join(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The network's input: x with the context appended."""
        if not self.context_features:
            return x
        self.check_context(x.shape[0], context)
        return torch.cat([x, context.to(x.dtype)], dim=1)

    def check_context(self, batch: int, context: Tensor | None) -> None:
        """Named errors for a missing or wrongly shaped context."""
        require_context(context, self.context_features)
        if context.shape != (batch, self.context_features):
            raise FlowforgeError(f"context: expected ({batch}, {self.context_features}), got {tuple(context.shape)}")

    def linears(self) -> list[nn.Linear]:
        """The Linear layers in order (the fused coupling reads their weights)."""
        return [m for m in self.net if isinstance(m, nn.Linear)]
