"""Helpers shared by several test modules."""
from __future__ import annotations

from pathlib import Path


def one_line_error(capsys) -> str:
    """The CLI's stderr, asserted to be one `flowforge: error: ...` line with no traceback."""
    err = capsys.readouterr().err
    assert err.startswith("flowforge: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


class Malicious:
    """Unpickling this runs code: it writes the marker file named at pickling time."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


# the arguments of a quick `flowforge train`: 600 points of two moons, a two-layer model
TINY_TRAIN = ["--data", "moons", "--n", "600", "--layers", "2", "--hidden", "16", "--batch-size", "64", "--threads", "1", "--no-progress"]


def write_normal_npy(path: Path, rows: int, features: int, chunk: int = 131_072) -> float:
    """A float32 .npy file of standard normal rows, written a chunk at a time (the whole array is
    never in memory); returns its size in MiB."""
    import numpy as np

    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, features))
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        array[start:stop] = np.random.default_rng(start).normal(size=(stop - start, features))
    array.flush()
    del array
    return path.stat().st_size / 2**20
