"""The optimizer `fit` uses: Adam, fused into one kernel per step where torch supports it."""
from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with `fused=True` when torch has a fused kernel for these parameters, else the default.

    The fused kernel updates every parameter in one pass (on CPU since torch 2.4): the same update
    rule, rounded differently in the last bits, and several times faster than the per-parameter
    loop torch uses on CPU by default (~0.08x instead of ~0.3x a d=64 R-NVP's matrix products).
    """
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):  # an older torch, or a device/dtype without the kernel
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
