"""History: what `fit` did, step by step, in plain lists (JSON-able)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class History:
    """Per-step train NLL and learning rate; per-evaluation validation NLL; the outcome."""

    step: list[int] = field(default_factory=list)
    train_nll: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    best_step: int = 0
    best_val_nll: float = float("inf")
    stopped_early: bool = False
    interrupted: bool = False
    skipped_steps: int = 0
    restores: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
