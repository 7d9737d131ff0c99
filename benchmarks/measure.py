"""Timing and peak-memory helpers shared by the benchmarks (no flowforge code here)."""
from __future__ import annotations

import os
import resource
import statistics
import time
from pathlib import Path

import torch


def timed(fn, reps: int) -> float:
    """Seconds per call: CPU time with one thread (robust to other processes), wall time with more."""
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    start = clock()
    for _ in range(reps):
        fn()
    return (clock() - start) / reps


def interleaved(fns: dict[str, object], rounds: int, reps: int) -> dict[str, float]:
    """Median seconds per call of each fn, timing all of them in turn each round (after a warm-up).

    Each round starts one place further along the list, so no fn always runs right after the same
    other one (whose freed memory, or cache state, it would inherit every time)."""
    for fn in fns.values():
        fn()
    keys = list(fns)
    samples: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            samples[key].append(timed(fns[key], reps))
    return {k: statistics.median(v) for k, v in samples.items()}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_kb() -> int:
    """Current RSS in KiB, after resetting the peak (Linux: the import's transient peak is forgotten)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kb("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_kb() -> int:
    try:
        return _status_kb("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# glibc's default raises its mmap threshold as large blocks are freed, after which the RSS peak
# measures heap fragmentation (which depends on allocation order) more than live memory. A fixed
# 128 KiB threshold returns every large block on free, for every library alike.
MEMORY_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
