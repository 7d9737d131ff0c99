"""flowforge on one CUDA GPU: train-step, log_prob and sample times, and peak training memory.

RealNVP(d=64, K=8, H=512) (couplings with (H, H) MLPs), float32 weights, fused Adam:
  train step    zero_grad, -log_prob.mean(), backward, Adam step; batch 256 and 4096; eager and
                flowforge.compile (inductor, static shapes); precision fp32 and bf16 (the conditioners
                under autocast, as fit(precision="bf16") runs them)
  log_prob, sample   batch 100,000, no autograd, fp32; eager (sample in its default 65,536-row chunks)
                and compiled log_prob
  memory        torch.cuda.max_memory_allocated over two Adam steps at d=64, H=512, batch 4096,
                K=4, 16, 64, memory="standard" vs "invertible", less what was allocated before the model
Times are CUDA-event medians after a warm-up; a compiled row also reports its compile time (its
first calls). Compiled train rows run last; compiled rows are skipped, and named, once --budget
seconds have passed.

    python benchmarks/gpu.py [--quick] [--budget 150] [--out bench-results/gpu.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import flowforge
from flowforge.nn.precision import set_precision

FULL = {"shape": (64, 8, 512), "batches": (256, 4096), "infer_batch": 100_000, "depths": (4, 16, 64),
        "memory_batch": 4096, "train_reps": 30, "infer_reps": 10}
QUICK = {"shape": (8, 2, 32), "batches": (64, 256), "infer_batch": 1000, "depths": (1, 2),
         "memory_batch": 64, "train_reps": 3, "infer_reps": 2}


def milliseconds(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 3) -> float:
    """Median ms per call after `warmup` calls: CUDA events on the GPU, the wall clock elsewhere."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(samples)


def synchronized_seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call, the GPU drained before and after (a compile's first calls)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    begin = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - begin


def realnvp(d: int, k: int, h: int, device: torch.device, memory: str = "standard") -> flowforge.Flow:
    torch.manual_seed(0)
    return flowforge.RealNVP(d, k, (h, h), memory=memory).to(device)


def train_step(flow: flowforge.Flow, x: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4, fused=x.is_cuda)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        (-flow.log_prob(x).mean()).backward()
        optimizer.step()

    return step


def train_rows(plan: dict, device: torch.device, compiled: bool, deadline: float, skipped: list[str], rows: dict) -> None:
    """Train-step ms for each batch and precision, eager or compiled (one flow per precision), into `rows`."""
    d, k, h = plan["shape"]
    for precision in ("fp32", "bf16"):
        flow = realnvp(d, k, h, device)
        set_precision(flow, precision)
        if compiled:
            flowforge.compile(flow, dynamic=False)
        for batch in plan["batches"]:
            key = f"{'compiled' if compiled else 'eager'} {precision}, batch {batch}"
            if compiled and time.perf_counter() > deadline:
                skipped.append(f"train {key}: over the time budget")
                continue
            step = train_step(flow, torch.randn(batch, d, device=device))
            first = synchronized_seconds(lambda step=step: [step() for _ in range(2)], device) if compiled else None
            rows[key] = {"ms": milliseconds(step, device, plan["train_reps"]), "compile_s": first}
            print(f"train {key}: {rows[key]['ms']:.2f} ms", file=sys.stderr)


def infer_rows(plan: dict, device: torch.device, deadline: float, skipped: list[str], rows: dict) -> None:
    d, k, h = plan["shape"]
    n = plan["infer_batch"]
    flow = realnvp(d, k, h, device).eval()
    x = torch.randn(n, d, device=device)
    with torch.no_grad():
        rows["eager log_prob"] = {"ms": milliseconds(lambda: flow.log_prob(x), device, plan["infer_reps"]), "compile_s": None}
        rows["eager sample"] = {"ms": milliseconds(lambda: flow.sample(n), device, plan["infer_reps"]), "compile_s": None}
        if time.perf_counter() > deadline:
            skipped.append("compiled log_prob: over the time budget")
            return
        flowforge.compile(flow, dynamic=False)
        first = synchronized_seconds(lambda: flow.log_prob(x), device)
        rows["compiled log_prob"] = {"ms": milliseconds(lambda: flow.log_prob(x), device, plan["infer_reps"]), "compile_s": first}


def peak_memory_mb(plan: dict, k: int, memory: str, device: torch.device) -> dict[str, float]:
    """Peak allocated MB over two Adam steps, less what was allocated before the model; and the
    share of it that weights, gradients and Adam's two moments take."""
    d, _, h = plan["shape"]
    x = torch.randn(plan["memory_batch"], d, device=device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    flow = realnvp(d, k, h, device, memory)
    step = train_step(flow, x)
    step()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated(device) - before
    state = sum(p.numel() * p.element_size() for p in flow.parameters()) * 4
    return {"peak_mb": peak / 2**20, "state_mb": state / 2**20}


def run(plan: dict, device: torch.device, budget: float, results: dict) -> None:
    """Fill `results` as the rows are measured, so an interrupted run still reports what it has."""
    deadline = time.perf_counter() + budget
    train_rows(plan, device, False, deadline, results["skipped"], results["train"])
    infer_rows(plan, device, deadline, results["skipped"], results["infer"])
    if device.type == "cuda":
        for memory in ("standard", "invertible"):
            for k in plan["depths"]:
                results["memory"].setdefault(memory, {})[k] = peak_memory_mb(plan, k, memory, device)
    train_rows(plan, device, True, deadline, results["skipped"], results["train"])


def _compile_cell(row: dict) -> str:
    return "" if row.get("compile_s") is None else f" (compile {row['compile_s']:.0f} s)"


def tables(results: dict, plan: dict) -> str:
    d, k, h = plan["shape"]
    lines = [f"### Train step, RealNVP d={d}, K={k}, H={h}: ms per step, median", "", "| run | ms |", "|---|---|"]
    lines += [f"| {key} | {row['ms']:.2f}{_compile_cell(row)} |" for key, row in results["train"].items()]
    lines += ["", f"### No autograd, batch {plan['infer_batch']:,}: ms per call, median", "", "| call | ms |", "|---|---|"]
    lines += [f"| {key} | {row['ms']:.2f}{_compile_cell(row)} |" for key, row in results["infer"].items()]
    if results["memory"]:
        depths = plan["depths"]
        lines += ["", f"### Peak training memory, MB allocated (d={d}, H={h}, batch {plan['memory_batch']})", ""]
        lines += ["| memory | " + " | ".join(f"K={k}" for k in depths) + f" | of which weights+grads+Adam at K={depths[-1]} |"]
        lines.append("|---" * (len(depths) + 2) + "|")
        for memory, per in results["memory"].items():
            cells = " | ".join(f"{per[k]['peak_mb']:.0f}" if k in per else "—" for k in depths)
            state = f"{per[depths[-1]]['state_mb']:.0f}" if depths[-1] in per else "—"
            lines.append(f"| {memory} | {cells} | {state} |")
    if results["skipped"]:
        lines += ["", "Skipped: " + "; ".join(results["skipped"])]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repetitions: a smoke run")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds after which compiled rows are skipped (default 150)")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # "cpu" with --quick checks this script itself
    parser.add_argument("--out", default="bench-results/gpu.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"benchmarks/gpu.py: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda}); "
              "run it on a machine with one", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    start = time.perf_counter()
    results: dict = {"train": {}, "infer": {}, "memory": {}, "skipped": []}
    interrupted = False
    try:
        run(plan, device, args.budget, results)
    except KeyboardInterrupt:  # e.g. `timeout -s INT`: report the rows measured so far, and fail
        results["skipped"].append("the rest: interrupted")
        interrupted = True
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    machine = f"{gpu}, torch {torch.__version__}, CUDA {torch.version.cuda}, {platform.platform()}"
    header = f"## GPU benchmark, {datetime.date.today()} on {machine}" + (" (quick smoke run)" if args.quick else "")
    method = ("float32 weights, fused Adam, torch.float32 matmul precision "
              f"{torch.get_float32_matmul_precision()!r}; medians of {plan['train_reps']} (train) and {plan['infer_reps']} "
              f"(no autograd) timed calls after a warm-up. Total {time.perf_counter() - start:.0f} s.")
    print("\n".join([header, "", method, "", tables(results, plan)]))
    results.update(date=str(datetime.date.today()), machine=machine, quick=args.quick, plan=plan,
                   seconds=round(time.perf_counter() - start, 1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 1 if interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main())
