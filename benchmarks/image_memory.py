"""memory="invertible" on the image models: saved activations, peak memory and step time vs "standard".

Glow (or Real NVP with --model realnvp) for 3 x 32 x 32 8-bit images, 3 levels, 64 hidden channels,
random pixels, batch 64, at 4 and 16 steps per level; each training step is zero_grad, NLL,
backward and fit's fused Adam step:
  saved   bytes autograd keeps for the backward pass of one NLL (saved_tensors_hooks)
  peak    peak RSS of two training steps over the RSS before the model, in a fresh process per
          cell (glibc's mmap threshold fixed, as in peers.py)
  step    seconds per training step, median of interleaved rounds; invertible / standard
Installs nothing.

    python benchmarks/image_memory.py [--quick] [--model glow|realnvp] [--threads 2] [--out bench-results/image_memory.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from measure import MEMORY_ENV, interleaved, peak_kb, reset_peak_kb

import flowforge

FULL = {"shape": (3, 32, 32), "levels": 3, "hidden": 64, "batch": 64, "steps_per_level": (4, 16), "rounds": 5, "reps": 1}
QUICK = {"shape": (3, 8, 8), "levels": 2, "hidden": 8, "batch": 8, "steps_per_level": (1, 2), "rounds": 1, "reps": 1}
MEMORY = ("standard", "invertible")


def build(plan: dict, model: str, steps: int, memory: str) -> flowforge.Flow:
    torch.manual_seed(0)
    builder = flowforge.Glow if model == "glow" else flowforge.RealNVP
    return builder(plan["shape"], levels=plan["levels"], steps_per_level=steps, hidden_channels=plan["hidden"], memory=memory)


def pixels(plan: dict) -> torch.Tensor:
    return torch.randint(0, 256, (plan["batch"], *plan["shape"]), generator=torch.Generator().manual_seed(1)).float()


def trainer(flow: flowforge.Flow, x: torch.Tensor):
    """One training step as `fit` takes it; the first call (ActNorm's data-dependent init) is made here."""
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        (-flow.log_prob(x).mean()).backward()
        optimizer.step()

    step()
    return step


def saved_bytes(flow: flowforge.Flow, x: torch.Tensor) -> int:
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        flow.log_prob(x).mean()
    return total


def memory_child(plan: dict, model: str, steps: int, memory: str) -> dict[str, float]:
    """In a fresh process: peak RSS of two training steps over the RSS before the model."""
    trainer(build({**QUICK, "hidden": 4}, model, 1, memory), pixels(QUICK))  # first-call set-up is not training memory
    before = reset_peak_kb()
    step = trainer(build(plan, model, steps, memory), pixels(plan))
    step()
    return {"peak_mb": (peak_kb() - before) / 1024}


def run(args: argparse.Namespace) -> dict:
    plan = QUICK if args.quick else FULL
    x = pixels(plan)
    results: dict = {"model": args.model, "plan": {k: list(v) if isinstance(v, tuple) else v for k, v in plan.items()}, "cells": {}}
    for steps in plan["steps_per_level"]:
        flows = {memory: build(plan, args.model, steps, memory) for memory in MEMORY}
        cells = {memory: {"saved_mb": saved_bytes(flow, x) / 2**20} for memory, flow in flows.items()}
        times = interleaved({memory: trainer(flow, x) for memory, flow in flows.items()}, plan["rounds"], plan["reps"])
        for memory in MEMORY:
            cells[memory]["step_s"] = times[memory]
            cmd = [sys.executable, __file__, "--memory-child", memory, str(steps), "--model", args.model,
                   "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
            child = subprocess.run(cmd, capture_output=True, text=True, check=False, env=MEMORY_ENV)
            if child.returncode != 0:
                raise SystemExit(f"memory child failed: {child.stderr.strip()[-2000:]}")
            cells[memory].update(json.loads(child.stdout.strip().splitlines()[-1]))
        results["cells"][steps] = cells
        print(f"steps_per_level={steps} done", file=sys.stderr)
    return results


def table(results: dict) -> str:
    lines = ["| steps per level | memory | saved by autograd (MiB) | peak RSS (MiB) | step (s) | step vs standard |",
             "|---|---|---|---|---|---|"]
    for steps, cells in results["cells"].items():
        for memory, cell in cells.items():
            ratio = cell["step_s"] / cells["standard"]["step_s"]
            lines.append(f"| {steps} | {memory} | {cell['saved_mb']:.1f} | {cell['peak_mb']:.0f} | {cell['step_s']:.3f} | {ratio:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke run")
    parser.add_argument("--model", choices=["glow", "realnvp"], default="glow")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench-results/image_memory.json")
    parser.add_argument("--memory-child", nargs=2, metavar=("MEMORY", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory, steps = args.memory_child
        print(json.dumps(memory_child(QUICK if args.quick else FULL, args.model, int(steps), memory)))
        return
    results = run(args)
    plan = results["plan"]
    machine = f"{platform.machine()}, torch {torch.__version__}, {args.threads} threads"
    header = (f"## memory=\"invertible\" on image {args.model}, {datetime.date.today()} ({machine})\n\n"
              f"{'x'.join(map(str, plan['shape']))} images, {plan['levels']} levels, {plan['hidden']} hidden channels, "
              f"batch {plan['batch']}" + (" (quick smoke run)" if args.quick else ""))
    print(header + "\n\n" + table(results))
    results.update(date=str(datetime.date.today()), machine=machine)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
