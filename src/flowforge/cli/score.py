"""`flowforge score RUN --data FILE`: each row's log-likelihood under a run's model, and their mean NLL."""
from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import data
from ..data.files import TEXT_SUFFIXES
from ..data.images import array_ndim, load_images
from ..errors import FlowforgeError
from ..flows import Flow
from ..train.checkpoint import load
from .argparse_internals import Subcommands
from .conditional import split_scored
from .mixed_run import is_table_run, score_table_file
from .output import check_suffix, write_array


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("score", parents=[common], help="per-row log-likelihood of a data file (anomaly scores)",
                            description="Score each row of a data file by its log-likelihood under a trained model; print the mean NLL.")
    p.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    p.add_argument("--data", required=True, metavar="FILE", help=".npy, .npz or .csv file with the model's feature count; for a conditional run, "
                        "also its context columns (found by header name, else at the training file's indices)")
    p.add_argument("--out", metavar="FILE", help="write a log_prob column to FILE.csv or FILE.npy (default: CSV on stdout)")
    p.set_defaults(handler=score)


def score(args: argparse.Namespace) -> int:
    check_suffix(args.out)
    log_prob = score_table_file(args.run, args.data) if is_table_run(args.run) else score_file(args.run, args.data)
    write_array(log_prob[:, None], args.out, ["log_prob"])
    blank = np.isnan(log_prob)  # a mixed table's rows with blank numeric cells: TableFlow's warning names them
    infinite = np.isinf(log_prob)
    table_run = is_table_run(args.run)
    if infinite.any():  # a density of 0, or one that overflows float32: far outside the training data
        first = int(np.flatnonzero(infinite)[0]) + 1
        why = ("impossible under the model: the warning above names their cells" if table_run else
               "the model gives them zero density: their values lie far outside the data it was trained on, or outside a layer's support")
        warnings.warn(f"{args.data}: {int(infinite.sum())} of {len(log_prob)} rows score -inf (the first is data row {first}, "
                      f"from 1 without the header), {why}; the mean NLL leaves them out", RuntimeWarning, stacklevel=2)
    scored = ~blank & ~infinite
    nll = -float(np.mean(log_prob[scored])) if scored.any() else float("nan")
    left_out = [f"{int(blank.sum())} with blank cells" if blank.any() else "", f"{int(infinite.sum())} scoring -inf" if infinite.any() else ""]
    left_out = " and ".join(part for part in left_out if part)
    over = f"{len(log_prob)} rows" if not left_out else f"the {int(scored.sum())} of {len(log_prob)} rows that score finitely ({left_out} left out)"
    summary = f"mean NLL: {nll:{'.4f' if abs(nll) < 1e9 else '.4g'}} nats over {over}" if scored.any() else f"mean NLL: n/a: no row scores finitely ({left_out})"
    print(summary + (f"; wrote {args.out}" if args.out else ""), file=sys.stdout if args.out else sys.stderr)
    return 0


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
        raise FlowforgeError(f"{path}: the model in {run} expects {describe_shape(flow.event_shape)} per row{besides}, got {describe_shape(x.shape[1:])}")
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


def describe_shape(shape: tuple[int, ...]) -> str:
    """How an error names a model's per-row shape."""
    return f"{shape[0]} features" if len(shape) == 1 else f"shape {tuple(shape)}"
