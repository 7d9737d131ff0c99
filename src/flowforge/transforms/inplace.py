"""No-grad passes of a chain of vector layers on one buffer, overwritten in place.

Without autograd nothing reads a layer's input after the layer has run, so `Compose` runs its
layers on one private copy of x: a coupling overwrites only its transformed part (nothing
allocated, the kept part never copied), Standardize scales in place, and a `Reverse` just records
that the columns are now in reverse order. The next coupling then reads and writes them in that
order (fused.coupling_ reverses a few KiB of its weights instead of moving the batch); a last
flip restores the order if a Reverse is still pending at the end or before a layer that has no
in-place step. One copy of the batch replaces an allocation per layer and one per flip: on CPU
fresh allocations of a few MiB come back from the OS as pages that fault on first touch.

A layer opts in with two methods (the default Transform has neither):
    steps_in_place(x) -> bool                         can it run in place on this input?
    step_(x, context, inverse, flipped) -> (logabsdet or None, flipped after)
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..torch_internals.functorch import transforms_active


def plain_no_grad() -> bool:
    """No autograd, and no tracer or torch.func transform that the hand-written kernels' in-place
    and out= ops would trip (those runs take the ordinary ops)."""
    return not torch.is_grad_enabled() and not torch.compiler.is_compiling() and not transforms_active()


def in_place_pass(x: Tensor) -> bool:
    """A pass that may run in place: `plain_no_grad`, on rows of vectors."""
    return plain_no_grad() and x.dim() == 2


def runs_blocked(layers: Iterable[nn.Module], x: Tensor) -> bool:
    """An in-place pass over x in which some layer runs its CPU kernel in blocks (its `runs_blocked`)."""
    return in_place_pass(x) and any(getattr(layer, "runs_blocked", _never)(x) for layer in layers)


def run_in_place(layers: Iterable[nn.Module], x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
    """(y, summed log|det|) of the layers applied in order (each one's inverse when `inverse`);
    x itself is never written."""
    total = x.new_zeros(x.shape[0])
    work: Tensor | None = None  # our own copy of the running value, or None while we hold none
    flipped = False  # work's columns are in reverse order
    for layer in layers:
        current = x if work is None else work
        if getattr(layer, "steps_in_place", _never)(current):
            if work is None:
                work = x.clone(memory_format=torch.contiguous_format)
            logabsdet, flipped = layer.step_(work, context, inverse, flipped)
            if logabsdet is not None:
                total += logabsdet
            continue
        if work is not None:
            x, work, flipped = (work.flip(1) if flipped else work), None, False
        x, logabsdet = layer.inverse(x, context) if inverse else layer(x, context)
        total = total + logabsdet
    if work is None:
        return x, total
    return (work.flip(1) if flipped else work), total


def _never(x: Tensor) -> bool:
    return False
