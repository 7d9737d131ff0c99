"""The flow family on the same budget: test NLL of RealNVP, MAF, NSF, NSF-AR, NAF, UNAF, BNAF, ResFlow.

Datasets: the 2-D toys moons, checkerboard, 8gaussians, 2spirals (20,000 training points,
10,000 fresh test points) and the digits as 64-D dequantised vectors (1,500 train / 297 test).
Every model gets the same budget: 5 layers of (128, 128) conditioners, --steps Adam steps of
batch 256 at lr 1e-3, fit's defaults otherwise (10% validation split, best weights kept).
Prints a table (test NLL in nats, lower is better) and writes JSON. Planar, radial and Sylvester
flows have columns but no numbers: without an analytic inverse they give no density of data
(they are variational families, fitted with sample_and_log_prob).

    python benchmarks/family.py [--steps 1500] [--models nsf,naf,bnaf] [--data moons,2spirals] [--out ...]
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

MODELS = ("realnvp", "maf", "nsf", "nsf-ar", "naf", "unaf", "bnaf", "resflow", "planar", "radial", "sylvester")
# the VI families have no density of data (no analytic inverse): their column says so
VI_ONLY = ("planar", "radial", "sylvester")
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
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of the models")
    parser.add_argument("--data", default=",".join((*TOYS, "digits")), help="comma-separated subset of the data sets")
    args = parser.parse_args()
    models = tuple(m for m in args.models.split(",") if m)
    wanted = set(args.data.split(","))
    torch.set_num_threads(args.threads)
    rows = []
    for data_name, (train, test) in datasets().items():
        if data_name not in wanted:
            continue
        for model in models:
            if model in VI_ONLY:
                rows.append({"data": data_name, "model": model, "test_nll": None, "seconds": 0.0})
                continue
            torch.manual_seed(0)
            flow = flowforge.build_model(model, features=train.shape[1], layers=5, hidden=[128, 128])
            start = time.perf_counter()
            flowforge.fit(flow, train, steps=args.steps, batch_size=256, lr=1e-3, progress=False)
            nll = flowforge.mean_nll(flow, torch.from_numpy(test))
            rows.append({"data": data_name, "model": model, "test_nll": nll, "seconds": time.perf_counter() - start})
            print(f"{data_name:>12} {model:>8} {nll:9.4f} {rows[-1]['seconds']:7.1f}s", flush=True)
    names = list(dict.fromkeys(r["data"] for r in rows))
    table = ["| data | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for name in names:
        values = {r["model"]: r["test_nll"] for r in rows if r["data"] == name}
        best = min(v for v in values.values() if v is not None)
        cells = ["n/a (VI)" if values[m] is None else f"**{values[m]:.3f}**" if values[m] == best else f"{values[m]:.3f}" for m in models]
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(table))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
                                          "load": os.getloadavg(), "steps": args.steps, "rows": rows,
                                          "table": table}, indent=2))


if __name__ == "__main__":
    main()
