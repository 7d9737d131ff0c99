"""Training that loses no progress: resumable run checkpoints, and SIGINT/SIGTERM as a clean stop.

RUN/model.pt always holds a flow that `flowforge.load` rebuilds, plus `train_state`: fit's
resumable state (optimizer, RNG, history, best and last good weights). While training it holds
the live weights; at the end the best ones, with the live weights in `train_state["live_model"]`
for a later `--resume`. Every write is atomic, so a kill at any moment leaves the previous file.
"""
from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..train.checkpoint import atomic_write_text, check_finite_weights, save

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

MODEL_STATES = ("best", "good_model", "live_model")  # the state_dicts inside fit's training state


class StopSignals:
    """`with StopSignals() as stop: fit(..., should_stop=stop)`: the first SIGINT or SIGTERM asks
    fit to stop after the current step (it then writes its checkpoint); a second one raises
    KeyboardInterrupt. `received` is the signal number, None while none came. Outside the main
    thread, where Python cannot install handlers, it installs none."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.received is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class RunCheckpoint:
    """fit's `on_checkpoint`: write the flow and the training state to `path` (atomically)."""

    def __init__(self, flow: Flow, path: Path, config: dict[str, Any]) -> None:
        self.flow, self.path, self.config_json = flow, path, json.dumps(config)

    def __call__(self, state: dict[str, Any]) -> None:
        for name in MODEL_STATES:
            if state.get(name) is not None:
                check_finite_weights(state[name], f"save: refusing to write non-finite weights in the training state ({name})")
        save(self.flow, self.path, config_json=self.config_json, step=int(state["step"]), train_state=state)


def trim_metrics_log(path: Path, step: int) -> int:
    """Keep the metrics.jsonl lines up to `step` (a killed run may have logged past its last
    checkpoint, or left half a line); returns the last kept step (0 if none)."""
    if not path.is_file():
        return 0
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
    return json.loads(kept[-1])["step"] if kept else 0


def resume_state(payload: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """The training state of a run checkpoint, with a clear error if it has none."""
    state = payload.get("train_state")
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise FlowforgeError(f"{path} holds no training state to resume from (written by an older flowforge, or by flowforge.save)")
    return state
