"""An exponential moving average of a module's weights (Polyak averaging), for fit_target.

After each optimiser step t (counted from 1) the average moves towards the live weights:

    avg <- d_t avg + (1 - d_t) w,    d_t = min(decay, (1 + t) / (10 + t))

The ramp on d_t lets the first steps, far from the optimum, wash out quickly instead of being
remembered for ~1 / (1 - decay) steps. Averaging the iterates cancels the step-to-step noise of a
stochastic gradient (here the samples drawn each step), which is what limits an importance
sampler's ESS once q is close to the target. Buffers (a fitted Standardize, running statistics)
are not averaged: the average takes the live module's.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class WeightAverage:
    """The moving average of `module`'s parameters; `state_dict()` is a state dict of the module."""

    def __init__(self, module: nn.Module, decay: float, saved: dict[str, Any] | None = None) -> None:
        self.decay = decay
        if saved is not None:
            self.updates = int(saved["updates"])
            self.weights = {name: value.detach().clone() for name, value in saved["weights"].items()}
        else:
            self.updates = 0
            self.weights = {name: p.detach().clone() for name, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """One step of the average towards the module's current parameters."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in module.named_parameters():
            self.weights[name].lerp_(p.detach(), 1 - decay)

    def module_state(self, module: nn.Module) -> dict[str, Tensor]:
        """`module`'s state dict with the averaged parameters in place of the live ones (copies)."""
        return {name: self.weights.get(name, value).detach().clone()
                for name, value in module.state_dict().items()}

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps, for `WeightAverage(module, decay, saved=...)`."""
        return {"updates": self.updates, "weights": {name: w.clone() for name, w in self.weights.items()}}
