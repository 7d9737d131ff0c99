"""Training data plumbing: validation of user arrays, the validation split, the batch order."""
from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..data.files import coarse_float32_column
from ..errors import FlowforgeError
from ..flows.checks import cast_checked
from . import distributed
from .rows import NpyRows

if TYPE_CHECKING:
    from ..flows.flow import Flow
    from .options import FitOptions


def as_data(data: Any, name: str, event_shape: tuple[int, ...] | None = None) -> Tensor | NpyRows:
    """Turn arrays/tensors into a floating tensor; name the problem if they are unusable.

    A path to a .npy file (or a numpy memmap of one) stays on disk as NpyRows, read per batch.
    """
    if isinstance(data, (str, os.PathLike)) or (isinstance(data, np.memmap) and str(getattr(data, "filename", "")).endswith(".npy")):
        rows = NpyRows(data.filename if isinstance(data, np.memmap) else data)
        _check_rows(rows.shape, name, event_shape)
        rows.check_finite(name)
        return rows
    if isinstance(data, NpyRows):  # already read and checked (e.g. fit's split of a .npy file)
        _check_rows(data.shape, name, event_shape)
        return data
    if isinstance(data, np.ndarray):
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            raise FlowforgeError(f"{name}: expected real numbers, got an array of dtype {data.dtype}")
        data = torch.from_numpy(np.array(data, dtype=np.float32 if _exact_in_float32(data.dtype) else np.float64))
    if not isinstance(data, Tensor):
        raise FlowforgeError(f"{name}: expected a tensor or numpy array, got {type(data).__name__}")
    if data.is_complex() or data.dtype == torch.bool:
        raise FlowforgeError(f"{name}: expected real numbers, got dtype {data.dtype}")
    # rows, not a graph: a tensor that requires grad would tie every batch to one autograd node
    data = data.detach() if data.is_floating_point() else data.to(torch.float32 if data.element_size() <= 2 else torch.float64)
    _check_rows(tuple(data.shape), name, event_shape)
    bad = ~torch.isfinite(data.reshape(data.shape[0], -1)).all(1)
    if bad.any():
        raise FlowforgeError(f"{name} contains NaN or Inf (first in row {int(bad.nonzero()[0])})")
    return data


def _exact_in_float32(dtype: np.dtype) -> bool:
    """float16/float32 arrays, and integers of at most 16 bits (pixels): float32 holds them exactly.
    Wider integers (Unix timestamps, ids) and float64 or wider go through float64, then to the flow's dtype."""
    return dtype.itemsize <= 2 or dtype == np.float32


def check_same_rows(data: Tensor | NpyRows, context: Tensor | NpyRows | None, name: str, context_name: str) -> None:
    """FlowforgeError unless the context (when given) has one row per data row."""
    if context is not None and context.shape[0] != data.shape[0]:
        raise FlowforgeError(f"{context_name} has {context.shape[0]} rows but {name} has {data.shape[0]}: one context row per data row")


def to_flow_dtype(data: Tensor | NpyRows | None, dtype: torch.dtype, name: str) -> Tensor | NpyRows | None:
    """data in the flow's dtype; a named error when finite values overflow it (1e300 to float32)."""
    if data is None:
        return None
    if isinstance(data, Tensor):
        return cast_checked(data, dtype, name)
    return data.to(dtype)


# the frame fit's data warnings point at: warn_* < FitData.checked < fit < torch.enable_grad's wrapper < the caller
FIT_CALLER = 5


def warn_lost_precision(data: Tensor | NpyRows, dtype: torch.dtype, name: str) -> None:
    """Warn when casting float64 data to the flow's float32 leaves a column fewer than ~1,000
    distinct values per standard deviation (e.g. Unix timestamps: 1.7e9 +- 600 s)."""
    if not isinstance(data, Tensor) or dtype != torch.float32:
        return
    coarse = coarse_float32_column(data.detach().cpu().reshape(data.shape[0], -1).numpy())
    if coarse is not None:
        warnings.warn(
            f"{name}: {coarse}. Build the flow in float64 (flow.double()) or subtract an offset from the column first.",
            stacklevel=FIT_CALLER,
        )


def warn_discrete(data: Tensor | NpyRows, name: str, sample: int = 10_000) -> None:
    """Warn when many rows repeat exactly, or a column is constant or takes only a few distinct
    values (at most 50, and at most a tenth of the rows): a continuous density can pile up on them
    without bound (raw 8x8 digits: test NLL 1e10)."""
    if not isinstance(data, Tensor) or data.dim() != 2 or data.shape[0] < 20:
        return
    rows = data[: min(sample, data.shape[0])]
    _warn_repeated_rows(rows, name)
    limit = min(50, rows.shape[0] // 10)
    for j in range(rows.shape[1]):
        distinct = torch.unique(rows[:, j]).numel()
        if distinct == 1:
            warnings.warn(
                f"{name}: column {j} is constant ({float(rows[0, j]):g}) in {rows.shape[0]} rows; a density on it is a "
                "spike, so the NLL can fall without bound. Drop the column.",
                stacklevel=FIT_CALLER,
            )
            return
        if distinct <= limit:
            warnings.warn(
                f"{name}: column {j} takes only {distinct} distinct values in {rows.shape[0]} rows; a continuous "
                "density can pile up on them without bound. Add uniform noise of one step's width first (dequantise).",
                stacklevel=FIT_CALLER,
            )
            return


REPEATED_SHARE = 0.05  # of rows that repeat another row exactly, above which fit warns


def _warn_repeated_rows(rows: Tensor, name: str) -> None:
    """Warn when many rows repeat another exactly (20% rows of zeros, every row five times): a
    density piles up on a repeated row without bound, and validation and test rows that repeat
    training rows are not held out, so neither early stopping nor the test NLL sees it."""
    distinct, counts = torch.unique(rows, dim=0, return_counts=True)
    repeated = 1 - len(distinct) / len(rows)
    if repeated <= REPEATED_SHARE:
        return
    top = int(counts.argmax())
    common = distinct[top].tolist()
    shown = ", ".join(f"{v:g}" for v in common[:6]) + (", ..." if len(common) > 6 else "")
    warnings.warn(
        f"{name}: {repeated:.0%} of {len(rows)} rows repeat another row exactly (the commonest, [{shown}], "
        f"{int(counts[top])} times); a density piles up on repeated rows without bound, and held-out rows that "
        "repeat training rows measure memory, not fit. Drop the duplicates, or dequantise.",
        stacklevel=FIT_CALLER + 1,  # called by warn_discrete
    )


MAX_VALIDATION_ROWS = 50_000  # enough for a precise NLL; keeps evaluations cheap on huge data


def _check_rows(shape: tuple[int, ...], name: str, event_shape: tuple[int, ...] | None) -> None:
    if len(shape) < 2:
        raise FlowforgeError(f"{name}: expected a 2-D (rows, features) array, got shape {shape}")
    if event_shape is not None and tuple(shape[1:]) != tuple(event_shape):
        raise FlowforgeError(f"{name}: the model expects rows of shape {tuple(event_shape)}, got {tuple(shape[1:])}")
    if shape[0] == 0:
        raise FlowforgeError(f"{name} is empty")


def check_positive(**values: Any) -> None:
    """Named error for any given value that is not a finite positive number (None is skipped)."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise FlowforgeError(f"{name} must be a positive number, got {value!r}")


def split_validation(train: Tensor, context: Tensor | None, fraction: float, seed: int):
    """Hold out `fraction` of the rows (at most MAX_VALIDATION_ROWS, reproducibly from `seed`)."""
    if not 0 <= fraction < 1:
        raise FlowforgeError(f"val_fraction must be in [0, 1), got {fraction!r}")
    n_val = min(round(train.shape[0] * fraction), MAX_VALIDATION_ROWS)
    if n_val < 1 or train.shape[0] - n_val < 2:
        return train, context, None, None
    order = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:]

    def pick(c: Tensor | NpyRows | None, i: Tensor) -> Tensor | NpyRows | None:
        if isinstance(c, NpyRows):
            return c.subset(i)
        return c[i] if c is not None else None

    return pick(train, train_idx), pick(context, train_idx), pick(train, val_idx), pick(context, val_idx)


def batch_index(step: int, n: int, batch_size: int, seed: int) -> Tensor:
    """Row indices of the batch at `step`: a fresh permutation each epoch, no partial batches.

    A pure function of (step, seed), so a resumed or distributed run sees exactly the batches
    an uninterrupted single-process run would.
    """
    batch_size = min(batch_size, n)
    epoch, offset = divmod(step, n // batch_size)
    return _epoch_order(n, seed, epoch)[offset * batch_size : (offset + 1) * batch_size]


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The row order of one epoch (cached: drawn once per epoch, not once per step)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1))


@dataclass
class FitData:
    """fit's rows, checked, split and in the flow's dtype (`val` None: no validation), and its batches."""

    train: Tensor | NpyRows
    context: Tensor | NpyRows | None
    val: Tensor | NpyRows | None
    val_context: Tensor | NpyRows | None
    rows_given: int  # before the validation split
    device: torch.device

    @classmethod
    def checked(cls, flow: Flow, train: Any, val: Any, context: Any, val_context: Any, options: FitOptions) -> FitData:
        if options.batch_size % distributed.world_size():
            raise FlowforgeError(f"batch_size {options.batch_size} must be divisible by the number of processes ({distributed.world_size()})")
        train = as_data(train, "train", flow.event_shape)
        context = as_data(context, "context") if context is not None else None
        check_same_rows(train, context, "train", "context")
        rows_given = train.shape[0]
        if val is None:
            if val_context is not None:
                raise FlowforgeError("fit: val_context was given without val")
            train, context, val, val_context = split_validation(train, context, options.val_fraction, options.seed)
        else:
            val = as_data(val, "val", flow.event_shape)
            val_context = as_data(val_context, "val_context") if val_context is not None else None
            check_same_rows(val, val_context, "val", "val_context")
        device, dtype = flow._anchor().device, flow._anchor().dtype
        warn_lost_precision(train, dtype, "train")
        warn_discrete(train, "train")
        train, val = to_flow_dtype(train, dtype, "train"), to_flow_dtype(val, dtype, "val")
        context, val_context = to_flow_dtype(context, dtype, "context"), to_flow_dtype(val_context, dtype, "val_context")
        return cls(train, context, val, val_context, rows_given, device)

    def batch(self, step: int, options: FitOptions, shard: bool = True) -> tuple[Tensor, Tensor | None]:
        """The batch of `step` (this rank's share of it when `shard`), on the flow's device."""
        index = batch_index(step, self.train.shape[0], options.batch_size, options.seed)
        index = distributed.shard(index) if shard else index
        x, c = self.train[index], (self.context[index] if self.context is not None else None)
        return x.to(self.device), (c.to(self.device) if c is not None else None)
