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
(train/conditional.py). A .npy file of STREAM_NPY_BYTES or more is never read whole: it trains from
disk a batch at a time (NpyRows, train/rows.py), its splits being row-index views of the file.
"""
from __future__ import annotations

import math
import os
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import data
from ..compile import uncompile
from ..data.datasets import split_indices, subset_indices
from ..data.files import TEXT_SUFFIXES
from ..data.images import array_ndim, load_images
from ..errors import FlowforgeError
from ..flows import Flow, build_model
from . import distributed, small_data
from .checkpoint import CHECKPOINT_NAME, atomic_write_text, load
from .conditional import context_record, sample_context, split_context, split_scored
from .config import TrainConfig
from .guard import RunCheckpoint, StopSignals, trim_metrics_log
from .history import History
from .loop import default_eval_every, fit
from .placement import maybe_compile, resolve_device
from .rows import NpyRows
from .run_folder import MetricsLog, _claim_run_folder, _metrics, _resolved_config, _to_json, default_folder, write_plots

if TYPE_CHECKING:
    from .resume import Resume


STREAM_NPY_BYTES = 64 * 2**20  # .npy files this large train from disk; smaller ones are read into memory
PLOT_ROWS = 5000  # test rows a streamed run reads into memory for its plots


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
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    table = load_split(config)
    config = small_data.with_small_data_defaults(config, len(table.train))
    torch.manual_seed(config.seed)  # the model's initial weights
    flow = build_model(config.model, features=table.train.shape[1], layers=config.layers, hidden=config.hidden,
                       context_features=len(table.columns), memory=config.memory,
                       standardize=small_data.first_layer_of(len(table.train), table.train.shape[1], resume))
    folder = resume.folder if resume is not None else _claim_run_folder(config)
    config = replace(config, out=str(folder))
    resolved = {**_resolved_config(config, flow, table.rows, table.train, table.test), "context": context_record(table.columns, table.names)}
    if table.names:  # score and check find x's columns by these names in a file with a header
        resolved["data"]["x_names"] = [n for j, n in enumerate(table.names) if j not in set(table.columns)]
    if resume is not None:
        resume.check_same_data(resolved)
        flow.load_state_dict(resume.weights)
    if distributed.is_main():
        atomic_write_text(folder / "config.json", _to_json(resolved))
    flow.to(device)
    maybe_compile(flow, config.compile)

    history, stopped_by = fit_run(flow, table.train, config, folder, context=table.train_context, resume=resume.state if resume else None)
    if stopped_by is not None:
        return RunResult(folder, {"steps_run": len(history.step) + history.skipped_steps}, stopped_by)
    metrics = _metrics(flow, history, table.train, table.test, table.test_context)  # every rank: the test NLL is reduced across ranks
    if not distributed.is_main():
        return RunResult(folder, metrics)
    atomic_write_text(folder / "metrics.json", _to_json(metrics))
    uncompile(flow).cpu()  # plots run on the CPU, eagerly: no second compile for another device

    def draw() -> None:
        test, test_context = table.test_in_memory(PLOT_ROWS)
        write_plots(folder / "plots", flow, history, test, seed=config.seed, context=test_context)

    draw_or_warn(folder / "plots", draw)
    return RunResult(folder, metrics)


def draw_or_warn(plots: Path, draw: Callable[[], None]) -> None:
    """Draw a finished run's plots; a failure (data spanning 1e38, a file where the folder goes)
    is a warning, never a failed run: its weights and metrics are already written."""
    try:
        draw()
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"{plots}: plots not drawn ({type(error).__name__}: {error})", RuntimeWarning, stacklevel=3)


@dataclass(frozen=True)
class Table:
    """A run's table cut into train and test: arrays, or NpyRows views of a .npy file streamed from disk.

    rows is the table the split was cut from (after `n` subsetting); columns are the context columns.
    """

    rows: np.ndarray | NpyRows
    names: list[str] | None
    columns: list[int]
    train: np.ndarray | NpyRows
    train_context: np.ndarray | NpyRows | None
    test: np.ndarray | NpyRows
    test_context: np.ndarray | NpyRows | None

    def test_in_memory(self, limit: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The test rows (and their context) as arrays: all of an in-memory split, the first
        `limit` of a streamed one (a random sample: the split shuffled the rows)."""
        if not isinstance(self.test, NpyRows):
            return self.test, self.test_context
        head = slice(0, limit)
        return self.test[head].numpy(), (self.test_context[head].numpy() if self.test_context is not None else None)


def load_split(config: TrainConfig) -> Table:
    """config.data (after `n`) cut into train and test by `data.split`'s seeded shuffle, each split into
    data and context columns. A large .npy file stays on disk (STREAM_NPY_BYTES)."""
    if streams_from_disk(config.data):
        rows, names = _stream_npy(config), None
    else:
        rows, names = data.load_table(config.data, n=config.n, seed=config.seed)
    columns = data.find_columns(config.context_columns, names, rows.shape[1], config.data) if config.context_columns else []
    train, test = (_take(rows, index) for index in split_indices(len(rows), config.test_fraction, config.seed))
    return Table(rows, names, columns, *split_context(train, columns), *split_context(test, columns))


def streams_from_disk(spec: str) -> bool:
    """Whether `spec` is a .npy file of STREAM_NPY_BYTES or more stored row by row (C order; a
    Fortran-ordered array is read whole, as a small file is)."""
    path = Path(spec)
    if path.suffix.lower() != ".npy" or not path.is_file() or path.stat().st_size < STREAM_NPY_BYTES:
        return False
    try:
        return bool(np.load(path, mmap_mode="r", allow_pickle=False).flags.c_contiguous)  # reads the header only
    except (ValueError, OSError, EOFError):
        return True  # NpyRows names the problem


def _stream_npy(config: TrainConfig) -> NpyRows:
    """The rows of a .npy file (a random `n` of them when n is given) as NpyRows, checked for NaN/Inf in one pass."""
    rows = NpyRows(config.data)
    if len(rows.file_shape) != 2:
        raise FlowforgeError(f"{config.data}: expected a 2-D (rows, features) array, got shape {rows.file_shape}")
    if config.n is not None:
        rows = rows.subset(torch.from_numpy(subset_indices(len(rows), config.n, config.seed, config.data)))
    rows.check_finite("data")
    return rows


def _take(rows: np.ndarray | NpyRows, index: np.ndarray) -> np.ndarray | NpyRows:
    return rows.subset(torch.from_numpy(index)) if isinstance(rows, NpyRows) else rows[index]


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

    An image model scores an image .npy/.npz, a folder of PNG/JPEG (flowforge.data.images), or a
    table of flattened images, one C*H*W row each (a .csv/.txt/.tsv, or a 2-D .npy/.npz), as
    `flowforge sample RUN --out s.csv` writes them. An image model's dequantisation noise is one
    fixed draw (seed 0), so a file scores the same every time.
    """
    flow = load(run)
    if len(flow.event_shape) == 3:  # one fixed dequantisation noise draw (seed 0): the same file scores the same
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return torch.cat([flow.log_prob(part) for part in image_rows(flow, run, path).split(8192)]).numpy()
    x, context = split_scored(flow, run, *data.read_csv_with_header(path), path)
    if tuple(x.shape[1:]) != flow.event_shape:
        besides = " besides its context columns" if context is not None else ""
        raise FlowforgeError(f"{path}: the model in {run} expects {_describe(flow.event_shape)} per row{besides}, got {_describe(x.shape[1:])}")
    rows = torch.arange(len(x)).split(8192)
    x, context = torch.from_numpy(x).float(), (torch.from_numpy(context).float() if context is not None else None)
    return torch.cat([flow.log_prob(x[part], context[part] if context is not None else None) for part in rows]).numpy()


def image_rows(flow: Flow, run: str | os.PathLike, path: str | os.PathLike) -> torch.Tensor:
    """The images of `path` for an image model, as float32 (N, C, H, W): a folder or an image
    array, or a table of flattened images (what `flowforge sample RUN --out s.csv` writes)."""
    return torch.from_numpy(_flat_images(flow, run, path) if _is_flat(path) else load_images(path).x.astype(np.float32))


def _is_flat(path: str | os.PathLike) -> bool:
    """Whether a file holds a table of rows (text, or a 2-D array) rather than images."""
    suffix = Path(path).suffix.lower()
    return suffix in TEXT_SUFFIXES or (suffix in (".npy", ".npz") and Path(path).is_file() and array_ndim(path) == 2)


def _flat_images(flow: Flow, run: str | os.PathLike, path: str | os.PathLike) -> np.ndarray:
    """A table of flattened images as (N, C, H, W) float32, for an image model of that shape."""
    x = data.read_array(path)
    shape = flow.event_shape
    if x.shape[1] != math.prod(shape):
        raise FlowforgeError(f"{path}: the image model in {run} expects rows of {math.prod(shape)} pixel values "
                             f"(flattened {'x'.join(map(str, shape))} images), got {x.shape[1]} columns")
    return x.reshape(len(x), *shape)


def _describe(shape: tuple[int, ...]) -> str:
    return f"{shape[0]} features" if len(shape) == 1 else f"shape {tuple(shape)}"

def fit_run(flow: Flow, train: np.ndarray, config: TrainConfig, folder: Path, context: np.ndarray | None = None,
            resume: dict[str, Any] | None = None) -> tuple[History, int | None]:
    """`fit` for a run folder: metrics.jsonl lines, and RUN/model.pt every `config.save_every` steps,
    at the end and on SIGINT/SIGTERM, which stop training cleanly. Returns the history and the
    signal that stopped it (None: it ran to the end)."""
    eval_every = default_eval_every(config.steps, len(train), config.batch_size)  # fit's own default, for the metrics log
    log = MetricsLog(folder / "metrics.jsonl", eval_every, config.steps)
    if resume is not None:
        log.last = trim_metrics_log(log.path, resume["step"])
    with StopSignals() as stop:
        history = fit(flow, train, steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed, precision=config.precision,
                      val_fraction=config.val_fraction, patience=config.patience, eval_every=eval_every, context=context,
                      progress=config.progress, callback=log, resume=resume, checkpoint_every=config.save_every,
                      on_checkpoint=RunCheckpoint(flow, folder / CHECKPOINT_NAME, config.to_dict()), should_stop=stop)
    if not history.interrupted:
        return history, None
    # under torchrun the signal may have reached another rank only: every rank stopped on the same step
    return history, stop.received if stop.received is not None else int(signal.SIGTERM)
