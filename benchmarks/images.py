"""Image flows on the digits: image Glow, multi-scale Real NVP and the CNF, trained exactly as the CLI does.

Each model runs `flowforge train --data digits --model M` with the CLI's defaults (one thread,
a fixed step budget, best-validation weights; 1,500 train / 297 test images, seed 0) and reports
test bits/dim on the pixel scale (17 levels; a uniform model scores log2(17) = 4.09), train
throughput (images/s over the whole fit, validation included) and sampling throughput
(images/s for 1,000 samples). Prints a table, writes JSON.

`cnf` is `flowforge train --data digits --model cnf` (flow matching of an MLP field on the logit
pixels, uniform dequantisation; bits/dim from the exact likelihood, dopri5 at 1e-5). `--repeats N`
runs the models in turn N times (glow, cnf, glow, cnf, ...), so that a shared machine's load falls
on each alike; `run_cpu_seconds` is the process's CPU time for the whole run (training, test
likelihood, sampling, plots), the fair clock on a shared machine with one thread.

    python benchmarks/images.py [--steps N] [--models glow realnvp cnf] [--repeats N] [--out bench-results/images.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from flowforge.cli.config import TrainConfig
from flowforge.cli.image_run import with_image_defaults
from flowforge.cli.training import train_run

COLUMNS = ("model", "parameters", "steps_run", "train_seconds", "run_cpu_seconds", "train_images_per_second",
           "sample_images_per_second", "best_val_bpd", "test_bpd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results/images.json")
    parser.add_argument("--models", nargs="+", default=["glow", "realnvp", "cnf"])
    parser.add_argument("--repeats", type=int, default=1, help="run the models in turn this many times")
    parser.add_argument("--steps", type=int, default=None, help="override the CLI's step budget")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for model in [m for _ in range(args.repeats) for m in args.models]:
        config = with_image_defaults(TrainConfig(data="digits", model=model, seed=args.seed, progress=False))
        config = config if args.steps is None else replace(config, steps=args.steps)
        with tempfile.TemporaryDirectory() as folder:
            start, cpu = time.perf_counter(), time.process_time()
            metrics = train_run(replace(config, out=folder))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows.append({"model": model, **metrics.metrics, "run_seconds": round(wall, 1), "run_cpu_seconds": round(cpu, 1),
                     "config": config.to_dict()})
    print("  ".join(f"{c:>24}" for c in COLUMNS))
    for row in rows:
        print("  ".join(f"{row[c]:>24.4f}" if isinstance(row[c], float) else f"{row[c]!s:>24}" for c in COLUMNS))
    result = {"runs": rows, "threads": torch.get_num_threads(), "machine": platform.platform(), "torch": torch.__version__}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
