"""One training run, for tables and images alike: train a model from a TrainConfig and write its run folder.

The steps are the same for both; what differs (data, defaults, model, records, metrics, plots)
is a TableRun (cli/table_run.py) or an ImageRun (cli/image_run.py). The files a run leaves are
listed in cli/run_folder.py.
"""
from __future__ import annotations

import signal
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..compile import uncompile
from ..errors import FlowforgeError
from ..flows import Flow
from ..tracking import Tracker, make_tracker
from ..train import distributed
from ..train.checkpoint import CHECKPOINT_NAME
from ..train.history import History
from ..train.loop import default_eval_every, fit
from ..train.placement import maybe_compile, resolve_device
from .config import TrainConfig
from .guard import RunCheckpoint, StopSignals, trim_metrics_log
from .image_run import ImageRun, is_image_run
from .run_folder import MetricsLog, RunFolder
from .table_run import TableRun

if TYPE_CHECKING:
    from .resume import Resume


@dataclass(frozen=True)
class RunResult:
    """Where a run was written and its metrics.json content; `stopped_by` is the signal number
    that interrupted training (None: it ran to the end), and then metrics holds only steps_run."""

    folder: Path
    metrics: dict[str, Any]
    stopped_by: int | None = None


def train_run(config: TrainConfig, resume: Resume | None = None) -> RunResult:
    """Load the data, split off the test set, train, and write the run folder. Returns its metrics.

    With `resume` (cli/resume.py) it continues that run in its folder: the same data, split
    and model, with the weights and training state of its checkpoint. Under torchrun every rank
    trains its shard of each batch and rank 0 alone writes the folder.
    """
    device = _device(config)
    run = _kind(config)(config, resume)  # an image run's defaults, threads among them
    if run.config.threads is not None:
        torch.set_num_threads(run.config.threads)
    run.load()
    config = run.config
    torch.manual_seed(config.seed)  # the model's initial weights
    flow = run.build_model()
    folder = RunFolder(resume.folder) if resume is not None else RunFolder.claim(config)
    config = replace(config, out=str(folder.path))
    record = run.record(config, flow)
    if resume is not None:
        resume.check_same_data(record)
        flow.load_state_dict(resume.weights)
    if distributed.is_main():
        folder.write_record(record)
    flow.to(device)
    maybe_compile(flow, config.compile)
    tracker = (make_tracker(config.log, folder.path, config.batch_size, every=default_eval_every(config.steps, len(run.train), config.batch_size))
               if config.log and distributed.is_main() else None)  # `every`: fit's evaluation interval, for runs without validation
    history, stopped_by = fit_run(flow, run.train, config, folder.path, context=run.train_context,
                                  resume=resume.state if resume is not None else None, tracker=tracker)
    if stopped_by is not None:
        if tracker is not None:
            tracker.close()
        return RunResult(folder.path, {"steps_run": len(history.step) + history.skipped_steps}, stopped_by)
    metrics = run.measure(flow, history, config)
    if not distributed.is_main():
        return RunResult(folder.path, metrics)
    folder.write_metrics(metrics)
    uncompile(flow).cpu()  # plots run on the CPU, eagerly: no second compile for another device
    draw_or_warn(folder.path / "plots", lambda: run.draw(folder.path / "plots", flow, history, config.seed))
    if tracker is not None:
        tracker.finish(metrics, config.to_dict(), sorted((folder.path / "plots").glob("*.png")))
    return RunResult(folder.path, metrics)


def _device(config: TrainConfig) -> torch.device:
    """config.device resolved; under torchrun, the process group joined and each rank's own GPU."""
    device = resolve_device(config.device)
    if distributed.init_from_env(device.type) and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _kind(config: TrainConfig) -> type[TableRun | ImageRun]:
    if not is_image_run(config):
        return TableRun
    if config.context_columns:
        raise FlowforgeError(f"context columns are for tables; {config.model} on {config.data} trains an unconditional image model")
    return ImageRun


def draw_or_warn(plots: Path, draw: Callable[[], None]) -> None:
    """Draw a finished run's plots; a failure (data spanning 1e38, a file where the folder goes)
    is a warning, never a failed run: its weights and metrics are already written."""
    try:
        draw()
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"{plots}: plots not drawn ({type(error).__name__}: {error})", RuntimeWarning, stacklevel=3)


def fit_run(flow: Flow, train: np.ndarray, config: TrainConfig, folder: Path, context: np.ndarray | None = None,
            resume: dict[str, Any] | None = None, tracker: Tracker | None = None) -> tuple[History, int | None]:
    """`fit` for a run folder: metrics.jsonl lines (and the `tracker`'s records), and RUN/model.pt every
    `config.save_every` steps, at the end and on SIGINT/SIGTERM, which stop training cleanly. Returns
    the history and the signal that stopped it (None: it ran to the end)."""
    eval_every = default_eval_every(config.steps, len(train), config.batch_size)  # fit's own default, for the metrics log
    log = MetricsLog(folder / "metrics.jsonl", eval_every, config.steps)
    if resume is not None:
        log.last = trim_metrics_log(log.path, resume["step"])
    if tracker is not None:
        log = _both(log, tracker)
    with StopSignals() as stop, _closed_on_error(tracker):
        history = fit(flow, train, steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed, precision=config.precision,
                      val_fraction=config.val_fraction, patience=config.patience, eval_every=eval_every, context=context,
                      progress=config.progress, callback=log, resume=resume, checkpoint_every=config.save_every,
                      on_checkpoint=RunCheckpoint(flow, folder / CHECKPOINT_NAME, config.to_dict()), should_stop=stop,
                      objective=config.objective, coupling=config.coupling, ema=config.ema, time_power=config.time_power)
    if not history.interrupted:
        return history, None
    # under torchrun the signal may have reached another rank only: every rank stopped on the same step
    return history, stop.received if stop.received is not None else int(signal.SIGTERM)


def _both(*callbacks: Callable[[int, Flow, History], None]) -> Callable[[int, Flow, History], None]:
    """One fit callback calling each of `callbacks` in turn."""
    def call(step: int, flow: Flow, history: History) -> None:
        for callback in callbacks:
            callback(step, flow, history)
    return call


@contextmanager
def _closed_on_error(tracker: Tracker | None) -> Iterator[None]:
    """A tracker closed (its run marked killed) when training raises."""
    try:
        yield
    except BaseException:
        if tracker is not None:
            tracker.close()
        raise
