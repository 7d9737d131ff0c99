"""Run folders' own files: the folder's name and claim, config.json, metrics.jsonl, metrics.json and plots."""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..data.datasets import DATASETS
from ..data.images import image_files
from ..errors import FlowforgeError
from ..flows import Flow, count_parameters
from . import distributed
from .checkpoint import CHECKPOINT_NAME
from .config import TrainConfig
from .evaluate import mean_nll
from .history import History


def default_folder(name: str, root: str | os.PathLike = "runs") -> Path:
    """runs/<name>-<YYYYmmdd-HHMMSS>, with a -2, -3... suffix if that folder already exists."""
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, i = Path(root) / stem, 1
    while folder.exists():
        i += 1
        folder = Path(root) / f"{stem}-{i}"
    return folder


def _claim_run_folder(config: TrainConfig) -> Path:
    """Rank 0 claims the run folder (named now if not given); the other ranks learn its path."""
    folder = None
    if distributed.is_main():
        folder = _claim_folder(config.out or default_folder(f"{Path(config.data).stem}-{config.model}"))
    return Path(distributed.broadcast_object(folder))


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


def _resolved_config(config: TrainConfig, flow: Flow, x: Any, train: Any, test: Any) -> dict[str, Any]:
    """config.json's content. x, train and test are arrays, or NpyRows views of a .npy file
    streamed from disk (train/rows.py): only their row counts and train's columns are read."""
    return {
        "flowforge_version": __version__,
        "config": config.to_dict(),
        "data": {"spec": config.data, **data_record(config.data), "rows": len(x), "n_train": len(train), "n_test": len(test)},
        "features": int(train.shape[1]),  # x's columns; a conditional run's context columns are under "context"
        "model": flow.spec,
    }


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
        row = {"step": step, "train_nll": _finite(np.mean(window)) if window else None,
               "val_nll": _finite(history.val_nll[-1]) if has_val else None, "lr": history.lr[-1] if history.lr else None}
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        self.last = step


def _metrics(flow: Flow, history: History, train: Any, test: Any, test_context: Any = None) -> dict[str, Any]:
    """metrics.json's content. train, test and test_context are arrays, or NpyRows views of a
    .npy file streamed from disk: the test NLL is then read from disk a batch at a time."""
    tail = history.train_nll[-max(1, len(history.train_nll) // 50):]
    return {
        "test_nll": _finite(mean_nll(flow, test, test_context)),
        "train_nll": _finite(np.mean(tail)) if tail else None,  # mean loss over the last ~2% of steps
        "best_val_nll": _finite(history.best_val_nll),
        "best_step": history.best_step,
        "steps_run": len(history.step) + history.skipped_steps,
        "stopped_early": history.stopped_early,
        "skipped_steps": history.skipped_steps,
        "train_seconds": round(history.seconds, 3),
        "n_train": len(train),
        "n_test": len(test),
        "features": int(train.shape[1]),
        "parameters": count_parameters(flow),
    }


def write_plots(folder: Path, flow: Flow, history: History, test: np.ndarray, seed: int = 0, context: np.ndarray | None = None) -> list[Path]:
    """training_curve.png, samples.png (model samples vs the test split) and, for unconditional 2-D data, density.png.

    A conditional model draws one sample at the context of each plotted test row (`context`, one per row of `test`).
    """
    from .. import viz  # matplotlib loads only when plots are drawn

    paths = [viz.plot_training_curve(np.add(history.step, 1), history.train_nll, folder / "training_curve.png",
                                     history.val_step, history.val_nll)]
    torch.manual_seed(seed)
    m = min(len(test), 2000)
    samples = flow.sample(m, context=torch.from_numpy(context[:m]) if context is not None else None).numpy()
    samples = samples[np.isfinite(samples).all(1)]
    paths.append(viz.plot_samples(test if context is None else test[:m], samples, folder / "samples.png", seed=seed))
    if test.shape[1] == 2 and context is None:
        xs, ys, log_prob = density_grid(flow, test)
        paths.append(viz.plot_density(xs, ys, log_prob, folder / "density.png"))
    return paths


@torch.no_grad()
def density_grid(flow: Flow, x: np.ndarray, size: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log p on a size x size grid covering the data (0.5-99.5% range, padded 15%): xs, ys, (H, W)."""
    low, high = np.quantile(x.astype(np.float64), [0.005, 0.995], axis=0)  # float64: padding huge values overflows float32
    pad = 0.15 * (high - low)
    top = float(np.finfo(np.float32).max)
    xs, ys = (np.linspace(*np.clip([low[i] - pad[i], high[i] + pad[i]], -top, top), size) for i in range(2))
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    log_prob = torch.cat([flow.log_prob(part) for part in torch.from_numpy(grid).float().split(8192)])
    return xs, ys, log_prob.reshape(size, size).numpy()


def _finite(value: Any) -> float | None:
    """JSON has no Infinity or NaN: such values are written as null."""
    value = float(value)
    return value if np.isfinite(value) else None


def _to_json(values: dict[str, Any]) -> str:
    return json.dumps(values, indent=2) + "\n"
