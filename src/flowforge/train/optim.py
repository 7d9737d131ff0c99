"""The optimizer `fit` uses: Adam, fused into one kernel per step where torch supports it."""
from __future__ import annotations

import math
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


def clip_grad_norm(parameters: list[torch.nn.Parameter], max_norm: float | None) -> torch.Tensor:
    """The gradients' global 2-norm (a 0-d tensor; inf or NaN if any gradient is), after scaling
    every gradient by max_norm / (norm + 1e-6) where that is below 1, as torch's clip_grad_norm_.

    Unlike torch's, a step whose norm is within `max_norm` (most steps) leaves the gradients alone
    instead of multiplying them all by exactly 1, and each squared norm is a dot product: for a d=64
    R-NVP's 48 gradients (2.5M numbers, 2 threads, within the bound) 0.61 ms against torch's 1.25 ms
    in one run; fit's compiled d=64 step (H=512, batch 256) went from 24.3 to 23.8 ms.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    squares = [_squared_norm(g) for g in grads]
    if not _same_place(squares):  # gradients of several dtypes or devices: add up in float64 on the first's
        squares = [s.to(grads[0].device, torch.float64) for s in squares]
    norm = torch.stack(squares).sum().sqrt()
    if max_norm is not None and math.isfinite(max_norm):
        coef = max_norm / (norm + 1e-6)
        if bool(coef < 1):  # False for a NaN norm too: fit skips that step anyway
            if _same_place(grads):
                torch._foreach_mul_(grads, coef.to(grads[0].dtype))
            else:
                for g in grads:
                    g.mul_(coef.to(g.device, g.dtype))
    return norm


def _squared_norm(g: torch.Tensor) -> torch.Tensor:
    """sum(g^2) in float32 or wider; a dot product (one vectorised pass) where g is a flat float tensor's view."""
    flat = g.reshape(-1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    return torch.dot(flat, flat) if flat.is_contiguous() and not flat.is_complex() else flat.abs().square().sum()


def _same_place(grads: list[torch.Tensor]) -> bool:
    return len({(g.device, g.dtype) for g in grads}) == 1
