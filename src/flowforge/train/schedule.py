"""Learning-rate schedules as plain functions of the step."""
from __future__ import annotations

import math

from ..errors import FlowforgeError

SCHEDULES = ("cosine", "constant", "linear")


def learning_rate(schedule: str, step: int, total: int, base: float, warmup: int) -> float:
    """lr at `step` (0-based): linear warm-up over `warmup` steps, then the named decay to 0."""
    if schedule not in SCHEDULES:
        raise FlowforgeError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return base * (1 - progress)
    return base
