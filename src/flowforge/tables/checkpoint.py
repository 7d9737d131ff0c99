"""Resumable TableFlow training: one checkpoint file holds the continuous flow with `fit`'s training
state (optimizer, RNG, history, best and live weights), the fitted categorical model, and what both
were fitted to, in flowforge.save's format (tensors and JSON, read with weights_only: no pickle).

`TableFlow.fit(df, checkpoint=PATH)` writes it every `save_every` flow steps, at the end and when
`should_stop()` asks; `fit(df, checkpoint=PATH, resume=True)` continues from it, on the CPU to the
same weights as a fit that never stopped. A checkpoint of other rows, another schema or other
options is refused by name; only `steps` may change (a larger one trains on).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..train import save
from ..train.checkpoint import check_finite_weights, read_checkpoint

FORMAT = 1
MODEL_STATES = ("best", "good_model", "live_model")  # the state_dicts inside fit's training state
CHANGEABLE = ("steps",)  # the options a resumed fit may change


def rows_fingerprint(continuous: np.ndarray, codes: np.ndarray) -> str:
    """SHA-256 of the rows a fit trains on (encoded: continuous values and category codes)."""
    digest = hashlib.sha256()
    for array in (continuous, codes):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class TableCheckpoint:
    """fit's `on_checkpoint` for a TableFlow: write the flow, the training state and `record`
    (schema, options, rows fingerprint, the categorical model's fit) to `path`, atomically."""

    def __init__(self, path: str | os.PathLike, flow: Flow, record: dict[str, Any], categorical: dict[str, Tensor]) -> None:
        self.path, self.flow, self.record_json, self.categorical = Path(path), flow, json.dumps(record), categorical

    def __call__(self, state: dict[str, Any]) -> None:
        for name in MODEL_STATES:
            if state.get(name) is not None:
                check_finite_weights(state[name], f"save: refusing to write non-finite weights in the training state ({name})")
        save(self.flow, self.path, table_json=self.record_json, step=int(state["step"]), train_state=state,
             categorical=self.categorical)


def read_table_checkpoint(path: str | os.PathLike, record: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint at `path` (its flow weights, `train_state`, `categorical` state and `record`),
    after checking it was written by a fit of the same rows, schema and options as `record`'s."""
    path = Path(path)
    if not path.is_file():
        raise FlowforgeError(f"resume: no checkpoint at {path} (fit(df, checkpoint=...) writes one)")
    payload = read_checkpoint(path)
    try:
        saved = json.loads(payload["table_json"])
        state = payload["train_state"]
        payload["categorical"]
    except (KeyError, TypeError, ValueError):
        raise FlowforgeError(f"{path}: not a TableFlow training checkpoint (written by flowforge.save or a numeric run?)") from None
    if saved.get("format") != FORMAT or not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise FlowforgeError(f"{path}: TableFlow checkpoint format {saved.get('format')!r}, expected {FORMAT}")
    problems = []
    if saved["rows"] != record["rows"]:
        problems.append("it was written while fitting other rows (the table, its subset or the split differ)")
    if saved["schema"] != record["schema"]:
        problems.append("its schema differs")
    options = sorted(k for k in saved["options"].keys() | record["options"].keys()
                     if k not in CHANGEABLE and saved["options"].get(k) != record["options"].get(k))
    problems += [f"{k} was {saved['options'].get(k)!r}, now {record['options'].get(k)!r}" for k in options]
    if problems:
        raise FlowforgeError(f"cannot resume from {path}: " + "; ".join(problems))
    return {"weights": payload["state_dict"], "train_state": state, "categorical": payload["categorical"], "record": saved}


def continued(state: dict[str, Any], saved_steps: int, steps: int) -> dict[str, Any]:
    """fit's training state to resume at `steps` total: a fit that stopped early trains on when
    more steps than it was given are asked for (as `train --resume --steps` does)."""
    if steps > saved_steps and state["history"].get("stopped_early"):
        return {**state, "history": {**state["history"], "stopped_early": False}, "evals_since_best": 0}
    return state
