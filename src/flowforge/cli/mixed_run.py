"""A run on a table of mixed columns: text categories, counts, positive and bounded amounts,
dates, blank cells (flowforge.tables.TableFlow), for `train`, `sample` and `score`.

`train` takes this path for a .csv/.tsv/.parquet file when the numeric reader refuses it (a
category, a date, a blank cell), when its first header cell is empty (a pandas index column),
or when `--columns`/`--schema` declares column kinds. Purely numeric files keep the numeric path.

    RUN/config.json     the TrainConfig, {"kind": "table"}, the schema and the data's source
    RUN/table/          the fitted TableFlow (TableFlow.save: JSON + weights, no pickle)
    RUN/checkpoint.pt   the training state (every --save-every steps, at the end, on SIGINT/SIGTERM)
                        that `train --resume RUN` continues (cli/table_resume.py)
    RUN/plots/          per-column marginals, a pairs plot and the loss curve (cli/table_plots.py)
    RUN/metrics.json    test_nll over the held-out rows that have a finite score, the likelihood's
                        kind ("exact" or "lower bound" where integers or dates are dequantised),
                        the training rows dropped for blank cells and the blank cells per column
                        that dropped them (training rows, as fit's warning counts them), blank
                        categorical cells kept as a level, and the whole table's blank cells
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.datasets import split_indices
from ..errors import CellError, FlowforgeError
from ..flows.flow import Flow
from ..tables import Schema, TableFlow, infer_schema
from ..tables.discrete import one_hot
from ..tables.encode import encode
from ..tables.files import read_table, write_table
from ..tables.infer import declared_dates
from ..tables.latent import noise, to_latents
from ..tables.training import DEFAULT_STEPS
from .config import TrainConfig
from .guard import StopSignals
from .run_folder import RunFolder, file_sha256
from .table_plots import write_table_plots
from .training import RunResult, draw_or_warn

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
TABLE_FOLDER = "table"
TABLE_CHECKPOINT = "checkpoint.pt"  # TableFlow.fit's training state, for train --resume (tables/checkpoint.py)
# what TableFlow chooses from the table itself unless given on the command line (same names in both)
TABLE_OPTIONS = ("model", "steps", "layers", "hidden", "lr", "batch_size", "val_fraction", "patience")


def wants_table_run(config: TrainConfig, declared: bool) -> bool:
    """Whether `train` models config.data as a mixed table (see the module docstring)."""
    path = Path(config.data)
    if path.suffix.lower() not in TABLE_SUFFIXES or not path.is_file():
        return False
    if declared or path.suffix.lower() == ".parquet":
        return True
    from .. import data

    try:
        header = data.read_csv_with_header(path)[1]
    except CellError:
        return True  # text, dates or blank cells: the numeric path would stop at the first one
    except FlowforgeError:
        return False  # a ragged or empty file: the numeric path names the problem
    return bool(header) and any(not str(name).strip() for name in header)


def is_table_run(run: str | os.PathLike) -> bool:
    """Whether a run folder holds a TableFlow."""
    record = RunFolder.of(run).record()
    return bool(record) and record.get("kind") == "table"


def train_table_run(config: TrainConfig, columns: str | None = None, schema_file: str | None = None,
                    missing: str = "model") -> RunResult:
    """Read the table, infer (or read) its schema, hold out the test rows, fit a TableFlow, write the run."""
    if config.context_columns:
        raise FlowforgeError("--context-columns is for numeric tables; a mixed table's model covers every column")
    df = _subset(read_table(config.data), config)
    schema = _schema(df, columns, schema_file)
    print(schema)
    folder = RunFolder.claim(config)  # config.json alone until the first checkpoint: the same --out can start again
    config = TrainConfig.from_dict({**config.to_dict(), "out": str(folder.path)})
    folder.write_record({"kind": "table", "config": config.to_dict(), "schema": schema.to_json(), "missing": missing,
                         "data": {"source": str(config.data), "sha256": file_sha256(config.data), "rows": len(df),
                                  "columns": [str(c) for c in df.columns]}})
    try:
        return fit_table_run(folder, config, df, schema, missing)
    except BaseException:
        if not (folder.path / TABLE_CHECKPOINT).exists():  # nothing to resume: no half-made run folder is left behind
            folder.config_path.unlink(missing_ok=True)
        raise


def fit_table_run(folder: RunFolder, config: TrainConfig, df: pd.DataFrame, schema: Schema, missing: str,
                  resume: bool = False) -> RunResult:
    """Fit the TableFlow of a claimed run folder (or continue its checkpoint), then write the model,
    metrics and plots; SIGINT/SIGTERM stop training with the checkpoint written (RunResult.stopped_by)."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    train, test = _split(df, config)
    model = TableFlow(schema=schema, seed=config.seed, missing=missing, **_given_options(config))
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as notices, StopSignals() as stop:  # notices shown once fit succeeds: an error stays one line
        warnings.simplefilter("always")
        model.fit(train, checkpoint=folder.path / TABLE_CHECKPOINT, save_every=config.save_every, resume=resume, should_stop=stop)
    seconds = time.perf_counter() - started
    for notice in notices:
        warnings.warn_explicit(notice.message, notice.category, notice.filename, notice.lineno)
    if "interrupted_at_step" in model.metrics:
        return RunResult(folder.path, {"steps_run": model.metrics["interrupted_at_step"]}, stop.received or int(signal.SIGTERM))
    model.save(folder.path / TABLE_FOLDER)
    # config.json's "trained": the model TableFlow sized and trained ("config" keeps the options as given, which --resume compares)
    folder.write_record({**folder.record(), "trained": _trained_options(model)})
    metrics = _metrics(model, df, train, test, seconds)
    folder.write_metrics(metrics)
    draw_or_warn(folder.path / "plots", lambda: write_table_plots(folder.path / "plots", model, df, config.seed))
    return RunResult(folder.path, metrics)


def _trained_options(model: TableFlow) -> dict[str, Any]:
    """The options TableFlow trained its flow with (it sizes those not given from the table), so
    config.json records the model that was trained, not the numeric path's defaults."""
    flow = model.metrics.get("flow")
    if not flow:  # no numeric column: only the categorical model was fitted
        return {"model": model.model, "steps": model.steps or DEFAULT_STEPS, "batch_size": model.batch_size}
    kwargs = flow["model"]["kwargs"]
    return {"model": flow["model"]["model"], "layers": kwargs["layers"], "hidden": list(kwargs["hidden"]),
            "lr": flow["lr"], "steps": model.steps or DEFAULT_STEPS, "batch_size": model.batch_size}


def run_table(config: TrainConfig) -> pd.DataFrame:
    """The rows a table run models: its file, with `--n`'s seeded subset."""
    return _subset(read_table(config.data), config)


def _subset(df: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """A seeded subset of `--n` rows, as the numeric path takes."""
    if config.n is None or config.n >= len(df):
        return df
    return df.sample(n=config.n, random_state=config.seed).sort_index()


def _schema(df: pd.DataFrame, columns: str | None, schema_file: str | None) -> Schema:
    """The inferred schema with `--columns`' kinds, or the one in a `--schema` file (JSON, as
    config.json records it; a datetime column's dates are read in its "format")."""
    if schema_file is None:
        return infer_schema(df, overrides=columns)
    try:
        schema = Schema.from_json(json.loads(Path(schema_file).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FlowforgeError(f"--schema {schema_file}: not a flowforge table schema ({error})") from None
    return declared_dates(schema, df)  # a datetime column's "format", set by hand, reads its cells


def _split(df: pd.DataFrame, config: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seeded split train takes of any table (--test-fraction 0: every row for training)."""
    train_rows, test_rows = split_indices(len(df), config.test_fraction, config.seed)
    return df.iloc[train_rows], df.iloc[test_rows]


def _given_options(config: TrainConfig) -> dict[str, Any]:
    """The TableFlow options set on the command line; the rest TableFlow sizes from the table."""
    options = {}
    for name in TABLE_OPTIONS:
        if not config.left_at_default(name):
            value = getattr(config, name)
            options[name] = tuple(value) if name == "hidden" else value
    if "patience" in options and options["patience"] is None:
        options["patience"] = 10**9  # --patience 0: never stop early
    return options


def _metrics(model: TableFlow, df: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, seconds: float) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows held out with blank cells or unseen levels are counted below instead
        details = model.log_prob_details(test) if len(test) else pd.DataFrame(
            {"log_prob": [], "estimated": [], "standard_error": [], "log_prob_pattern": []})
    log_prob = details["log_prob"].to_numpy(float)
    scored = np.isfinite(log_prob) & ~details["estimated"].to_numpy(bool)  # estimates on blank rows: test_nll_observed
    fitted = model.metrics
    flow = fitted.get("flow", {})
    return {
        "test_nll": float(-log_prob[scored].mean()) if scored.any() else None,
        "n_test": len(test), "n_test_scored": int(scored.sum()), "n_train": len(train),
        "likelihood": fitted.get("likelihood"), "dequantised": fitted.get("dequantised", []),
        "rows_dropped_for_missing": fitted.get("rows_dropped", 0),
        "blank_cells_dropping_rows": fitted.get("blank_cells", {}),  # in the training rows, per modelled column
        "blank_cells_as_level": fitted.get("blank_levels", {}),  # --missing level: blank categories kept
        "missing_cells": {str(c): int(n) for c, n in df.isna().sum().items() if n},  # the whole table, every column
        "best_step": flow.get("best_step"), "best_val_nll": flow.get("best_val_nll"),
        "stayed_at_gaussian": flow.get("stayed_at_gaussian", False),
        "train_seconds": round(seconds, 2),
        **(_pattern_metrics(details) if model.missing == "model" else {}),
        "table": fitted,
    }


def _pattern_metrics(details: pd.DataFrame) -> dict[str, Any]:
    """missing="model": every held-out row as it is. test_nll_observed is the mean NLL of the cells each row has,
    given which (importance-sampling estimates where numbers are blank, with their standard error);
    test_nll_pattern the mean -log P(blank pattern); test_nll_with_pattern their sum."""
    observed, pattern = details["log_prob"].to_numpy(float), details["log_prob_pattern"].to_numpy(float)
    ok = np.isfinite(observed + pattern)
    if not ok.any():
        return {"test_nll_observed": None, "test_nll_pattern": None, "test_nll_with_pattern": None, "n_test_estimated": 0}
    error = details["standard_error"].fillna(0.0).to_numpy()[ok]
    return {"test_nll_observed": float(-observed[ok].mean()), "test_nll_observed_error": float(np.sqrt((error ** 2).sum()) / ok.sum()),
            "test_nll_pattern": float(-pattern[ok].mean()), "test_nll_with_pattern": float(-(observed + pattern)[ok].mean()),
            "n_test_with_pattern": int(ok.sum()), "n_test_estimated": int(details["estimated"].to_numpy(bool)[ok].sum()),
            "blank_rows_likelihood": "importance-sampling estimate (a lower bound in expectation)"}


def report_table_run(result: RunResult) -> int:
    """Print a table run's outcome; an interrupted one exits with 128 + the signal's number."""
    m = result.metrics
    if result.stopped_by is not None:
        print(f"flowforge: interrupted by {signal.Signals(result.stopped_by).name} after {m['steps_run']} steps; "
              f"{result.folder / TABLE_CHECKPOINT} holds the progress: 'flowforge train --resume {result.folder}' continues",
              file=sys.stderr)
        return 128 + result.stopped_by
    test_nll = "n/a" if m["test_nll"] is None else f"{m['test_nll']:.4f} nats"
    bound = " (a lower bound: dequantised " + ", ".join(m["dequantised"]) + ")" if m["likelihood"] == "lower bound" else ""
    print(f"run folder: {result.folder}")
    print(f"test_nll: {test_nll}{bound} ({m['n_test_scored']} of {m['n_test']} held-out rows scored; "
          f"fit in {m['train_seconds']:.1f} s)")
    if m["rows_dropped_for_missing"]:
        print(f"rows with blank cells left out of training: {m['rows_dropped_for_missing']} of {m['n_train']} training rows "
              f"(blank cells per column in those {m['n_train']} rows: {m['blank_cells_dropping_rows']})")
    if m.get("test_nll_with_pattern") is not None and m["n_test_estimated"]:
        print(f"held-out rows with their blank cells: {m['test_nll_with_pattern']:.4f} nats = {m['test_nll_observed']:.4f} "
              f"(+- {m['test_nll_observed_error']:.4f}, importance sampling on {m['n_test_estimated']} rows with blank numbers) "
              f"for the cells they have + {m['test_nll_pattern']:.4f} for which are blank ({m['n_test_with_pattern']} rows)")
    if m["blank_cells_as_level"]:
        print(f"blank categorical cells modelled as a level of their own: {m['blank_cells_as_level']}")
    if m["stayed_at_gaussian"]:
        print(f"note: the flow stayed at its starting Gaussian: {m['table']['flow'].get('why', '')}")
    return 0


def load_table_run(run: str | os.PathLike) -> TableFlow:
    return TableFlow.load(RunFolder.of(run).path / TABLE_FOLDER)


def sample_table_run(run: str | os.PathLike, n: int, seed: int, out: str | None) -> int:
    """Write n synthetic rows with the training table's columns, order and types (CSV on stdout by default)."""
    if out is not None and Path(out).suffix.lower() not in TABLE_SUFFIXES:
        raise FlowforgeError(f"--out {out}: a table run writes {', '.join(TABLE_SUFFIXES)} (its columns are not all numbers)")
    rows = load_table_run(run).sample(n, seed=seed)
    if out is None:
        rows.to_csv(sys.stdout, index=False)
        return 0
    write_table(rows, out)
    print(f"wrote {len(rows)} samples to {out}")
    return 0


def score_table_file(run: str | os.PathLike, path: str | os.PathLike) -> np.ndarray:
    """log p(row) of each row of a table file under a table run's model (columns found by name)."""
    if Path(path).suffix.lower() not in TABLE_SUFFIXES:
        raise FlowforgeError(f"{path}: a table run scores {', '.join(TABLE_SUFFIXES)} files")
    return load_table_run(run).log_prob(read_table(path))


def table_check_rows(run: str | os.PathLike, path: str | os.PathLike | None = None) -> tuple[Flow, np.ndarray, np.ndarray | None, str]:
    """What `check` measures of a table run: its continuous flow, and the rows that flow sees
    (support maps applied, counts and dates dequantised by one draw), with their categories'
    one-hot context, for the complete in-support rows of the held-out split (or of a file)."""
    model = load_table_run(run)
    if model.flow is None:
        raise FlowforgeError(f"{run}: the table has no continuous columns, so no flow to check (its categorical model is exact)")
    if path is not None:
        df, source = read_table(path), os.fspath(path)
    else:
        folder = RunFolder.of(run)
        config = folder.config(folder.record())
        recorded = folder.record().get("data", {})
        if recorded.get("sha256") and (not Path(config.data).is_file() or file_sha256(config.data) != recorded["sha256"]):
            raise FlowforgeError(f"{config.data} changed since {folder.path} was trained; pass --data FILE to check other data")
        train, test = _split(_subset(read_table(config.data), config), config)
        df, source = (test, "held-out split") if len(test) else (train, "training rows (--test-fraction 0)")
        source = f"{source} of {config.data}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows with blank cells or unseen levels are left out, and counted in `source`
        encoded = encode(model.schema, df)
    ok = ~encoded.missing & ~encoded.outside
    if not ok.any():
        raise FlowforgeError(f"{source}: no complete rows inside the model's support to check")
    x = torch.from_numpy(encoded.continuous[ok])
    y, _ = to_latents(model.schema, x, noise(model.schema, len(x), 1, torch.Generator().manual_seed(0))[0])
    maps = "support maps"
    if getattr(model, "copula", None) is not None:  # marginals="copula": the flow's inputs are the copula's z
        y, maps = model.copula(y)[0], "support maps and copula marginals"
    hot = one_hot(torch.from_numpy(encoded.codes[ok]), model.discrete.sizes)
    context = hot.numpy() if hot.shape[1] else None
    return model.flow, y.numpy(), context, f"{source} ({int(ok.sum())} complete rows, continuous columns after their {maps})"
