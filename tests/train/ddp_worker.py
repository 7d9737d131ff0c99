"""Worker for test_distributed.py: trains a small Glow with `fit`, alone or under torchrun.

    python ddp_worker.py OUT [--stop-at K [--stop-rank R]]
--stop-at K asks fit to stop on its K+1-th step (on rank R only, with --stop-rank: a signal that
reached one rank); rank 0 then saves OUT's training state, and a later run without it resumes.
Rank 0 saves the final state_dict to OUT; every rank writes OUT.rank<r>.touched only if it
(wrongly) believes it is the main process, so the test can check that rank 0 alone writes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import flowforge
from flowforge.train import distributed


def main() -> None:
    out = Path(sys.argv[1])
    stop_at = int(sys.argv[sys.argv.index("--stop-at") + 1]) if "--stop-at" in sys.argv else None
    stop_rank = int(sys.argv[sys.argv.index("--stop-rank") + 1]) if "--stop-rank" in sys.argv else None
    torch.set_num_threads(1)
    distributed.init_from_env("cpu")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2)) * np.array([1.0, 0.3])
    x[:, 1] += x[:, 0] ** 2
    torch.manual_seed(0)
    # float64: Adam amplifies float32 summation-order noise in near-zero gradients (e.g. the
    # redundant biases of ActNorm and LULinear), which would hide real differences
    flow = flowforge.Glow(2, layers=2, hidden=(16, 16)).double()
    state_file = out.with_suffix(".state.pt")
    resume = None
    if state_file.exists() and stop_at is None:
        saved = torch.load(state_file, weights_only=True)
        flow.load_state_dict(saved["model"])
        resume = saved["state"]
    calls = [0]

    def should_stop() -> bool:
        calls[0] += 1
        return stop_at is not None and calls[0] > stop_at and stop_rank in (None, distributed.rank())

    def on_checkpoint(state: dict) -> None:
        torch.save({"model": flow.state_dict(), "state": state}, state_file)
        out.with_name(out.name + f".rank{distributed.rank()}.touched").touch()

    flowforge.fit(flow, x, steps=60, batch_size=64, progress=False, resume=resume,
                  on_checkpoint=on_checkpoint, should_stop=should_stop)
    if distributed.is_main() and stop_at is None:
        torch.save(flow.state_dict(), out)


if __name__ == "__main__":
    main()
