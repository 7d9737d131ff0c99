"""Where `sample` and `score` write their arrays: a .npy or .csv file, or CSV on stdout."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import FlowforgeError
from ..train.checkpoint import atomic_write_bytes

OUTPUT_SUFFIXES = (".npy", ".csv")


def check_suffix(out: str | None) -> None:
    if out is not None and Path(out).suffix.lower() not in OUTPUT_SUFFIXES:
        raise FlowforgeError(f"--out {out}: unknown file type {Path(out).suffix or '(none)'!r}; use {' or '.join(OUTPUT_SUFFIXES)}")


def write_array(x: np.ndarray, out: str | None, columns: list[str]) -> None:
    """.npy keeps float32 exactly; CSV (a file, or stdout when out is None) has a header line.
    Files are written atomically: never half-written, even if the process is killed."""

    def write_csv(handle) -> None:
        np.savetxt(handle, x, fmt="%.7g", delimiter=",", header=",".join(columns), comments="")

    if out is None:
        write_csv(sys.stdout)
    elif Path(out).suffix.lower() == ".npy":
        atomic_write_bytes(out, lambda handle: np.save(handle, x))  # np.save(path) would append ".npy" to "X.NPY"
    else:
        atomic_write_bytes(out, write_csv)
