"""NpyRows: a .npy file read a batch at a time, so data larger than memory trains.

Rows are read with positioned reads (no memory map: the pages a map touches, and the pages the
kernel maps around them, would count as this process's memory). Consecutive rows are read in
one call, so a streaming pass reads large blocks and a random batch reads one row per call.
It quacks like the tensors `fit` uses: `len`, `shape`, `x[rows]`, `x[a:b]`, `.to(dtype)`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import FlowforgeError

CHUNK_ROWS = 16384


def _read_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a C-ordered .npy file, with named errors."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
    except (ValueError, OSError, EOFError) as error:
        raise FlowforgeError(f"{path}: not a readable .npy array ({error})") from None
    shape, dtype, offset = mapped.shape, mapped.dtype, mapped.offset
    fortran_order = mapped.flags.f_contiguous and not mapped.flags.c_contiguous
    del mapped
    if dtype.hasobject or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise FlowforgeError(f"{path}: expected real numbers, got dtype {dtype}")
    if fortran_order:
        raise FlowforgeError(f"{path}: Fortran-ordered arrays cannot be streamed; save with np.ascontiguousarray")
    return tuple(shape), dtype, offset


class NpyRows:
    """Rows of a numeric .npy file, optionally a subset given by row indices and, for a 2-D file,
    some of its columns (e.g. a conditional run's data and context columns)."""

    def __init__(self, path: str | os.PathLike, index: Tensor | None = None, dtype: torch.dtype = torch.float32,
                 columns: tuple[int, ...] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FlowforgeError(f"no such file: {self.path}")
        self.file_shape, self.file_dtype, self.offset = _read_header(self.path)
        if len(self.file_shape) < 2:
            raise FlowforgeError(f"{self.path}: expected a 2-D (rows, features) array, got shape {self.file_shape}")
        if columns is not None and (len(self.file_shape) != 2 or not all(0 <= j < self.file_shape[1] for j in columns)):
            raise FlowforgeError(f"{self.path}: columns {list(columns)} are not columns of its {self.file_shape} array")
        self.row_items = math.prod(self.file_shape[1:])
        self.index, self.dtype, self.columns = index, dtype, columns

    def __len__(self) -> int:
        return self.file_shape[0] if self.index is None else len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *(self.file_shape[1:] if self.columns is None else (len(self.columns),)))

    def to(self, dtype: torch.dtype) -> NpyRows:
        return NpyRows(self.path, self.index, dtype, self.columns)

    def subset(self, rows: Tensor) -> NpyRows:
        """A view of some rows (no data is read)."""
        return NpyRows(self.path, rows if self.index is None else self.index[rows], self.dtype, self.columns)

    def select(self, columns: list[int]) -> NpyRows:
        """A view of some columns of a 2-D file, in the order given (no data is read)."""
        picked = tuple(columns) if self.columns is None else tuple(self.columns[j] for j in columns)
        return NpyRows(self.path, self.index, self.dtype, picked)

    def __getitem__(self, rows: Tensor | slice) -> Tensor:
        if isinstance(rows, slice):
            rows = torch.arange(*rows.indices(len(self)))  # not arange(len(self))[rows]: a chunk of a big file
        rows = (rows if self.index is None else self.index[rows]).numpy()
        taken = self._read(rows).reshape(len(rows), *self.file_shape[1:])
        taken = taken if self.columns is None else taken[:, list(self.columns)]
        return torch.from_numpy(taken.astype(np.float64 if self.dtype == torch.float64 else np.float32, copy=False))

    def _read(self, rows: np.ndarray) -> np.ndarray:
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        out = np.empty((len(rows), self.row_items), dtype=self.file_dtype)
        row_bytes = self.row_items * self.file_dtype.itemsize
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1  # runs of consecutive rows: one read each
        starts, ends = np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]])
        with open(self.path, "rb", buffering=0) as handle:
            for a, b in zip(starts.tolist(), ends.tolist()):
                data = os.pread(handle.fileno(), (b - a) * row_bytes, self.offset + int(ordered[a]) * row_bytes)
                if len(data) != (b - a) * row_bytes:
                    raise FlowforgeError(f"{self.path}: file is truncated (row {int(ordered[a])} and after are missing)")
                out[a:b] = np.frombuffer(data, dtype=self.file_dtype).reshape(b - a, self.row_items)
        result = np.empty_like(out)
        result[order] = out
        return result

    def check_finite(self, name: str) -> None:
        """Stream through the rows once; a named error at the first row holding NaN or Inf."""
        for start in range(0, len(self), CHUNK_ROWS):
            chunk = self[start : start + CHUNK_ROWS]
            bad = ~torch.isfinite(chunk.reshape(chunk.shape[0], -1)).all(1)
            if bad.any():
                raise FlowforgeError(f"{name} ({self.path}) contains NaN or Inf (first in row {start + int(bad.nonzero()[0])})")
