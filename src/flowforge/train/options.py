"""FitOptions: how `fit` trains, as one frozen dataclass that names any unknown or invalid option."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import FlowforgeError
from .data import check_positive
from .flow_matching import COUPLINGS
from .objectives import check_objective
from .optim import check_schedule

WHOLE_NUMBERS = ("steps", "epochs", "batch_size", "eval_every", "patience")


@dataclass(frozen=True)
class FitOptions:
    """How [`fit`][flowforge.fit] trains. Every field is also a keyword argument of `fit`.

    Attributes:
        steps: optimiser steps (default: `epochs` passes over the training rows, else 2000).
        epochs: passes over the training rows, when `steps` is not given.
        batch_size: rows per step, over all processes together.
        lr: the peak learning rate of Adam.
        weight_decay: Adam's L2 penalty.
        schedule: the learning rate after warm-up: "cosine", "linear" (both decay to 0) or "constant".
        warmup: steps of linear warm-up (default: a twentieth of the steps, at most 100).
        grad_clip: the largest gradient norm; larger gradients are scaled down (None: no clipping).
        seed: the batch order, the validation split and the initial random state.
        val_fraction: the share of `train` held out for validation when no `val` is given (0: none).
        eval_every: steps between validations (default: 50 per run, and at least every 8 passes
            over the rows given).
        patience: evaluations without improvement before stopping early (None: never).
        precision: "fp32", or "bf16" / "fp16" to run the conditioner networks under autocast.
        progress: show a progress bar.
        checkpoint_every: steps between calls of `fit`'s `on_checkpoint` (None: only at the end).
        objective: what each step minimises: "likelihood" (the mean NLL) or "flow-matching"
            (conditional flow matching of a CNF's vector field, train/flow_matching.py).
        coupling: flow matching's pairing of data and noise: "independent", or "ot" (minibatch
            optimal transport, which straightens the paths).
        ema: the decay (e.g. 0.999) of an exponential moving average of the weights
            (train/ema.py), which validation, the best weights and the weights left in the flow
            then use; training goes on from the live ones (None: no average).
        time_power: flow matching draws its times as t = u^time_power, u ~ U(0, 1): 1 is uniform,
            2 puts more of them near the data (t = 0), where a sharp-edged density's field bends.
    """

    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup: int | None = None
    grad_clip: float | None = 10.0
    seed: int = 0
    val_fraction: float = 0.1
    eval_every: int | None = None
    patience: int | None = 20
    precision: str = "fp32"
    progress: bool = True
    checkpoint_every: int | None = None
    objective: str = "likelihood"
    coupling: str = "independent"
    ema: float | None = None
    time_power: float = 1.0

    def __post_init__(self) -> None:
        check_positive(steps=self.steps, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                       grad_clip=self.grad_clip, eval_every=self.eval_every, patience=self.patience)
        for name in WHOLE_NUMBERS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                raise FlowforgeError(f"{name} must be a whole number, got {value!r}")
        check_schedule(self.schedule)
        check_objective(self.objective)
        if self.coupling not in COUPLINGS:
            raise FlowforgeError(f"unknown coupling {self.coupling!r}; choose from {', '.join(COUPLINGS)}")
        if self.ema is not None and not (isinstance(self.ema, (int, float)) and not isinstance(self.ema, bool) and 0 <= self.ema < 1):
            raise FlowforgeError(f"ema must be a decay in [0, 1) (e.g. 0.999) or None, got {self.ema!r}")
        if not (isinstance(self.time_power, (int, float)) and not isinstance(self.time_power, bool) and self.time_power > 0):
            raise FlowforgeError(f"time_power must be a positive number, got {self.time_power!r}")

    @classmethod
    def merge(cls, options: FitOptions | None, overrides: dict[str, Any]) -> FitOptions:
        """`options` (default: the defaults) with the fields named in `overrides` replaced."""
        if options is not None and not isinstance(options, cls):
            raise FlowforgeError(f"fit: options must be a FitOptions, got {type(options).__name__}")
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise FlowforgeError(f"fit: unknown option {unknown[0]!r}; "
                                 f"choose from {', '.join(f.name for f in dataclasses.fields(cls))}")
        return dataclasses.replace(options or cls(), **overrides)

    def for_data(self, rows_given: int, train_rows: int) -> FitOptions:
        """These options with the data-dependent defaults filled in: `steps`, `warmup`, `eval_every`."""
        steps = self.steps or (self.epochs * max(1, train_rows // self.batch_size) if self.epochs else 2000)
        warmup = min(100, steps // 20) if self.warmup is None else self.warmup
        eval_every = self.eval_every or default_eval_every(steps, rows_given, self.batch_size)
        return dataclasses.replace(self, steps=steps, warmup=warmup, eval_every=eval_every)


def default_eval_every(steps: int, rows: int, batch_size: int) -> int:
    """Validate 50 times per run, and at least every 8 passes over the `rows` given to fit: on a
    few hundred rows, 40 steps of batch 512 are 200 passes, enough to overfit between two checks."""
    return max(1, min(steps // 50, math.ceil(8 * rows / batch_size)))
