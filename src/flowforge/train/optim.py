"""How `fit` updates the weights: Adam, the learning-rate schedule and gradient clipping."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ..errors import FlowforgeError

SCHEDULES = ("cosine", "constant", "linear")


def adam(parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with `fused=True` when torch has a fused kernel for these parameters, else the default.

    The fused kernel updates every parameter in one pass (on CPU since torch 2.4): the same update
    rule, rounded differently in the last bits, and several times faster than the per-parameter
    loop torch uses on CPU by default.
    """
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):  # an older torch, or a device/dtype without the kernel
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise FlowforgeError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")


def learning_rate(schedule: str, step: int, total: int, base: float, warmup: int) -> float:
    """lr at `step` (0-based): linear warm-up over `warmup` steps, then the named decay to 0."""
    check_schedule(schedule)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return base * (1 - progress)
    return base


def clip_grad_norm(parameters: list[torch.nn.Parameter], max_norm: float | None) -> torch.Tensor:
    """torch's clip_grad_norm_ (the same norm and the same scaled gradients, bit for bit), except
    that a step whose norm is within `max_norm` (most steps) leaves the gradients alone instead of
    multiplying them all by exactly 1, which costs a pass over every gradient. Returns the global
    2-norm (inf or NaN if a gradient is).
    """
    max_norm = math.inf if max_norm is None else max_norm
    if not hasattr(torch.nn.utils, "get_total_norm"):  # torch < 2.6
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if not bool(torch.isfinite(norm)) and all(bool(torch.isfinite(g).all()) for g in grads):
        # finite gradients whose squares overflow float32 (a far outlier in a small table) are no
        # divergence: the same norm in float64
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.double()).to(grads[0].device) for g in grads]))
    if bool(max_norm / (norm + 1e-6) < 1):  # what clip_grad_norm_ clamps to 1; False for a NaN norm too
        torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)
    return norm
