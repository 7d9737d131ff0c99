"""The foundation benchmark: RealNVP(2, layers=8, hidden=(256, 256)) on two moons.

50,000 standardised training points (noise 0.05), 2,000 steps of batch 512 at lr 1e-3, other
settings at `fit`'s defaults; test NLL on 10,000 fresh points. Prints a table, writes JSON.

    python benchmarks/moons.py [--out bench-results/moons.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from sklearn.datasets import make_moons

import flowforge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results/moons.json")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train, _ = make_moons(50_000, noise=0.05, random_state=args.seed)
    test, _ = make_moons(10_000, noise=0.05, random_state=args.seed + 1)
    mean, std = train.mean(0), train.std(0)
    train, test = [torch.tensor((a - mean) / std, dtype=torch.float32) for a in (train, test)]
    flow = flowforge.RealNVP(2, layers=8, hidden=(256, 256))
    start = time.perf_counter()
    history = flowforge.fit(flow, train, steps=args.steps, batch_size=512, lr=1e-3, seed=args.seed, progress=False)
    seconds = time.perf_counter() - start
    result = {
        "test_nll": flowforge.mean_nll(flow, test),
        "best_val_nll": history.best_val_nll,
        "best_step": history.best_step,
        "steps_run": len(history.step),
        "train_seconds": seconds,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "torch": torch.__version__,
    }
    for key, value in result.items():
        print(f"{key:>14}  {value:.4f}" if isinstance(value, float) else f"{key:>14}  {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
