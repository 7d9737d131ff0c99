"""`flowforge train --resume RUN [--steps N]`: continue a run from RUN/model.pt to N total steps.

The run's config.json gives the same data, split, model and seed; the checkpoint's training state
gives the optimizer, the RNG and the history, so on the CPU a run interrupted and resumed ends
with the same weights as one that never stopped. A changed data file is refused.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import FlowforgeError
from ..train.checkpoint import CHECKPOINT_NAME, read_checkpoint, remove_stale_temporaries
from .config import TrainConfig
from .guard import resume_state
from .run_folder import RunFolder

RUN_FILES = (CHECKPOINT_NAME, "config.json", "metrics.jsonl", "metrics.json", "check.json")
SAME_DATA = ("data", "features", "model", "context")  # config.json entries a resumed run must reproduce


@dataclass(frozen=True)
class Resume:
    """A run to continue: its folder, the weights in model.pt, fit's training state, config.json."""

    folder: Path
    weights: dict[str, Any]
    state: dict[str, Any]
    resolved: dict[str, Any]

    def check_same_data(self, resolved: dict[str, Any]) -> None:
        """Refuse to continue on data (or a model) other than the run started with."""
        for key in SAME_DATA:
            old, new = self.resolved.get(key), resolved.get(key)
            if isinstance(old, dict) and isinstance(new, dict):
                new = {k: v for k, v in new.items() if k in old}  # entries a run recorded before they existed: not compared
            if old != new:
                raise FlowforgeError(
                    f"cannot resume {self.folder}: its {key} changed since it started "
                    f"({_difference(old, new)})"
                )


def prepare_resume(run: str | os.PathLike, steps: int | None = None, save_every: int | None = None,
                   threads: int | None = None, progress: bool | None = None,
                   device: str | None = None) -> tuple[TrainConfig, Resume]:
    """The config to continue with (N = `steps` total, default the run's own; `device` to move it,
    e.g. a GPU run continued on the CPU) and what to resume."""
    folder = RunFolder(Path(run))
    record = folder.record()
    if record is None:
        raise FlowforgeError(f"--resume {run}: not a run folder written by flowforge train (no config.json)")
    config = folder.config(record)
    for name in RUN_FILES:  # temporaries of a writer killed mid-save; the files themselves are whole
        remove_stale_temporaries(folder.path / name)
    path = folder.checkpoint
    if not path.exists():
        raise FlowforgeError(
            f"cannot resume {run}: it stopped before its first checkpoint (no {CHECKPOINT_NAME}); "
            "start it again with the same --out, and --save-every N to checkpoint during training"
        )
    payload = read_checkpoint(path)
    state = resume_state(payload, path)
    done, total = state["step"], steps or config.steps
    if done >= total:
        trained = f"{done} steps, not fewer than --steps {steps}" if steps else f"{done} of {config.steps} steps"
        raise FlowforgeError(f"{run} has already trained {trained}; pass a larger --steps to train on")
    if state["history"].get("stopped_early"):
        if steps is None:
            raise FlowforgeError(f"{run} stopped early at step {done} (no better validation NLL); pass --steps to train on regardless")
        state = {**state, "history": {**state["history"], "stopped_early": False}, "evals_since_best": 0}
    config = replace(config, out=str(folder.path), steps=total, save_every=save_every or config.save_every,
                     threads=threads or config.threads, progress=config.progress if progress is None else progress,
                     device=device or config.device)
    return config, Resume(folder.path, payload["state_dict"], state, record)


def _difference(old: Any, new: Any) -> str:
    """What differs: the entries of two dicts that do (the file's SHA-256 when only its bytes
    changed), else both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if keys == ["sha256"]:
            return "the file's contents differ: its SHA-256 changed"
        return "; ".join(f"{k} was {_short(old.get(k))}, now {_short(new.get(k))}" for k in keys)
    return f"was {_short(old)}, now {_short(new)}"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."
