"""`nn.Module._compiled_call_impl` and `nn.Module._call_impl`: the slot nn.Module.compile fills, and
the module's ordinary call (hooks, then forward).

Why: flowforge.compile compiles a transform in place, as `nn.Module.compile` does, but through a
callable of its own: one that runs a no-grad pass over a large batch, or a call that sets up an
ActNorm, eagerly (flowforge/compile.py). `nn.Module.compile` takes no such callable, and
`Module.__call__` runs `_compiled_call_impl` when it is set, so hooks, DDP and `print(model)` keep
working and state_dict is unchanged. Tested on torch 2.13.0; both attributes exist since torch 2.2
(where nn.Module.compile appeared; flowforge declares torch>=2.2).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn


def set_compiled_call(module: nn.Module, call: Callable[..., Any] | None) -> None:
    """Make `module(...)` run `call` (None: its ordinary call again)."""
    module._compiled_call_impl = call


def compiled_call(module: nn.Module) -> Callable[..., Any] | None:
    """What `module(...)` runs instead of its ordinary call, if anything."""
    return getattr(module, "_compiled_call_impl", None)


def eager_call(module: nn.Module) -> Callable[..., Any]:
    """The module's ordinary call, hooks included, bypassing any compiled one."""
    return module._call_impl
