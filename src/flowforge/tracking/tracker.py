"""Tracker: a `fit` callback that sends each evaluation's numbers to an experiment tracker.

At each evaluation (and every `every` steps when fit has no validation rows) it logs

    train_nll      mean training NLL since the last log (nats)
    val_nll        the validation NLL of this evaluation (nats)
    lr             the learning rate of the last step
    grad_norm      mean gradient norm (before clipping) since the last log; grad_norm_max its largest
    steps_per_second, rows_per_second (with `batch_size`)   throughput since the last log

and `finish(metrics, config, plots)` logs a finished run's metrics, its configuration and its
plots, then closes the tracker. Subclasses say where the numbers go (`_scalars`, `_finish`).
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..flows.flow import Flow
from ..train.history import History


class Tracker:
    """The shared logic of TensorBoardTracker and MLflowTracker; use it as `fit(..., callback=tracker)`.

    Args:
        batch_size: rows per step, to log rows_per_second (None: steps_per_second only).
        every: steps between logs when fit runs without validation rows.
    """

    def __init__(self, batch_size: int | None = None, every: int = 50) -> None:
        self.batch_size, self.every = batch_size, every
        self.last_step, self.last_time, self.closed = 0, time.perf_counter(), False

    def __call__(self, step: int, flow: Flow, history: History) -> None:
        is_evaluation = bool(history.val_step) and history.val_step[-1] == step
        if not is_evaluation and (history.val_step or step % self.every):
            return
        self._scalars(step, self.evaluation(step, history, is_evaluation))

    def evaluation(self, step: int, history: History, is_evaluation: bool) -> dict[str, float]:
        """The numbers logged at `step`: what happened since the last log."""
        now = time.perf_counter()
        window = [i for i, s in enumerate(history.step) if self.last_step <= s < step]
        values = {"lr": history.lr[-1]} if history.lr else {}
        if window:
            values["train_nll"] = sum(history.train_nll[i] for i in window) / len(window)
            norms = [history.grad_norm[i] for i in window if i < len(history.grad_norm)]
            if norms:
                values["grad_norm"], values["grad_norm_max"] = sum(norms) / len(norms), max(norms)
        if is_evaluation:
            values["val_nll"] = history.val_nll[-1]
        seconds = now - self.last_time
        if seconds > 0 and step > self.last_step:
            values["steps_per_second"] = (step - self.last_step) / seconds
            if self.batch_size:
                values["rows_per_second"] = values["steps_per_second"] * self.batch_size
        self.last_step, self.last_time = step, now
        return {name: float(value) for name, value in values.items() if math.isfinite(value)}

    def finish(self, metrics: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
               plots: Iterable[str | Path] = ()) -> None:
        """Log a finished run's metrics (their numbers), its config and its plot images, then close."""
        if self.closed:
            return
        numbers = {k: float(v) for k, v in (metrics or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        self._finish(numbers, config or {}, [Path(p) for p in plots if Path(p).is_file()])
        self.closed = True

    def close(self) -> None:
        """Close without the final record (training failed or was interrupted)."""
        if not self.closed:
            self._finish(None, None, [])
            self.closed = True

    def __enter__(self) -> Tracker:  # noqa: PYI034 -- typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def _finish(self, metrics: dict[str, float] | None, config: dict[str, Any] | None, plots: list[Path]) -> None:
        raise NotImplementedError


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as flat "a.b" -> text pairs (trackers' parameters are strings)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out
