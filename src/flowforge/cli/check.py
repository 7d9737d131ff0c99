"""`flowforge check RUN`: the numerical health (flowforge.health) of a run's model, on its held-out
split or on a given file, compared with tolerances and written to RUN/check.json.

The held-out split is regenerated from config.json (data, n, seed, test_fraction), exactly as
`train` cut it; a file that changed since is refused (its SHA-256 is recorded at training).
A conditional run's context columns are taken where they sat in the training table.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import data
from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..health import FAR_REACH, FAR_SHARE, Health, column_scale, far_sample_share, float32_only_rows, measure, table
from ..train.checkpoint import atomic_write_text, load
from ..train.rows import NpyRows
from .argparse_internals import Subcommands
from .conditional import split_scored
from .config import TrainConfig
from .image_run import load_image_split
from .mixed_run import is_table_run, table_check_rows
from .options import POSITIVE_FLOAT
from .run_folder import RunFolder, file_sha256
from .score import describe_shape, image_rows
from .table_run import load_split

TOLERANCE = 1e-3  # round trip, as a fraction of each column's standard deviation (pixels for images); float32 flows reach ~1e-6
LOGDET_TOLERANCE = 1e-2  # nats; float32 sums of a few hundred log-scales stay well below
TARGET_CHECK_ROWS = 1000  # a fit-target run's flow is checked on this many of its own samples
STREAMED_CHECK_ROWS = 100_000  # held-out rows of a run streamed from a large .npy file that check reads


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("check", parents=[common], help="numerical health of a run: round-trip error, log-det gap, layer scales",
                            description="On the run's held-out split (or --data FILE): the max and median round-trip error "
                                        "|decode(encode(x)) - x|, the gap |forward + inverse log-det|, and each layer's largest "
                                        "|log det|; prints a table, writes RUN/check.json, exits with 1 past a tolerance.")
    p.add_argument("run", metavar="RUN", help="run folder (or checkpoint file, with --data)")
    p.add_argument("--data", metavar="FILE", help="check the rows of FILE instead of the held-out split")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="run the whole flow in this precision (default float32)")
    p.add_argument("--tolerance", type=POSITIVE_FLOAT, default=TOLERANCE,
                   help="largest accepted round-trip error, as a fraction of each column's standard deviation over the rows "
                        f"checked (an image's: in pixel units) (default {TOLERANCE:g})")
    p.add_argument("--logdet-tolerance", type=POSITIVE_FLOAT, default=LOGDET_TOLERANCE,
                   help=f"largest accepted log-det gap, in nats (default {LOGDET_TOLERANCE:g})")
    p.set_defaults(handler=check)


def check(args: argparse.Namespace) -> int:
    result = check_run(args.run, args.data, dtype=args.dtype, tolerance=args.tolerance, logdet_tolerance=args.logdet_tolerance)
    print(f"{result.source}, {result.health.dtype}")
    print(table(result.health))
    for note in result.notes:
        print(f"note: {note}")
    verdict = "passed" if result.passed else f"FAILED: {'; '.join(result.problems)}"
    print(f"check {verdict} (wrote {result.path})")
    rounding = any(p.startswith(("round-trip", "log-det")) for p in result.problems)
    if rounding and result.health.dtype == "float32":  # e.g. 16-bit pixels, which float32 resolves coarsely
        print("`--dtype float64` measures the same model without float32's rounding: a defect fails there too")
    return 0 if result.passed else 1


@dataclass(frozen=True)
class CheckResult:
    """What `check` measured, where, and whether it passed; `problems` says what failed."""

    health: Health
    source: str
    problems: tuple[str, ...]
    path: Path
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems


def check_run(
    run: str | os.PathLike, data_path: str | os.PathLike | None = None, dtype: str = "float32",
    tolerance: float = TOLERANCE, logdet_tolerance: float = LOGDET_TOLERANCE,
) -> CheckResult:
    """Measure a run's model (float32 or float64 throughout) and write RUN/check.json."""
    if dtype not in ("float32", "float64"):
        raise FlowforgeError(f"dtype must be float32 or float64, got {dtype!r}")
    folder = RunFolder.of(run)
    if is_table_run(run):  # a mixed table: its flow, on the rows after their support maps
        flow, x, context, source = table_check_rows(run, data_path)
        flow = flow.to(getattr(torch, dtype))
    else:
        flow = load(run).to(getattr(torch, dtype))
        x, context, source = _given(flow, run, data_path) if data_path is not None else _held_out(flow, folder)
    if tuple(x.shape[1:]) != flow.event_shape:
        besides = " besides its context columns" if context is not None else ""
        raise FlowforgeError(f"{source}: the model in {run} expects {describe_shape(flow.event_shape)} per row{besides}, got {describe_shape(x.shape[1:])}")
    dtype = flow._anchor().dtype
    with torch.random.fork_rng(devices=[]):  # an image model's dequantisation noise: the same draw each check
        torch.manual_seed(0)
        rows = torch.from_numpy(x).to(dtype)
        ctx = torch.from_numpy(context).to(dtype) if context is not None else None
        scale = column_scale(torch.from_numpy(x)) if x.ndim == 2 else None  # tables: relative to each column's spread
        health = measure(flow, rows, ctx, scale=scale)
    problems = []
    if scale is not None and not health.round_trip_scaled_max <= tolerance:
        problems.append(f"round-trip error {health.round_trip_scaled_max:.3g} of a column's standard deviation "
                        f"({health.round_trip_max:.3g} in data units) > tolerance {tolerance:g}")
    if scale is None and not health.round_trip_max <= tolerance:
        problems.append(f"round-trip error {health.round_trip_max:.3g} > tolerance {tolerance:g}")
    if not health.logdet_gap_max <= logdet_tolerance:
        problems.append(f"log-det gap {health.logdet_gap_max:.3g} nats > tolerance {logdet_tolerance:g}")
    notes, float32_only = [], []
    if problems and dtype == torch.float32 and scale is not None:  # tables; images keep the strict rule
        float32_only = float32_only_rows(flow, rows, ctx, scale, tolerance, logdet_tolerance)
        if float32_only:
            problems = []
            notes.append(f"{len(float32_only)} of {len(rows)} rows (e.g. row {float32_only[0]}) exceed the tolerances in float32 "
                         "only: in float64 they pass, so float32's rounding is amplified there (extreme rows in the flow's "
                         "steep tails), not a defect")
    far = None
    if scale is not None:  # vectors and tables: do the samples stay near the data?
        far = far_sample_share(flow, rows, ctx)
        if not far <= FAR_SHARE:
            problems.append(f"{far:.1%} of sampled cells lie more than {FAR_REACH:g} standard deviations beyond their "
                            f"column's range in the data (at most {FAR_SHARE:.0%} passes): the flow's tails send samples far out")
    result = CheckResult(health, source, tuple(problems), folder.path / "check.json", tuple(notes))
    record = {"run": os.fspath(run), "data": source, "tolerance": tolerance, "logdet_tolerance": logdet_tolerance,
              "passed": result.passed, "problems": list(problems), "notes": notes, "float32_only_rows": float32_only,
              "far_sample_share": far, **health.to_dict()}
    atomic_write_text(result.path, json.dumps(_finite(record), indent=2) + "\n")
    return result


def _given(flow: Flow, run: str | os.PathLike, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A file's rows, and a conditional run's context columns found in it as `score` finds them."""
    if len(flow.event_shape) == 3:  # an image model: images, or a table of flattened ones (as score reads them)
        return image_rows(flow, run, path).numpy(), None, os.fspath(path)
    return (*split_scored(flow, run, *data.read_csv_with_header(path), path), os.fspath(path))


def _held_out(flow: Flow, run_folder: RunFolder) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The run's test split, cut again from its config by the functions `train` cut it with."""
    folder, resolved = run_folder.path, run_folder.record()
    if resolved is None:
        raise FlowforgeError(f"{folder} has no config.json to regenerate the held-out split from; pass --data FILE")
    if resolved.get("kind") == "target":  # fit-target: no data was trained on, the flow's own samples are checked
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            rows = flow.sample(TARGET_CHECK_ROWS).double().numpy()
        return rows, None, f"{TARGET_CHECK_ROWS:,} rows sampled from the flow (a fit-target run has no data; --data FILE checks a file)"
    config, recorded = run_folder.config(resolved), resolved.get("data", {})
    path = recorded.get("path")
    if recorded.get("sha256") and path and (not Path(path).exists() or file_sha256(path) != recorded["sha256"]):
        raise FlowforgeError(f"{path} changed since {folder} was trained; pass --data FILE to check other data")
    if len(flow.event_shape) == 3:  # an image run (cli/image_run.py)
        test = load_image_split(config)[1]
        _check_rows(recorded, len(test), config, folder)
        return test, None, f"held-out split of {config.data} ({len(test)} rows)"
    table = load_split(config)  # a large .npy file stays on disk
    _check_rows(recorded, len(table.test), config, folder)
    test, context = table.test_in_memory(STREAMED_CHECK_ROWS)
    if not isinstance(table.test, NpyRows):
        return test, context, f"held-out split of {config.data} ({len(test)} rows)"
    rows = f"{len(test):,} rows" if len(test) == len(table.test) else f"the first {len(test):,} of its {len(table.test):,} rows"
    return test, context, f"held-out split of {config.data} ({rows})"


def _check_rows(recorded: dict[str, Any], n_test: int, config: TrainConfig, folder: Path) -> None:
    if recorded.get("n_test") not in (None, n_test):
        raise FlowforgeError(f"{config.data} no longer gives the {recorded['n_test']} held-out rows of {folder}; pass --data FILE")


def _finite(value: Any) -> Any:
    """JSON has no Infinity or NaN: non-finite numbers are written as null."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
