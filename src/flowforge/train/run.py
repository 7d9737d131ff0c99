"""Run folders: train a model from a TrainConfig and write everything the run leaves behind.

    RUN/config.json     the resolved TrainConfig, the data source, the model's name and kwargs
    RUN/model.pt        the trained flow: flowforge.load(RUN) reads it; also fit's training state, so
                        `flowforge train --resume RUN` continues it (written every save_every steps,
                        at the end and on SIGINT/SIGTERM, always atomically: train/guard.py)
    RUN/metrics.jsonl   one line per evaluation: step, train_nll, val_nll, lr (written live)
    RUN/metrics.json    the outcome: test_nll on the held-out split, best_val_nll, timings, sizes
    RUN/plots/          training_curve.png, samples.png and, for unconditional 2-D data, density.png

The held-out test split is cut before training and never seen by `fit`; its NLL is measured on
the data's original scale (the model's Standardize layer carries the scaling). With
`context_columns` the flow learns p(x | context), x being the table's other columns
(train/conditional.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import __version__, data
from ..compile import uncompile
from ..data.images import load_images
from ..errors import FlowforgeError
from ..flows import Flow, build_model, count_parameters
from . import distributed
from .checkpoint import CHECKPOINT_NAME, atomic_write_text, load
from .conditional import context_record, sample_context, split_context, split_scored
from .config import TrainConfig
from .guard import RunCheckpoint, StopSignals, trim_metrics_log
from .history import History
from .loop import fit, mean_nll
from .placement import maybe_compile, resolve_device

if TYPE_CHECKING:
    from .resume import Resume


@dataclass(frozen=True)
class RunResult:
    """Where a run was written and its metrics.json content; `stopped_by` is the signal number
    that interrupted training (None: it ran to the end), and then metrics holds only steps_run."""

    folder: Path
    metrics: dict[str, Any]
    stopped_by: int | None = None


def demo_config(out: str | None = None, steps: int = 1500) -> TrainConfig:
    """The `flowforge demo` run: a small RealNVP on two moons, sized for well under a minute on 2 cores.

    One thread: layers this small gain nothing from more, and on a busy machine extra threads
    spin-wait for each other (over 10x slower per step with 2 threads than 1, measured at load 7 on 2 cores).
    """
    return TrainConfig(data="moons", model="realnvp", layers=6, hidden=(64, 64), steps=steps, batch_size=256, lr=2e-3,
                       threads=1, out=out or str(default_folder("demo")))


def default_folder(name: str, root: str | os.PathLike = "runs") -> Path:
    """runs/<name>-<YYYYmmdd-HHMMSS>, with a -2, -3... suffix if that folder already exists."""
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, i = Path(root) / stem, 1
    while folder.exists():
        i += 1
        folder = Path(root) / f"{stem}-{i}"
    return folder


def train_run(config: TrainConfig, resume: Resume | None = None) -> RunResult:
    """Load the data, split off the test set, train, and write the run folder. Returns its metrics.

    With `resume` (train/resume.py) it continues that run in its folder: the same data, split
    and model, with the weights and training state of its checkpoint.
    """
    from .image_run import is_image_run, train_image_run  # imports this module

    device = resolve_device(config.device)
    if distributed.init_from_env(device.type) and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    if is_image_run(config):  # glow/realnvp on digits or image files: image models, bits/dim, image plots
        if config.context_columns:
            raise FlowforgeError(f"context columns are for tables; {config.model} on {config.data} trains an unconditional image model")
        return train_image_run(config, resume=resume, device=device)
    x, names = data.load_table(config.data, n=config.n, seed=config.seed)
    columns = data.find_columns(config.context_columns, names, x.shape[1], config.data) if config.context_columns else []
    train, test = data.split(x, test_fraction=config.test_fraction, seed=config.seed)
    (train, train_context), (test, test_context) = split_context(train, columns), split_context(test, columns)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # the model's initial weights
    flow = build_model(config.model, features=train.shape[1], layers=config.layers, hidden=config.hidden,
                       context_features=len(columns), memory=config.memory)
    folder = resume.folder if resume is not None else _claim_run_folder(config)
    config = replace(config, out=str(folder))
    resolved = {**_resolved_config(config, flow, x, train, test), "context": context_record(columns, names)}
    if resume is not None:
        resume.check_same_data(resolved)
        flow.load_state_dict(resume.weights)
    if distributed.is_main():
        atomic_write_text(folder / "config.json", _to_json(resolved))
    flow.to(device)
    maybe_compile(flow, config.compile)

    history, stopped_by = fit_run(flow, train, config, folder, context=train_context, resume=resume.state if resume else None)
    if stopped_by is not None:
        return RunResult(folder, {"steps_run": len(history.step) + history.skipped_steps}, stopped_by)
    metrics = _metrics(flow, history, train, test, test_context)  # every rank: the test NLL is reduced across ranks
    if not distributed.is_main():
        return RunResult(folder, metrics)
    atomic_write_text(folder / "metrics.json", _to_json(metrics))
    uncompile(flow).cpu()  # plots run on the CPU, eagerly: no second compile for another device
    try:
        write_plots(folder / "plots", flow, history, test, seed=config.seed, context=test_context)
    except Exception as error:  # noqa: BLE001 -- a plot must not fail a finished run (e.g. data spanning 1e38)
        warnings.warn(f"{folder / 'plots'}: plots not drawn ({type(error).__name__}: {error})", RuntimeWarning, stacklevel=2)
    return RunResult(folder, metrics)


def sample_run(
    run: str | os.PathLike, n: int, temperature: float = 1.0, seed: int = 0, context: Any = None,
    context_file: str | os.PathLike | None = None,
) -> np.ndarray:
    """n samples (n, D) from the model in a run folder (or checkpoint file), reproducible by seed.

    A conditional model needs a `context`, one vector of its context features, or a `context_file`
    with one context per row: then n samples per row, row by row (R * n samples in all).
    """
    flow = load(run)
    context = sample_context(flow, run, context, context_file, n)
    torch.manual_seed(seed)
    return flow.sample(n if context is None else len(context), temperature=temperature, context=context).numpy()


@torch.no_grad()
def score_file(run: str | os.PathLike, path: str | os.PathLike) -> np.ndarray:
    """Per-row log-likelihood (nats, original scale) of the rows of a data file under a run's model.

    An image model scores an image .npy/.npz or a folder of PNG/JPEG (flowforge.data.images).
    """
    flow = load(run)
    if len(flow.event_shape) == 3:
        images = torch.from_numpy(load_images(path).x.astype(np.float32))
        return torch.cat([flow.log_prob(part) for part in images.split(8192)]).numpy()
    x, context = split_scored(flow, run, *data.read_csv_with_header(path), path)
    if tuple(x.shape[1:]) != flow.event_shape:
        besides = " besides its context columns" if context is not None else ""
        raise FlowforgeError(f"{path}: the model in {run} expects {_describe(flow.event_shape)} per row{besides}, got {_describe(x.shape[1:])}")
    rows = torch.arange(len(x)).split(8192)
    x, context = torch.from_numpy(x).float(), (torch.from_numpy(context).float() if context is not None else None)
    return torch.cat([flow.log_prob(x[part], context[part] if context is not None else None) for part in rows]).numpy()


def _describe(shape: tuple[int, ...]) -> str:
    return f"{shape[0]} features" if len(shape) == 1 else f"shape {tuple(shape)}"


def _claim_run_folder(config: TrainConfig) -> Path:
    """Rank 0 claims the run folder (named now if not given); the other ranks learn its path."""
    folder = None
    if distributed.is_main():
        folder = _claim_folder(config.out or default_folder(f"{Path(config.data).stem}-{config.model}"))
    return Path(distributed.broadcast_object(folder))


def _claim_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FlowforgeError(f"run folder {folder} already exists and is not empty; choose another --out or remove it")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _resolved_config(config: TrainConfig, flow: Flow, x: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    is_file = Path(config.data).is_file()
    return {
        "flowforge_version": __version__,
        "config": config.to_dict(),
        "data": {"spec": config.data, "path": str(Path(config.data).resolve()) if is_file else None,
                 "sha256": file_sha256(config.data) if is_file else None,  # resume and check refuse a changed file
                 "rows": len(x), "n_train": len(train), "n_test": len(test)},
        "features": int(train.shape[1]),  # x's columns; a conditional run's context columns are under "context"
        "model": flow.spec,
    }


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fit_run(flow: Flow, train: np.ndarray, config: TrainConfig, folder: Path, context: np.ndarray | None = None,
            resume: dict[str, Any] | None = None) -> tuple[History, int | None]:
    """`fit` for a run folder: metrics.jsonl lines, and RUN/model.pt every `config.save_every` steps,
    at the end and on SIGINT/SIGTERM, which stop training cleanly. Returns the history and the
    signal that stopped it (None: it ran to the end)."""
    eval_every = max(1, config.steps // 50)  # fit's own default, made explicit for the metrics log
    log = MetricsLog(folder / "metrics.jsonl", eval_every, config.steps)
    if resume is not None:
        log.last = trim_metrics_log(log.path, resume["step"])
    with StopSignals() as stop:
        history = fit(flow, train, steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed, precision=config.precision,
                      val_fraction=config.val_fraction, patience=config.patience, eval_every=eval_every, context=context,
                      progress=config.progress, callback=log, resume=resume, checkpoint_every=config.save_every,
                      on_checkpoint=RunCheckpoint(flow, folder / CHECKPOINT_NAME, config.to_dict()), should_stop=stop)
    return history, stop.received


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


def _metrics(flow: Flow, history: History, train: np.ndarray, test: np.ndarray, test_context: np.ndarray | None = None) -> dict[str, Any]:
    tail = history.train_nll[-max(1, len(history.train_nll) // 50):]
    context = torch.from_numpy(test_context) if test_context is not None else None
    return {
        "test_nll": _finite(mean_nll(flow, torch.from_numpy(test), context)),
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
