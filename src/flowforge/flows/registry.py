"""The one registry of model builders, used by the command line and by checkpoints.

A checkpoint stores a model as its registry name plus JSON kwargs (never a pickle), so
`load` rebuilds it with no user code.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import FlowforgeError
from ..nn.embedding import build_embedding, embedding_spec
from ..transforms.standardize import Standardize
from .flow import Flow

MODELS: dict[str, Callable[..., Flow]] = {}


def _jsonable(value: Any) -> Any:
    """A builder argument as JSON stores it: lists for tuples, Python numbers for numpy's."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value.item() if hasattr(value, "item") and getattr(value, "shape", None) == () else value


def _check_seed(arguments: dict[str, Any]) -> None:
    """A named error for a seed that is not a whole number, which a builder would store in its
    spec or pass to torch.manual_seed, which refuses it."""
    seed = arguments.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(_jsonable(seed), int):
        raise FlowforgeError(f"seed must be a whole number, got {seed!r}")


def register(name: str) -> Callable[[Callable[..., Flow]], Callable[..., Flow]]:
    """Decorator: list a builder under `name`; the flows it builds remember (name, kwargs)."""

    def decorate(builder: Callable[..., Flow]) -> Callable[..., Flow]:
        @functools.wraps(builder)
        def build(*args: Any, **kwargs: Any) -> Flow:
            embedding_net = kwargs.pop("embedding_net", None)
            bound = inspect.signature(builder).bind(*args, **kwargs)
            _check_seed(bound.arguments)
            if "seed" in bound.arguments:
                bound.arguments["seed"] = _jsonable(bound.arguments["seed"])
            embedding, context_features = None, bound.arguments.get("context_features", 0)
            if embedding_net is not None:
                embedding = _embedding_for(embedding_net, context_features, name)
                bound.arguments["context_features"] = embedding.out_features  # what the layers see
            flow = builder(*bound.args, **bound.kwargs)
            bound.apply_defaults()  # record every option, so a later default change cannot alter a load
            if embedding is not None:
                _attach_embedding(flow, embedding, context_features)
                bound.arguments["context_features"] = context_features
                bound.arguments["embedding_net"] = embedding_spec(embedding_net)
            flow.spec = {"model": name, "kwargs": {k: _jsonable(v) for k, v in bound.arguments.items()}}
            return flow

        MODELS[name] = build
        return build

    return decorate


def _embedding_for(embedding_net: Any, context_features: Any, model: str) -> nn.Module:
    """The embedding network `embedding_net` names, for a context of `context_features` numbers."""
    if isinstance(context_features, bool) or not isinstance(context_features, int) or context_features < 1:
        raise FlowforgeError(f"model {model!r}: embedding_net needs a context (context_features >= 1), got {context_features!r}")
    return build_embedding(embedding_net, context_features)


def _attach_embedding(flow: Flow, embedding: nn.Module, context_features: int) -> None:
    """Give a flow built for the embedding's output its embedding: it then takes the raw context
    (checked, and standardised if the flow standardises its context, at its raw width)."""
    flow.context_embedding = embedding
    if flow.context_standardize is not None:
        flow.context_standardize = Standardize(context_features)
    flow.context_features = context_features


def build_model(name: str, **kwargs: Any) -> Flow:
    """Build a registered model by name, with a clear error for unknown names or options."""
    key = name.lower()
    if key not in MODELS:
        raise FlowforgeError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    try:
        return MODELS[key](**kwargs)
    except TypeError as error:
        raise FlowforgeError(f"model {name!r}: {error}") from None
