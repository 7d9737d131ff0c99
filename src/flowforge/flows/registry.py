"""The one registry of model builders, used by the command line and by checkpoints.

A checkpoint stores a model as its registry name plus JSON kwargs (never a pickle), so
`load` rebuilds it with no user code.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ..errors import FlowforgeError
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
            bound = inspect.signature(builder).bind(*args, **kwargs)
            _check_seed(bound.arguments)
            if "seed" in bound.arguments:
                bound.arguments["seed"] = _jsonable(bound.arguments["seed"])
            flow = builder(*bound.args, **bound.kwargs)
            bound.apply_defaults()  # record every option, so a later default change cannot alter a load
            flow.spec = {"model": name, "kwargs": {k: _jsonable(v) for k, v in bound.arguments.items()}}
            return flow

        MODELS[name] = build
        return build

    return decorate


def build_model(name: str, **kwargs: Any) -> Flow:
    """Build a registered model by name, with a clear error for unknown names or options."""
    key = name.lower()
    if key not in MODELS:
        raise FlowforgeError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    try:
        return MODELS[key](**kwargs)
    except TypeError as error:
        raise FlowforgeError(f"model {name!r}: {error}") from None
