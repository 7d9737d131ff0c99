"""DDP on this machine: the same training budget with 1 process and with 2 (gloo, CPU).

Each run trains RealNVP(2, layers=8, hidden=(256, 256)) on two moons for --steps steps of
global batch --batch-size (each of N processes takes batch/N rows per step and the gradients
are averaged by DistributedDataParallel); 1 process uses 2 threads, 2 processes 1 thread each.
Prints a table of training samples/s and final test NLL, and writes JSON.

    python benchmarks/ddp.py [--steps 600] [--out bench-results/ddp.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    import torch

    import flowforge
    from flowforge.train import distributed

    distributed.init_from_env("cpu")
    torch.set_num_threads(args.threads)
    train = flowforge.data.make_toy("moons", 50_000, seed=0)
    test = torch.tensor(flowforge.data.make_toy("moons", 10_000, seed=1))
    torch.manual_seed(0)
    flow = flowforge.RealNVP(2, layers=8, hidden=(256, 256))
    start = time.perf_counter()
    flowforge.fit(flow, train, steps=args.steps, batch_size=args.batch_size, lr=1e-3, val_fraction=0.0, progress=False)
    seconds = time.perf_counter() - start
    test_nll = flowforge.mean_nll(flow, test)
    if distributed.is_main():
        Path(args.result).write_text(json.dumps({"seconds": seconds, "test_nll": test_nll}))


def run(processes: int, args: argparse.Namespace, result: Path) -> dict:
    threads = max(1, 2 // processes)
    command = [sys.executable, __file__, "--worker", "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--threads", str(threads), "--result", str(result)]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *command[1:]]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    outcome = json.loads(result.read_text())
    return {"processes": processes, "threads_each": threads, "samples_per_s": args.steps * args.batch_size / outcome["seconds"], **outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--out", default="bench-results/ddp.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [run(p, args, out.with_suffix(f".{p}.tmp")) for p in (1, 2)]
    print(f"{'processes':>9} {'threads':>7} {'samples/s':>10} {'seconds':>8} {'test NLL':>9}")
    for row in rows:
        print(f"{row['processes']:>9} {row['threads_each']:>7} {row['samples_per_s']:>10.0f} {row['seconds']:>8.1f} {row['test_nll']:>9.4f}")
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg(),
                               "steps": args.steps, "batch_size": args.batch_size, "rows": rows}, indent=2))
    for p in (1, 2):
        out.with_suffix(f".{p}.tmp").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
