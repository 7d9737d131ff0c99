"""`flowforge train --resume RUN [--steps N]` for a run on a mixed table.

The run's config.json gives the same file (refused if its bytes changed), subset, split, schema and
options; RUN/checkpoint.pt gives the flow's training state and the fitted categorical model
(tables/checkpoint.py), so a run interrupted by SIGINT/SIGTERM and resumed ends, on the CPU, with
the weights of one that never stopped. `--steps` beyond the run's own trains a finished run on.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import FlowforgeError
from ..tables import Schema
from ..train.checkpoint import read_checkpoint, remove_stale_temporaries
from .mixed_run import TABLE_CHECKPOINT, fit_table_run, run_table
from .run_folder import RunFolder, file_sha256
from .training import RunResult


def resume_table_run(run: str | os.PathLike, steps: int | None = None, save_every: int | None = None,
                     threads: int | None = None) -> RunResult:
    """Continue the table run in folder `run` to `steps` total flow steps (default: its own)."""
    folder = RunFolder.of(run)
    record = folder.record()
    config = folder.config(record)
    recorded = record.get("data", {})
    if not Path(config.data).is_file():
        raise FlowforgeError(f"cannot resume {folder.path}: its data file {config.data} is gone")
    if recorded.get("sha256") and file_sha256(config.data) != recorded["sha256"]:
        raise FlowforgeError(f"cannot resume {folder.path}: {config.data} changed since it started (its SHA-256 differs)")
    path = folder.path / TABLE_CHECKPOINT
    remove_stale_temporaries(path)  # a writer killed mid-save; the file itself is whole
    if not path.is_file():
        raise FlowforgeError(f"cannot resume {run}: it stopped before its first checkpoint (no {TABLE_CHECKPOINT}); start it "
                             "again with the same --out, and --save-every N to checkpoint during training")
    payload = read_checkpoint(path)
    state, own = payload.get("train_state") or {}, _steps_of(payload)
    done, total = state.get("step", 0), steps or own
    if done >= total:
        trained = f"{done} steps, not fewer than --steps {steps}" if steps else f"{done} of {total} steps"
        raise FlowforgeError(f"{run} has already trained {trained}; pass a larger --steps to train on")
    if state.get("history", {}).get("stopped_early") and steps is None:
        raise FlowforgeError(f"{run} stopped early at step {done} (no better validation NLL); pass --steps to train on regardless")
    config = replace(config, steps=steps or config.steps, save_every=save_every or config.save_every, threads=threads or config.threads,
                     given=tuple(sorted({*config.given, "steps"})) if steps else config.given)
    folder.write_record({**record, "config": config.to_dict()})
    df = run_table(config)
    return fit_table_run(folder, config, df, Schema.from_json(record["schema"]), record.get("missing", "drop"), resume=True)


def _steps_of(payload: dict[str, Any]) -> int:
    """The flow steps the checkpointed fit was asked for (TableFlow's default included)."""
    try:
        return int(json.loads(payload["table_json"])["steps"])
    except (KeyError, TypeError, ValueError):
        raise FlowforgeError("the run's checkpoint is not a TableFlow training checkpoint") from None
