"""Conditional runs: the context columns a run trained on, and the contexts `sample` and `score` use.

A conditional run's config.json records its context as {"columns": [0-based indices into the
training table], "names": [their header names] or null}. `score` finds those columns in a file
by name when both files have a header row, else at the recorded indices.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import data
from ..errors import FlowforgeError
from ..flows import Flow
from ..train.rows import NpyRows
from .run_folder import RunFolder


def split_context(x: np.ndarray | NpyRows, columns: list[int]) -> tuple[np.ndarray | NpyRows, np.ndarray | NpyRows | None]:
    """(x, context) of a table; the context is None when there are no context columns.

    A table streamed from a .npy file (NpyRows) splits into two column views of it.
    """
    if not columns:
        return x, None
    if isinstance(x, NpyRows):
        return x.select([j for j in range(x.shape[1]) if j not in set(columns)]), x.select(columns)
    return data.split_columns(x, columns)


def context_record(columns: list[int], names: list[str] | None) -> dict[str, Any] | None:
    """What config.json records about the context columns (None for an unconditional run)."""
    if not columns:
        return None
    return {"columns": columns, "names": [names[i] for i in columns] if names else None}


def read_record(run: str | os.PathLike) -> dict[str, Any] | None:
    """The context record from the config.json beside a run's checkpoint, None if there is none."""
    folder = RunFolder.of(run)
    record = (folder.record() or {}).get("context")
    if record is not None and not _valid_record(record):
        raise FlowforgeError(f"{folder.config_path} is not a flowforge run config (its context entry is {json.dumps(record)[:80]})")
    return record


def _valid_record(record: Any) -> bool:
    """{"columns": [0-based indices], "names": None or one name per index}, as a table run writes it."""
    if not isinstance(record, dict) or not isinstance(record.get("columns"), list) or not record["columns"]:
        return False
    columns, names = record["columns"], record.get("names")
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in columns):
        return False
    return names is None or (isinstance(names, list) and len(names) == len(columns) and all(isinstance(n, str) for n in names))


def sample_context(flow: Flow, run: str | os.PathLike, context: Any, context_file: str | os.PathLike | None, n: int) -> Tensor | None:
    """The contexts to sample at, each repeated n times: one vector `context`, or each row of `context_file`."""
    k = flow.context_features
    if context is None and context_file is None:
        if k:
            raise FlowforgeError(f"{run} holds a conditional model: give its {k} context value(s), e.g. --context {','.join(['0'] * k)}")
        return None
    if not k:
        raise FlowforgeError(f"{run} holds an unconditional model: it takes no context")
    rows = _rows_from_file(run, context_file, k) if context_file is not None else np.atleast_2d(np.asarray(context, np.float32))
    if rows.shape[1] != k:
        raise FlowforgeError(f"the model in {run} takes {k} context value(s), got {rows.shape[1]}")
    return torch.from_numpy(rows).repeat_interleave(n, dim=0)


def _rows_from_file(run: str | os.PathLike, path: str | os.PathLike, k: int) -> np.ndarray:
    """A context file: its columns named like the run's context columns, else all of them if there are k."""
    rows, names = data.read_csv_with_header(path)
    recorded = (read_record(run) or {}).get("names") if names else None
    if recorded and set(recorded) <= set(names):
        return rows[:, [names.index(name) for name in recorded]]
    if rows.shape[1] != k:
        named = f" or a header naming {', '.join(recorded)}" if recorded else ""
        raise FlowforgeError(f"{path} has {rows.shape[1]} columns; the model in {run} takes {k} context value(s) per row{named}")
    return rows


def split_scored(flow: Flow, run: str | os.PathLike, x: np.ndarray, names: list[str] | None, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, context) of a file to score: the run's context columns found by name or index, the rest
    x, in the training file's column order when both files have a header naming them (else by
    position: a file without a header, or one whose header shares no name with the training file's,
    such as x0,x1 from `flowforge sample` of an older version)."""
    context, x_names = None, names
    if flow.context_features:
        record = read_record(run)
        if not record:
            raise FlowforgeError(f"{run} holds a conditional model, but no run config.json beside it records its context columns")
        columns = data.recorded_columns(record["columns"], record.get("names"), names, x.shape[1], os.fspath(path))
        x, context = data.split_columns(x, columns)
        x_names = [n for j, n in enumerate(names) if j not in set(columns)] if names else None
    recorded = recorded_x_names(run)
    if recorded and x_names and x_names != recorded and set(recorded) & set(x_names):  # no name in common: by position
        x = x[:, _x_order(recorded, x_names, os.fspath(path))]
    return x, context


def recorded_x_names(run: str | os.PathLike) -> list[str] | None:
    """The header names of x's columns in the training file (config.json), None without a header."""
    try:
        data = (RunFolder.of(run).record() or {}).get("data")
    except FlowforgeError:
        return None  # read_record names a broken config where the context needs it
    names = data.get("x_names") if isinstance(data, dict) else None
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None


def _x_order(recorded: list[str], names: list[str], source: str) -> list[int]:
    """Where each of the model's x columns sits among a file's x columns, found by name; columns
    the model does not have (an id, a label) are left out."""
    missing = [n for n in recorded if names.count(n) != 1]
    if missing:
        many = names.count(missing[0]) > 1
        raise FlowforgeError(f"{source} has {'several columns' if many else 'no column'} named {missing[0]!r}; the model's "
                             f"columns are {', '.join(recorded)} (a file without a header row is read by position)")
    return [names.index(n) for n in recorded]  # other columns (an id) are left out
