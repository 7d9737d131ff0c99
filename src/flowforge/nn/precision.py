"""Mixed precision for conditioner networks only: the flow's data path, its log-det sums and
the base log-density stay in the flow's own dtype (float32), so bf16/fp16 speed up the big
matrix products without rounding the change of variables."""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def conditioner_autocast(module: nn.Module, x: Tensor) -> Any:
    """autocast to the module's `autocast_dtype` (set by set_precision), or a no-op."""
    dtype = getattr(module, "autocast_dtype", None)
    return torch.autocast(x.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def set_precision(flow: nn.Module, precision: str) -> None:
    """Run every conditioner of `flow` under autocast to `precision` ("fp32", "bf16", "fp16")."""
    if precision not in PRECISIONS:
        raise FlowforgeError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    from . import MADE, MLP, ConvNet

    dtype = PRECISIONS[precision]
    for module in flow.modules():
        if isinstance(module, (MLP, MADE, ConvNet)):
            module.autocast_dtype = dtype
