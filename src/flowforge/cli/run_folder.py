"""Run folders: claiming one, and reading and writing the files a run leaves in it.

    RUN/config.json     the resolved TrainConfig, the data source, the model's name and kwargs
    RUN/model.pt        the trained flow, with fit's training state for `train --resume` (cli/guard.py)
    RUN/metrics.jsonl   one line per evaluation: step, train_nll, val_nll, lr (written live)
    RUN/metrics.json    the outcome: test NLL on the held-out split, best_val_nll, timings, sizes
    RUN/plots/          the plots of a finished run
    RUN/check.json      what `flowforge check` measured
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.datasets import DATASETS
from ..data.images import image_files
from ..errors import FlowforgeError
from ..flows import Flow
from ..train import distributed
from ..train.checkpoint import CHECKPOINT_NAME, atomic_write_text
from ..train.history import History
from .config import TrainConfig


@dataclass(frozen=True)
class RunFolder:
    """A run folder; config.json is read here and nowhere else."""

    path: Path

    @classmethod
    def of(cls, run: str | os.PathLike) -> RunFolder:
        """The folder of a run folder, or of a checkpoint file inside one."""
        return cls(Path(run) if Path(run).is_dir() else Path(run).parent)

    @classmethod
    def claim(cls, config: TrainConfig) -> RunFolder:
        """Rank 0 claims the run folder (named now if not given); the other ranks learn its path."""
        folder = None
        if distributed.is_main():
            folder = _claim_folder(config.out or default_folder(f"{Path(config.data).stem}-{config.model}"))
        return cls(Path(distributed.broadcast_object(folder)))

    @classmethod
    def claim_named(cls, out: str | os.PathLike | None, name: str) -> RunFolder:
        """A single-process run's folder: `out`, or runs/<name>-<time> (as `claim` checks it)."""
        return cls(_claim_folder(out or default_folder(name)))

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    def record(self) -> dict[str, Any] | None:
        """config.json parsed (None when there is none): a JSON object, else a named error."""
        if not self.config_path.is_file():
            return None
        try:
            record = json.loads(self.config_path.read_text())
        except json.JSONDecodeError as error:
            raise FlowforgeError(f"{self.config_path} is not a flowforge run config ({error})") from None
        if not isinstance(record, dict):
            raise FlowforgeError(f"{self.config_path} is not a flowforge run config (not a JSON object)")
        return record

    def config(self, record: dict[str, Any]) -> TrainConfig:
        """The TrainConfig in a record that `record()` read, else a named error."""
        try:
            return TrainConfig.from_dict(record["config"])
        except (KeyError, TypeError, AttributeError) as error:
            raise FlowforgeError(f"{self.config_path} is not a flowforge run config ({error})") from None

    def write_record(self, record: dict[str, Any]) -> None:
        atomic_write_text(self.config_path, to_json(record))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.path / "metrics.json", to_json(metrics))


def default_folder(name: str, root: str | os.PathLike = "runs") -> Path:
    """runs/<name>-<YYYYmmdd-HHMMSS>, with a -2, -3... suffix if that folder already exists."""
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, i = Path(root) / stem, 1
    while folder.exists():
        i += 1
        folder = Path(root) / f"{stem}-{i}"
    return folder


RESTARTABLE = ("config.json", "metrics.jsonl")  # all a run leaves before its first checkpoint


def _claim_folder(folder: str | os.PathLike) -> Path:
    """An empty or new folder; or one holding only what a run that stopped before its first
    checkpoint left (config.json, metrics.jsonl, temporaries): cleared, so the same --out works."""
    folder = Path(folder)
    if folder.is_dir() and _never_checkpointed(folder):
        for entry in folder.iterdir():
            entry.unlink()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FlowforgeError(f"run folder {folder} already exists and is not empty; choose another --out or remove it")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _never_checkpointed(folder: Path) -> bool:
    entries = list(folder.iterdir())
    temporary = tuple(f".{name}." for name in (*RESTARTABLE, CHECKPOINT_NAME))
    return any(entry.name == "config.json" for entry in entries) and all(
        entry.is_file() and not entry.is_symlink()
        and (entry.name in RESTARTABLE or (entry.name.startswith(temporary) and entry.name.endswith(".tmp")))
        for entry in entries
    )


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in blocks; of a folder of images, of its PNG/JPEG files' names
    and SHA-256s in sorted order, so an image added, removed, renamed or edited changes it."""
    digest = hashlib.sha256()
    if Path(path).is_dir():  # the files load_image_folder reads, and no others (a run folder inside, .DS_Store)
        for file in image_files(path):
            digest.update(f"{file.name}\0{file_sha256(file)}\n".encode())
        return digest.hexdigest()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_record(spec: str) -> dict[str, str | None]:
    """config.json's path and SHA-256 of a data file or image folder (None for a built-in dataset):
    resume and check refuse data that changed since the run was trained."""
    exists = os.fspath(spec) not in DATASETS and Path(spec).exists()  # a built-in name wins over a folder of that name
    return {"path": str(Path(spec).resolve()) if exists else None, "sha256": file_sha256(spec) if exists else None}


class MetricsLog:
    """fit callback: append a metrics.jsonl line at each evaluation, so a long run can be watched.

    train_nll is the mean training loss since the previous line; val_nll is null without validation.
    """

    def __init__(self, path: Path, eval_every: int, steps: int) -> None:
        self.path, self.eval_every, self.steps, self.last = path, eval_every, steps, 0

    def __call__(self, step: int, flow: Flow, history: History) -> None:
        has_val = bool(history.val_step) and history.val_step[-1] == step
        if not has_val and step % self.eval_every and step != self.steps:
            return
        window = [loss for s, loss in zip(history.step, history.train_nll) if self.last <= s < step]
        row = {"step": step, "train_nll": finite(np.mean(window)) if window else None,
               "val_nll": finite(history.val_nll[-1]) if has_val else None, "lr": history.lr[-1] if history.lr else None}
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        self.last = step


def finite(value: Any) -> float | None:
    """JSON has no Infinity or NaN: such values are written as null."""
    value = float(value)
    return value if np.isfinite(value) else None


def to_json(values: dict[str, Any]) -> str:
    return json.dumps(values, indent=2) + "\n"
