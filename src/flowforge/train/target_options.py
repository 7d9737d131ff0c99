"""TargetOptions and TargetHistory: how `fit_target` trains, and what it records."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import FlowforgeError
from .data import check_positive
from .history import History
from .optim import check_schedule

OBJECTIVES = ("reverse_kl", "alpha")
KEEP_BEST = ("auto", "elbo", "ess", "last")


@dataclass(frozen=True)
class TargetOptions:
    """How [`fit_target`][flowforge.fit_target] trains. Every field is also a keyword argument of `fit_target`.

    Attributes:
        steps: optimiser steps; each draws `batch_size` samples and evaluates the target on them.
        batch_size: samples per step.
        lr, weight_decay, schedule, warmup, grad_clip, seed: as in [`FitOptions`][flowforge.FitOptions].
        objective: "reverse_kl", KL(q || p) with the reparameterisation gradient (mode-seeking), or
            "alpha", the alpha-divergence D_alpha(p || q) with self-normalised importance weights
            w^alpha on samples of q (mass-covering for alpha >= 1; alpha = 1 is the forward KL).
        alpha: the alpha of the "alpha" objective.
        anneal_steps: steps over which the target is tempered, p~^beta with beta rising linearly
            from `anneal_start` to 1 (0: no annealing).
        anneal_start: beta at step 0.
        forward_weight: the weight of the forward-KL term -mean log q(s) on `samples` given to fit_target.
        eval_every: steps between held-out importance-sampling evaluations (default: steps / 20).
        eval_samples: fresh samples per evaluation.
        keep_best: which evaluated weights end in the flow: "elbo" (the latest whose held-out reverse
            KL is within two standard errors of the lowest: later weights unless earlier ones are
            measurably better),
            "ess" (highest ESS), "last", or "auto" ("elbo" for reverse_kl, "ess" for alpha).
        ema: the decay of an exponential moving average of the weights (Polyak averaging), e.g.
            0.99: the evaluations score, and `keep_best` keeps, the averaged weights, while training
            continues from the live ones; None or 0: no average.
        path_gradient: reverse_kl only: the path gradient ("sticking the landing"), which drops the
            score term of the reparameterised gradient: the same expected gradient, with a variance
            that vanishes as q approaches the target (one more pass of the flow per step).
        patience: evaluations without improvement before stopping early (None: never).
        progress: show a progress bar.
        checkpoint_every: steps between calls of `on_checkpoint` (None: only at the end).
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup: int | None = None
    grad_clip: float | None = 10.0
    seed: int = 0
    objective: str = "reverse_kl"
    alpha: float = 2.0
    anneal_steps: int = 0
    anneal_start: float = 0.1
    forward_weight: float = 1.0
    eval_every: int | None = None
    eval_samples: int = 2048
    keep_best: str = "auto"
    ema: float | None = 0.99
    path_gradient: bool = True
    patience: int | None = None
    progress: bool = True
    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        check_positive(steps=self.steps, batch_size=self.batch_size, lr=self.lr, grad_clip=self.grad_clip,
                       eval_every=self.eval_every, eval_samples=self.eval_samples, patience=self.patience,
                       alpha=self.alpha, anneal_start=self.anneal_start)
        for name in ("steps", "batch_size", "anneal_steps", "eval_every", "eval_samples", "patience"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise FlowforgeError(f"{name} must be a whole number, got {value!r}")
        if self.objective not in OBJECTIVES:
            raise FlowforgeError(f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")
        if self.keep_best not in KEEP_BEST:
            raise FlowforgeError(f"unknown keep_best {self.keep_best!r}; choose from {', '.join(KEEP_BEST)}")
        if self.ema is not None and (isinstance(self.ema, bool) or not isinstance(self.ema, (int, float))
                                     or not 0 <= self.ema < 1):
            raise FlowforgeError(f"ema must be a decay in [0, 1) or None, got {self.ema!r}")
        if self.anneal_start > 1 or self.forward_weight < 0:
            raise FlowforgeError("anneal_start must be in (0, 1] and forward_weight >= 0")
        check_schedule(self.schedule)

    @classmethod
    def merge(cls, options: TargetOptions | None, overrides: dict[str, Any]) -> TargetOptions:
        """`options` (default: the defaults) with the fields named in `overrides` replaced; filled in."""
        if options is not None and not isinstance(options, cls):
            raise FlowforgeError(f"fit_target: options must be a TargetOptions, got {type(options).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise FlowforgeError(f"fit_target: unknown option {unknown[0]!r}; choose from {', '.join(names)}")
        merged = dataclasses.replace(options or cls(), **overrides)
        keep_best = merged.keep_best if merged.keep_best != "auto" else ("ess" if merged.objective == "alpha" else "elbo")
        return dataclasses.replace(merged, warmup=min(100, merged.steps // 20) if merged.warmup is None else merged.warmup,
                                   eval_every=merged.eval_every or max(1, merged.steps // 20), keep_best=keep_best)

    def beta(self, step: int) -> float:
        """The inverse temperature of the target at `step`."""
        if step >= self.anneal_steps:
            return 1.0
        return self.anneal_start + (1 - self.anneal_start) * step / self.anneal_steps


@dataclass
class TargetHistory(History):
    """`History` of a target fit. `train_nll` holds each step's mean of log q(x) - beta log p~(x)
    over its samples (the reverse KL to the tempered target, up to its log Z); `val_nll` the same
    on each evaluation's fresh samples at beta = 1, with the importance-sampling results beside it.
    `best_val_nll` is the kept evaluation's score: its reverse KL, or minus its ESS (keep_best="ess")."""

    val_ess: list[float] = field(default_factory=list)
    val_log_z: list[float] = field(default_factory=list)
    val_log_z_stderr: list[float] = field(default_factory=list)
    dropped_samples: int = 0
    target_evaluations: int = 0

    @staticmethod
    def base_fields() -> set[str]:
        """The field names of `History`, which `TrainState.from_dict` restores."""
        return {f.name for f in dataclasses.fields(History)}
