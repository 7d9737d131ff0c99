"""The pieces of TableFlow.fit: rows kept, the held-out split, and the continuous flow's data."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..errors import FlowforgeError
from .encode import Encoded
from .latent import has_dequantised, noise, to_latents
from .schema import Schema

SMALL_TABLE_ROWS = 2000  # fewer training rows: the flow's first layer whitens (it starts at the fitted Gaussian)
COPIES_ROWS = 4000  # dequantised tables smaller than this see each row several times, with fresh noise


def rows_to_keep(schema: Schema, df: pd.DataFrame, encoded: Encoded, missing: str) -> np.ndarray:
    """Rows to train on: missing="drop" drops rows with a blank modelled cell and says how many,
    per column; rows outside a declared support are an error naming them."""
    if missing != "drop":
        raise FlowforgeError(f"missing={missing!r}: only 'drop' is supported")
    if encoded.outside.any():
        rows = list(df.index[encoded.outside][:10])
        raise FlowforgeError(f"{int(encoded.outside.sum())} training rows lie outside the schema (unseen levels or values "
                             f"outside a declared support), e.g. rows {rows}")
    if encoded.missing.any():
        modelled = [c.name for c in schema.columns if c.kind not in ("identifier",)]
        counts = {name: int(n) for name, n in df[modelled].isna().sum().items() if n}
        warnings.warn(f"missing='drop': {int(encoded.missing.sum())} of {len(df)} rows have blank cells and are left out "
                      f"(blank cells per column: {counts})", stacklevel=3)
    keep = ~encoded.missing
    if keep.sum() < 2:
        raise FlowforgeError(f"only {int(keep.sum())} complete rows: too few to fit a table model")
    return keep


def split(rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, validation) row indices; at least one validation row from 5 rows on."""
    order = np.random.default_rng(seed).permutation(rows)
    held = int(round(fraction * rows)) if rows >= 5 else 0
    held = max(held, 1) if rows >= 5 else 0
    return order[held:], order[:held]


def flow_data(schema: Schema, x: np.ndarray, hot: Tensor, copies: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(y, context) for the flow: `copies` dequantised copies of the rows x (one when nothing is
    dequantised), float32 as the flow's parameters."""
    copies = copies if has_dequantised(schema) else 1
    raw = torch.from_numpy(x).expand(copies, -1, -1)
    y, _ = to_latents(schema, (raw + noise(schema, len(x), copies, generator)).reshape(-1, x.shape[1]))
    return y.float(), hot.repeat(copies, 1)


def copies_for(rows: int) -> int:
    return int(min(8, max(1, COPIES_ROWS // max(rows, 1))))
