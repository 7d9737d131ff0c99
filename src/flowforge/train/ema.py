"""An exponential moving average (EMA) of a flow's weights, kept by `fit(..., ema=decay)`.

After the n-th optimiser step (n = 1, 2, ...) each trainable parameter's average moves towards it:

    avg <- d avg + (1 - d) theta,        d = min(decay, (1 + n) / (10 + n))

The warm-up of d (as in TensorFlow's ExponentialMovingAverage with num_updates) lets a short run
forget the initial weights: after 100 steps the average spans about the last 10. Averaging the
iterates of a noisy objective (flow matching's regression on random times and noise) cancels much
of their noise, which the exact likelihood of a CNF feels: see benchmarks/RESULTS.md.

The average is a dict of tensors (checkpointable with the rest of fit's state), loaded into the
flow itself for evaluation: buffers (a Standardize's statistics) are always the flow's own.
torch.optim.swa_utils.AveragedModel would keep a second module instead, whose buffers go stale.

Reference: Polyak and Juditsky, Acceleration of stochastic approximation by averaging, 1992.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
