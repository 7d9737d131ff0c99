"""Context embedding networks, registered by name, so a flow that uses one saves it as JSON.

A conditional flow built with `embedding_net=...` feeds its context (after the flow's own
context Standardize) through the embedding, and its layers see the embedding's `out_features`:
what simulation-based inference needs for images or time series as context. A flow stores
the spec (a name and JSON keyword arguments), never a pickled module; register your own with
`@register_embedding("name")` (a class whose constructor takes `in_features` first and has an
`out_features` attribute).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from ..errors import FlowforgeError
from .mlp import ACTIVATIONS, check_activation

EMBEDDINGS: dict[str, Callable[..., nn.Module]] = {}


def register_embedding(name: str) -> Callable[[type], type]:
    """Class decorator: list an embedding network under `name` for `embedding_net`."""

    def decorate(cls: type) -> type:
        EMBEDDINGS[name] = cls
        return cls

    return decorate


@register_embedding("mlp")
class MLPEmbedding(nn.Module):
    """(B, in_features) -> (B, out_features): a fully connected network, activation between layers."""

    def __init__(self, in_features: int, out_features: int = 16, hidden: Sequence[int] = (64,), activation: str = "relu") -> None:
        super().__init__()
        check_activation(activation)
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers += [nn.Linear(a, b)] + ([ACTIVATIONS[activation]()] if i < len(sizes) - 2 else [])
        self.net, self.out_features = nn.Sequential(*layers), out_features

    def forward(self, context: Tensor) -> Tensor:
        return self.net(context)


@register_embedding("cnn")
class CNNEmbedding(nn.Module):
    """(B, C * H * W) flattened images -> (B, out_features): two 3x3 convolutions (stride 2),
    global average pooling, a linear layer.

    Args:
        in_features: C * H * W, the context's width.
        shape: (C, H, W), the image each context row holds (row-major, as `reshape` reads it).
        out_features: the embedding's size, what the flow's layers see.
        channels: channels of the convolutions.
    """

    def __init__(self, in_features: int, shape: Sequence[int], out_features: int = 16, channels: int = 16) -> None:
        super().__init__()
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or shape[0] * shape[1] * shape[2] != in_features:
            raise FlowforgeError(f"cnn embedding: shape {list(shape)} must be (C, H, W) with C * H * W = {in_features}, "
                                 "the context's width")
        self.shape, self.out_features = shape, out_features
        self.net = nn.Sequential(
            nn.Conv2d(shape[0], channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, out_features),
        )

    def forward(self, context: Tensor) -> Tensor:
        return self.net(context.reshape(context.shape[0], *self.shape))


def embedding_spec(embedding_net: str | dict[str, Any]) -> dict[str, Any]:
    """The JSON spec of an embedding: {"name": ..., **kwargs}; a bare name means its defaults."""
    spec = {"name": embedding_net} if isinstance(embedding_net, str) else dict(embedding_net) if isinstance(embedding_net, dict) else None
    if spec is None or not isinstance(spec.get("name"), str):
        raise FlowforgeError("embedding_net must be a registered name or a dict {'name': ..., **kwargs} "
                             f"(saved as JSON, never pickled), got {embedding_net!r}")
    return spec


def build_embedding(embedding_net: str | dict[str, Any], in_features: int) -> nn.Module:
    """The embedding a spec names, for a context of `in_features` numbers."""
    spec = embedding_spec(embedding_net)
    name, kwargs = spec.pop("name"), spec
    if name not in EMBEDDINGS:
        raise FlowforgeError(f"unknown embedding_net {name!r}; choose from {', '.join(sorted(EMBEDDINGS))}")
    try:
        module = EMBEDDINGS[name](in_features, **kwargs)
    except TypeError as error:
        raise FlowforgeError(f"embedding_net {name!r}: {error}") from None
    out = getattr(module, "out_features", None)
    if not isinstance(out, int) or out < 1:
        raise FlowforgeError(f"embedding_net {name!r} has no positive integer out_features")
    return module
