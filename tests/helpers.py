"""Helpers shared by several test modules."""
from __future__ import annotations

import os
import subprocess
import sys
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


def launch(args: list[str], processes: int, *, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 240) -> subprocess.CompletedProcess:
    """`python args...` alone, or under `torchrun --standalone` with `processes` ranks; asserts it exits 0.

    Faulthandler prints every thread's Python stack if a rank dies of a signal. A run in which a
    rank dies of SIGABRT is run once more: gloo's teardown can abort a rank on a loaded machine
    (seen twice in CI, never in 100 runs of four parallel loops here); twice in a row fails.
    """
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1", **(env or {})}
    for attempt in (1, 2):
        done = subprocess.run([sys.executable, *launcher, *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode == 0 or attempt == 2 or processes == 1 or "SIGABRT" not in done.stderr:
            break
        print(f"a rank aborted; running again: {done.stderr[-6000:]}", file=sys.stderr)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    return done
