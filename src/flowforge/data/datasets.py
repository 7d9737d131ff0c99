"""One name or path -> float32 array (`load_dataset`), and a reproducible train/test `split` (of rows or of row indices)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FlowforgeError
from .digits import load_digits
from .files import SUFFIXES, read_csv_with_header
from .toys import TOYS, check_size, make_toy

DATASETS: tuple[str, ...] = (*TOYS, "digits")
TOY_SIZE = 20_000  # points drawn from a toy when `n` is not given


def load_dataset(spec: str | os.PathLike, n: int | None = None, seed: int = 0) -> np.ndarray:
    """A float32 (rows, features) dataset: a toy name, "digits" (dequantised), or a .npy/.npz/.csv/.txt/.tsv file.

    Args:
        n: toys: how many points (default 20_000); digits and files: a random subset of n rows.
        seed: fixes toy points, digits noise and the subset.
    """
    return load_table(spec, n, seed)[0]


def load_table(spec: str | os.PathLike, n: int | None = None, seed: int = 0) -> tuple[np.ndarray, list[str] | None]:
    """`load_dataset` plus the column names of a text file's header row (None for toys, digits,
    .npy/.npz files and text files without a header)."""
    if spec in TOYS:
        return make_toy(spec, TOY_SIZE if n is None else n, seed), None
    names = None
    if spec == "digits":
        x = load_digits(seed)
    elif Path(spec).suffix.lower() in SUFFIXES or Path(spec).exists():
        x, names = read_csv_with_header(spec)
    else:
        raise FlowforgeError(f"unknown dataset {os.fspath(spec)!r}; choose from {', '.join(DATASETS)}, or give a .npy/.npz/.csv file")
    return (x, names) if n is None else (x[subset_indices(len(x), n, seed, spec)], names)


def subset_indices(rows: int, n: int, seed: int, spec: str | os.PathLike) -> np.ndarray:
    """The rows of the random n-row subset that `load_table(spec, n, seed)` takes of a `rows`-row file."""
    if check_size(n) > rows:
        raise FlowforgeError(f"{os.fspath(spec)} has {rows} rows, fewer than n={n}")
    # [seed, 1]: a stream apart from the one the digits noise drew from `seed`
    return np.random.default_rng([seed, 1]).permutation(rows)[:n]


def split(x: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the rows of `x` with `seed` and return (train, test); both get at least one row."""
    train, test = split_indices(len(x), test_fraction, seed)
    return x[train], x[test]


def split_indices(rows: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The row indices (train, test) that `split` takes of a table of `rows` rows."""
    if not 0 <= test_fraction < 1:
        raise FlowforgeError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    if rows < 2 and test_fraction > 0:
        raise FlowforgeError(f"cannot split {rows} row(s) into train and test")
    n_test = min(max(round(test_fraction * rows), 1), rows - 1) if test_fraction > 0 else 0  # 0: the user holds out a file of their own
    order = np.random.default_rng(seed).permutation(rows)
    return order[n_test:], order[:n_test]
