"""A table run's side of training (cli/training.py runs it): its split, model, records and plots.

The held-out test split is cut before training and never seen by `fit`; its NLL is measured on
the data's original scale (the model's Standardize layer carries the scaling). With
`context_columns` the flow learns p(x | context), x being the table's other columns
(cli/conditional.py). A .npy file of STREAM_NPY_BYTES or more is never read whole: it trains from
disk a batch at a time (NpyRows, train/rows.py), its splits being row-index views of the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import __version__, data
from ..data.datasets import split_indices, subset_indices
from ..errors import FlowforgeError
from ..flows import Flow, build_model, count_parameters
from ..train import distributed
from ..train.evaluate import mean_nll, row_nll
from ..train.history import History
from ..train.rows import NpyRows
from .circular import circular_positions
from .conditional import context_record, split_context
from .config import TrainConfig
from .continuous_run import build_cnf, is_cnf, nfe_metrics
from .plots import write_plots
from .run_folder import data_record, finite
from .small_data import first_layer_of, with_small_data_defaults

if TYPE_CHECKING:
    from .resume import Resume

STREAM_NPY_BYTES = 64 * 2**20  # .npy files this large train from disk; smaller ones are read into memory
PLOT_ROWS = 5000  # test rows a streamed run reads into memory for its plots


class TableRun:
    """A table's run: its split (and small-table defaults), model, config.json record, metrics and plots."""

    def __init__(self, config: TrainConfig, resume: Resume | None = None) -> None:
        self.config, self.resume = config, resume

    def load(self) -> None:
        """Cut the table; a small one changes the default model."""
        self.table = load_split(self.config)
        self.config = with_small_data_defaults(self.config, len(self.table.train))
        self.train, self.train_context = self.table.train, self.table.train_context

    def build_model(self) -> Flow:
        config, train = self.config, self.table.train
        if is_cnf(config):
            return build_cnf(config, train.shape[1], len(self.table.columns), first_layer_of(len(train), train.shape[1], self.resume),
                             len(train))
        extra = {}
        if getattr(config, "circular", None):
            table = self.table
            extra["circular"] = circular_positions(config.circular, table.names, table.rows.shape[1], table.columns, config.model)
        return build_model(config.model, features=train.shape[1], layers=config.layers, hidden=config.hidden,
                           context_features=len(self.table.columns), memory=config.memory,
                           standardize=first_layer_of(len(train), train.shape[1], self.resume), **extra)

    def record(self, config: TrainConfig, flow: Flow) -> dict[str, Any]:
        """config.json's content. The table's splits may be NpyRows views of a .npy file streamed
        from disk: only their row counts and train's columns are read."""
        table = self.table
        record = {
            "flowforge_version": __version__,
            "config": config.to_dict(),
            "data": {"spec": config.data, **data_record(config.data), "rows": len(table.rows), "n_train": len(table.train),
                     "n_test": len(table.test)},
            "features": int(table.train.shape[1]),  # x's columns; a conditional run's context columns are under "context"
            "model": flow.spec,
            "context": context_record(table.columns, table.names),
        }
        if table.names:  # score and check find x's columns by these names in a file with a header
            record["data"]["x_names"] = [n for j, n in enumerate(table.names) if j not in set(table.columns)]
        return record

    def measure(self, flow: Flow, history: History, config: TrainConfig) -> dict[str, Any]:
        """metrics.json's content; on every rank, as the test NLL is reduced across ranks."""
        metrics = table_metrics(flow, history, self.table.train, self.table.test, self.table.test_context)
        rows, context = (self.table.test, self.table.test_context) if len(self.table.test) else (self.table.train, self.table.train_context)
        return {**metrics, **nfe_metrics(flow, rows, context)}

    def draw(self, plots: Path, flow: Flow, history: History, seed: int) -> None:
        test, test_context = self.table.test_in_memory(PLOT_ROWS)
        if not len(test):  # --test-fraction 0: the plots show training rows
            test, test_context = self.table.train[:PLOT_ROWS], _head(self.table.train_context, PLOT_ROWS)
        names = [n for j, n in enumerate(self.table.names) if j not in set(self.table.columns)] if self.table.names else None
        write_plots(plots, flow, history, test, seed=seed, context=test_context, names=names)


def _head(rows: Any, limit: int) -> Any:
    return None if rows is None else rows[:limit]


def table_metrics(flow: Flow, history: History, train: Any, test: Any, test_context: Any = None) -> dict[str, Any]:
    """metrics.json's content. train, test and test_context are arrays, or NpyRows views of a
    .npy file streamed from disk: the test NLL is then read from disk a batch at a time."""
    tail = history.train_nll[-max(1, len(history.train_nll) // 50):]
    return {
        **test_nll_metrics(flow, test, test_context),
        "train_nll": finite(np.mean(tail)) if tail else None,  # mean loss over the last ~2% of steps
        "best_val_nll": finite(history.best_val_nll),
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


def test_nll_metrics(flow: Flow, test: Any, test_context: Any = None) -> dict[str, Any]:
    """test_nll (the mean over the held-out rows), its median (one float64 per held-out row, also
    when they are streamed from a .npy file) and `test_nll_dominated_by`: the worst row, when that
    one row makes at least half of a gap of more than a nat between the mean and the median (a
    user comparing models by the mean would be comparing that row)."""
    if not len(test):  # --test-fraction 0
        return {"test_nll": None}
    if distributed.is_distributed():  # each rank holds a shard: the mean alone, summed across ranks
        return {"test_nll": finite(mean_nll(flow, test, test_context))}
    nll = row_nll(flow, test, test_context).numpy()
    mean, median = float(nll.mean()), float(np.median(nll))
    metrics = {"test_nll": finite(mean), "test_nll_median": finite(median)}
    worst = int(np.argmax(nll)) if np.isfinite(nll).all() else None
    if worst is not None and mean - median > 1.0 and (nll[worst] - median) / len(nll) >= (mean - median) / 2:
        metrics["test_nll_dominated_by"] = {"test_row": worst, "nll": float(nll[worst]),
                                            "mean_without_it": float(np.delete(nll, worst).mean())}
    return metrics


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
