"""What `fit` has done: the History it returns, and the TrainState a resumed run continues from."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class History:
    """Per-step train NLL, learning rate and gradient norm (before clipping); per-evaluation
    validation NLL; the outcome."""

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
    grad_norm: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clone_state(module: nn.Module | torch.optim.Optimizer) -> dict[str, Any]:
    """A deep copy of a module's or optimizer's state_dict (detached from later updates)."""
    return copy.deepcopy(module.state_dict())


@dataclass
class TrainState:
    """Progress of `fit` that is not in the model's weights: all a resumed run needs to continue
    bit-exactly, as tensors and numbers only.

    `good` is the last finite (model, optimizer) snapshot, restored after repeated non-finite
    steps; `best` holds the weights with the lowest validation NLL so far; `ema` the moving
    average of the weights (train/ema.py), when fit keeps one.
    """

    step: int = 0
    history: History = field(default_factory=History)
    best: dict[str, Tensor] | None = None
    good: tuple[dict[str, Any], dict[str, Any]] | None = None
    lr_factor: float = 1.0
    bad_in_row: int = 0
    evals_since_best: int = 0
    ema: dict[str, Tensor] | None = None

    def to_dict(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """A checkpointable dict: loadable with torch.load(weights_only=True)."""
        return {
            "step": self.step,
            "history": self.history.to_dict(),
            "best": self.best,
            "good_model": self.good[0] if self.good else None,
            "good_optimizer": self.good[1] if self.good else None,
            "lr_factor": self.lr_factor,
            "bad_in_row": self.bad_in_row,
            "evals_since_best": self.evals_since_best,
            "ema": self.ema,
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            # each GPU's generator too (dequantisation noise drawn on the GPU), where one is in use
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        }

    @classmethod
    def from_dict(cls, saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> TrainState:
        """Restore the state and the optimizer (and the global RNG) from `to_dict`'s output."""
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        cuda_rng = saved["cuda_rng"]
        if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_rng)  # resumed elsewhere (the CPU, other GPUs): not bit-exact
        good = (saved["good_model"], saved["good_optimizer"]) if saved["good_model"] is not None else None
        return cls(
            step=int(saved["step"]),
            history=History(**saved["history"]),
            best=saved["best"],
            good=good,
            lr_factor=float(saved["lr_factor"]),
            bad_in_row=int(saved["bad_in_row"]),
            evals_since_best=int(saved["evals_since_best"]),
            ema=saved.get("ema"),  # absent from states saved before fit kept averages
        )
