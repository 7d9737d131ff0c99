"""The flow family on the same budget: test NLL of RealNVP, MAF, NSF and NSF-AR.

Datasets: the 2-D toys moons, checkerboard, 8gaussians, 2spirals (20,000 training points,
10,000 fresh test points) and the digits as 64-D dequantised vectors (1,500 train / 297 test).
Every model gets the same budget: 5 layers of (128, 128) conditioners, --steps Adam steps of
batch 256 at lr 1e-3, fit's defaults otherwise (10% validation split, best weights kept).
Prints a table (test NLL in nats, lower is better) and writes JSON.

    python benchmarks/family.py [--steps 1500] [--out bench-results/family.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import flowforge
from flowforge.data import load_digits, make_toy

MODELS = ("realnvp", "maf", "nsf", "nsf-ar")
TOYS = ("moons", "checkerboard", "8gaussians", "2spirals")


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sets = {name: (make_toy(name, 20_000, seed=0), make_toy(name, 10_000, seed=1)) for name in TOYS}
    digits = load_digits(seed=0)
    order = np.random.default_rng(0).permutation(len(digits))
    sets["digits"] = (digits[order[:1500]], digits[order[1500:]])
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench-results/family.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for data_name, (train, test) in datasets().items():
        for model in MODELS:
            torch.manual_seed(0)
            flow = flowforge.build_model(model, features=train.shape[1], layers=5, hidden=[128, 128])
            start = time.perf_counter()
            flowforge.fit(flow, train, steps=args.steps, batch_size=256, lr=1e-3, progress=False)
            nll = flowforge.mean_nll(flow, torch.from_numpy(test))
            rows.append({"data": data_name, "model": model, "test_nll": nll, "seconds": time.perf_counter() - start})
            print(f"{data_name:>12} {model:>8} {nll:9.4f} {rows[-1]['seconds']:7.1f}s", flush=True)
    names = list(dict.fromkeys(r["data"] for r in rows))
    table = ["| data | " + " | ".join(MODELS) + " |", "|---|" + "---|" * len(MODELS)]
    for name in names:
        values = {r["model"]: r["test_nll"] for r in rows if r["data"] == name}
        best = min(values.values())
        cells = [f"**{values[m]:.3f}**" if values[m] == best else f"{values[m]:.3f}" for m in MODELS]
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(table))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
                                          "load": os.getloadavg(), "steps": args.steps, "rows": rows,
                                          "table": table}, indent=2))


if __name__ == "__main__":
    main()
