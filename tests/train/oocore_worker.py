"""Worker for test_out_of_core.py: train from a .npy path and report memory growth (MB)."""
from __future__ import annotations

import json
import resource
import sys

import torch

import flowforge


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def vm_hwm_mb() -> float:
    """This process image's peak RSS (VmHWM; unlike ru_maxrss it is not inherited from the parent)."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    path, features = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    flow = flowforge.RealNVP(features, layers=2, hidden=(32,))
    baseline = rss_mb()
    history = flowforge.fit(flow, path, steps=30, batch_size=256, progress=False, eval_every=15)
    peak = vm_hwm_mb()
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "growth_mb": peak - baseline,
                      "val_nll": history.best_val_nll, "fitted": bool(flow.transform[0].is_fitted)}))


if __name__ == "__main__":
    main()
