"""`function.__code__.replace()`: a function with a code object of its own.

Why: dynamo keeps compiled code per code object, at most `recompile_limit` (8) entries. With one
shared code object (`Flow._density`, or `nn.Module._call_impl`, which every module compiled with
nn.Module.compile shares), the ninth flow of a new shape compiled in one process (a sweep over
architectures) would run eagerly. A fresh code object per compiled flow gives each its own cache.
`CodeType.replace` is public Python, but that dynamo's cache is keyed by code object is a torch
internal. Tested on torch 2.13.0 (flowforge declares torch>=2.2).
"""
from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any


def own_copy(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` with a code object of its own (same globals, defaults, closure and names)."""
    copy = types.FunctionType(function.__code__.replace(), function.__globals__, function.__name__,
                              function.__defaults__, function.__closure__)
    copy.__kwdefaults__, copy.__qualname__ = function.__kwdefaults__, function.__qualname__
    return copy
