"""An exponential moving average (EMA) of a flow's weights, kept by `fit(..., ema=decay)`.

After the n-th optimiser step (n = 1, 2, ...) each trainable parameter's average moves towards it:

    avg <- d avg + (1 - d) theta,        d = min(decay, (1 + n) / (10 + n))

The warm-up of d (as in TensorFlow's ExponentialMovingAverage with num_updates) lets a short run
forget the initial weights: after 100 steps the average spans about the last 10. Averaging the
iterates of a noisy objective (flow matching's regression on random times and noise) cancels much
of their noise, which the exact likelihood of a CNF feels: see benchmarks/RESULTS.md.

fit_target keeps the same average (WeightAverage): there it cancels the step-to-step noise of the
samples drawn each step, which limits an importance sampler's ESS once q is close to the target.

The average is a dict of tensors (checkpointable with the rest of fit's state), loaded into the
flow itself for evaluation: buffers (a Standardize's statistics) are always the flow's own.
torch.optim.swa_utils.AveragedModel would keep a second module instead, whose buffers go stale.

Reference: Polyak and Juditsky, Acceleration of stochastic approximation by averaging, 1992.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


def ema_start(module: nn.Module) -> dict[str, Tensor]:
    """The average at the start: a copy of the trainable parameters, by name."""
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


@torch.no_grad()
def ema_update(average: dict[str, Tensor], module: nn.Module, decay: float, updates: int) -> None:
    """Move `average` towards the module's parameters after its `updates`-th step."""
    weight = 1 - min(decay, (1 + updates) / (10 + updates))
    for name, p in module.named_parameters():
        if name in average:
            average[name].lerp_(p.detach(), weight)


@contextmanager
def ema_weights(module: nn.Module, average: dict[str, Tensor] | None) -> Iterator[None]:
    """Within the block the module holds the averaged weights (no-op for `average=None`); after
    it, its own again."""
    if average is None:
        yield
        return
    live = ema_start(module)
    load_weights(module, average)
    try:
        yield
    finally:
        load_weights(module, live)


@torch.no_grad()
def load_weights(module: nn.Module, weights: dict[str, Tensor]) -> None:
    """Copy `weights` (by parameter name) into the module's parameters."""
    for name, p in module.named_parameters():
        if name in weights:
            p.copy_(weights[name])


class WeightAverage:
    """The moving average of `module`'s parameters with its update count, as fit_target keeps it
    (the functions above, in an object that also gives a state dict and a checkpoint record)."""

    def __init__(self, module: nn.Module, decay: float, saved: dict[str, Any] | None = None) -> None:
        self.decay = decay
        if saved is not None:
            self.updates = int(saved["updates"])
            self.weights = {name: value.detach().clone() for name, value in saved["weights"].items()}
        else:
            self.updates, self.weights = 0, ema_start(module)

    def update(self, module: nn.Module) -> None:
        """One step of the average towards the module's current parameters."""
        self.updates += 1
        ema_update(self.weights, module, self.decay, self.updates)

    def module_state(self, module: nn.Module) -> dict[str, Tensor]:
        """`module`'s state dict with the averaged parameters in place of the live ones (copies)."""
        return {name: self.weights.get(name, value).detach().clone() for name, value in module.state_dict().items()}

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps, for `WeightAverage(module, decay, saved=...)`."""
        return {"updates": self.updates, "weights": {name: w.clone() for name, w in self.weights.items()}}
