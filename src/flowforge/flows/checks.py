"""Boundary checks for user tensors: shape, dtype, finiteness, with errors that name the problem."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import FlowforgeError


def all_finite(x: Tensor) -> bool:
    """No NaN or Inf in x. One reduction: a NaN or Inf makes the sum non-finite; only a sum that
    overflows (values near the dtype's limit) pays for the element-wise check."""
    total = x.sum(dtype=torch.float64) if x.dtype in (torch.float16, torch.bfloat16) else x.sum()
    return math.isfinite(total.item()) or bool(torch.isfinite(x).all())  # the scalar checked in Python


def check_batch(x: Tensor, event_shape: tuple[int, ...], name: str = "x") -> None:
    """Raise FlowforgeError unless x is a floating (batch, *event_shape) tensor with finite values
    (Flow casts integer inputs to its dtype before this check)."""
    if not isinstance(x, Tensor):
        raise FlowforgeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise FlowforgeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if tuple(x.shape[1:]) != tuple(event_shape) or x.dim() != len(event_shape) + 1:
        raise FlowforgeError(f"{name}: expected shape (batch, {', '.join(map(str, event_shape))}), got {tuple(x.shape)}")
    # skipped while torch.compile traces: a data-dependent branch would split the graph
    if not torch.compiler.is_compiling() and not all_finite(x):
        raise FlowforgeError(f"{name} contains NaN or Inf")


def cast_checked(x: Tensor, dtype: torch.dtype, name: str) -> Tensor:
    """x in `dtype` (the flow's); FlowforgeError when finite values overflow it (1e40 in float32)."""
    if x.dtype == dtype:
        return x
    cast = x.to(dtype)
    if x.is_floating_point() and not torch.compiler.is_compiling() and torch.isfinite(cast).sum() < torch.isfinite(x).sum():
        raise FlowforgeError(f"{name}: values too large for this flow's {str(dtype).removeprefix('torch.')}")
    return cast


def check_context(
    context: Tensor | None,
    context_features: int,
    batch: int | None,
    name: str = "context",
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor | None:
    """Validate a context; a single (context_features,) vector is broadcast to `batch` rows. A
    context given as a list or array becomes a tensor on `device` (the flow's); with `dtype` (the
    flow's), integer, boolean and other floating contexts are cast to it."""
    if context_features == 0:
        if context is not None:
            raise FlowforgeError("this flow is unconditional: pass no context")
        return None
    if context is None:
        raise FlowforgeError(f"this flow is conditional: pass a context of {context_features} features")
    if not isinstance(context, Tensor):
        try:
            context = torch.as_tensor(context, dtype=dtype or torch.get_default_dtype(), device=device)
        except (TypeError, ValueError, RuntimeError):
            raise FlowforgeError(f"{name}: expected a tensor or an array of numbers, got {type(context).__name__}") from None
    if context.is_complex():
        raise FlowforgeError(f"{name}: expected real numbers, got dtype {context.dtype}")
    if dtype is not None:
        context = cast_checked(context, dtype, name)
    if context.dim() == 1 and context.shape[0] == context_features and batch is not None:
        context = context.expand(batch, context_features)
    if context.dim() != 2 or context.shape[1] != context_features or (batch is not None and context.shape[0] != batch):
        raise FlowforgeError(
            f"{name}: expected ({batch if batch is not None else 'batch'}, {context_features}) "
            f"or ({context_features},), got {tuple(context.shape)}"
        )
    if not torch.compiler.is_compiling() and not all_finite(context):
        raise FlowforgeError(f"{name} contains NaN or Inf")
    return context
