"""flowforge against nflows, normflows, zuko, FrEIA and torchflows on the same Real NVP.

Interleaved in one run (each round times every library in turn; medians over rounds), float32,
`--threads` threads (default 2; with 1 the clock is CPU time, which other processes do not inflate):
  train step    d=2,K=8,H=256,batch 512 and d=64,K=8,H=512,batch 256: zero_grad, -log_prob.mean(),
                backward, Adam step; once with torch's default Adam (what each library's docs
                use) and once with fused Adam for every library (library cost alone)
  log_prob, sample   batch 10,000, same two architectures, no autograd
  floor         the same matrix products alone (benchmarks/floor.py); each time is also shown
                as a multiple of it
  memory        peak RSS of training (two Adam steps) over the RSS before the model exists (the
                peak is reset after the imports),
                d=64,H=512,batch 4096, K=4,16,64, each in a fresh process with glibc's mmap
                threshold fixed (MEMORY_ENV), so RSS tracks live memory rather than fragmentation
Installs nothing: `make bench` installs the `bench` extra; a missing library is skipped. A full
run rewrites benchmarks/RESULTS.md from its first "## Peers benchmark" heading on and keeps the
commentary above it.

    python benchmarks/peers.py [--quick] [--libraries flowforge,zuko] [--out bench-results/peers.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from floor import forward_products, train_products
from measure import MEMORY_ENV, interleaved, peak_kb, reset_peak_kb
from peer_models import LIBRARIES, Model

REPORT_HEADING = "## Peers benchmark, "  # where the generated part of RESULTS.md begins
FULL = {
    "train": [(2, 8, 256, 512), (64, 8, 512, 256)],
    "infer": [(2, 8, 256, 10_000), (64, 8, 512, 10_000)],
    "memory": {"shape": (64, 512, 4096), "depths": (4, 16, 64)},
    "rounds": 7, "train_reps": 8, "infer_reps": 2,
}
QUICK = {
    "train": [(2, 2, 32, 64), (8, 2, 32, 64)],
    "infer": [(2, 2, 32, 256), (8, 2, 32, 256)],
    "memory": {"shape": (8, 32, 64), "depths": (1, 2)},
    "rounds": 1, "train_reps": 1, "infer_reps": 1,
}


def available(names: list[str]) -> tuple[dict[str, Model | None], dict[str, str]]:
    """Which libraries import; the reason for each that does not."""
    ok, missing = {}, {}
    for name in names:
        try:
            LIBRARIES[name](2, 1, 4)
            ok[name] = None
        except ImportError as error:
            missing[name] = f"not installed ({error.name}); make bench installs it"
    return ok, missing


def train_steps(names: list[str], d: int, k: int, h: int, batch: int) -> dict[str, object]:
    x = torch.randn(batch, d)
    fns: dict[str, object] = {"floor": train_products(d, k, h, batch)}
    for name in names:
        torch.manual_seed(0)
        model = LIBRARIES[name](d, k, h)
        for kind in ("adam", "fused adam"):
            optimizer = torch.optim.Adam(model.module.parameters(), lr=1e-4, fused=kind == "fused adam")

            def step(model=model, optimizer=optimizer) -> None:
                optimizer.zero_grad(set_to_none=True)
                (-model.log_prob(x).mean()).backward()
                optimizer.step()

            fns[f"{name}|{kind}"] = step
    return fns


def inference(names: list[str], d: int, k: int, h: int, batch: int) -> dict[str, object]:
    x = torch.randn(batch, d)
    floor = forward_products(d, k, h, batch)
    fns: dict[str, object] = {"floor": lambda: floor()}
    for name in names:
        torch.manual_seed(0)
        model = LIBRARIES[name](d, k, h)
        model.module.eval()
        fns[f"{name}|log_prob"] = lambda model=model: model.log_prob(x)
        fns[f"{name}|sample"] = lambda model=model: model.sample(batch)
    return fns


def _train(model: Model, x: torch.Tensor, steps: int) -> None:
    optimizer = torch.optim.Adam(model.module.parameters(), lr=1e-4)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        (-model.log_prob(x).mean()).backward()
        optimizer.step()


def memory_child(name: str, d: int, k: int, h: int, batch: int) -> dict[str, float]:
    """Run in a fresh process: peak RSS of two training steps over the RSS before the model."""
    torch.manual_seed(0)
    _train(LIBRARIES[name](2, 1, 4), torch.randn(8, 2), steps=1)  # imports and first-call set-up are not training memory
    before = reset_peak_kb()
    model = LIBRARIES[name](d, k, h)
    _train(model, torch.randn(batch, d), steps=2)
    peak = peak_kb()
    state = sum(p.numel() * p.element_size() for p in model.module.parameters()) * 4  # weights, grads, 2 Adam moments
    return {"peak_mb": (peak - before) / 1024, "state_mb": state / 2**20}


def memory(names: list[str], shape: tuple[int, int, int], depths: tuple[int, ...], threads: int) -> dict[str, dict]:
    d, h, batch = shape
    out: dict[str, dict] = {}
    for k in depths:
        for name in names:
            cmd = [sys.executable, __file__, "--memory-child", name, str(d), str(k), str(h), str(batch), "--threads", str(threads)]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=MEMORY_ENV)
            if result.returncode != 0:
                out.setdefault(name, {})[k] = {"error": result.stderr.strip().splitlines()[-1:]}
                continue
            out.setdefault(name, {})[k] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def run(args: argparse.Namespace) -> dict:
    plan = QUICK if args.quick else FULL
    names, missing = available(args.libraries.split(","))
    names = list(names)
    results: dict = {"train": {}, "infer": {}, "missing": missing}
    for d, k, h, batch in plan["train"]:
        key = f"d={d},K={k},H={h},batch={batch}"
        results["train"][key] = interleaved(train_steps(names, d, k, h, batch), plan["rounds"], plan["train_reps"])
        print(f"train {key} done", file=sys.stderr)
    for d, k, h, batch in plan["infer"]:
        key = f"d={d},K={k},H={h},batch={batch}"
        with torch.no_grad():
            results["infer"][key] = interleaved(inference(names, d, k, h, batch), plan["rounds"], plan["infer_reps"])
        print(f"infer {key} done", file=sys.stderr)
    if not args.no_memory:  # compiling is not about memory, and would cost a compile per process
        eager = [n for n in names if n != "flowforge-compiled"]
        results["memory"] = memory(eager, plan["memory"]["shape"], plan["memory"]["depths"], args.threads)
        results["memory_shape"] = "d={},H={},batch={}".format(*plan["memory"]["shape"])
    return results


def _cell(seconds: float | None, floor: float) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.1f} ({seconds / floor:.2f}×)"


def tables(results: dict) -> str:
    names = sorted({k.split("|")[0] for t in results["train"].values() for k in t if "|" in k}, key=list(LIBRARIES).index)
    lines = ["### Train step: ms per step, median (× the matrix-product floor)", ""]
    heads = [f"{cfg} {kind}" for cfg in results["train"] for kind in ("adam", "fused adam")]
    lines += ["| library | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    lines.append("| floor (matmuls) | " + " | ".join(_cell(t["floor"], t["floor"]) for t in results["train"].values() for _ in (0, 1)) + " |")
    for name in names:
        cells = [_cell(t.get(f"{name}|{kind}"), t["floor"]) for t in results["train"].values() for kind in ("adam", "fused adam")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "### log_prob and sample: ms per batch, median (× the forward-product floor)", ""]
    heads = [f"{op} {cfg}" for cfg in results["infer"] for op in ("log_prob", "sample")]
    lines += ["| library | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    lines.append("| floor (matmuls) | " + " | ".join(_cell(t["floor"], t["floor"]) for t in results["infer"].values() for _ in (0, 1)) + " |")
    for name in names:
        cells = [_cell(t.get(f"{name}|{op}"), t["floor"]) for t in results["infer"].values() for op in ("log_prob", "sample")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "memory" in results:
        depths = sorted({k for per in results["memory"].values() for k in per})
        lines += ["", f"### Peak training memory, MB over the process before the model ({results['memory_shape']})", ""]
        lines += ["| library | " + " | ".join(f"K={k}" for k in depths) + " | of which weights+grads+Adam at K=" + str(depths[-1]) + " |"]
        lines.append("|---" * (len(depths) + 2) + "|")
        for name, per in results["memory"].items():
            cells = [f"{per[k]['peak_mb']:.0f}" if "peak_mb" in per.get(k, {}) else "error" for k in depths]
            state = per.get(depths[-1], {}).get("state_mb")
            lines.append(f"| {name} | " + " | ".join(cells) + (f" | {state:.0f} |" if state is not None else " | — |"))
    if results["missing"]:
        lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in results["missing"].items())]
    return "\n".join(lines)


def verdicts(results: dict) -> list[str]:
    """The issue's targets, each as measured here."""
    out = []
    peers = [n for n in LIBRARIES if not n.startswith("flowforge")]
    for cfg, t in results["train"].items():
        for kind in ("adam", "fused adam"):
            rivals = [t[f"{p}|{kind}"] for p in peers if f"{p}|{kind}" in t]
            for ours in ("flowforge", "flowforge-compiled"):
                if rivals and f"{ours}|{kind}" in t:
                    out.append(f"train {cfg} ({kind}): {ours} {min(rivals) / t[f'{ours}|{kind}']:.2f}× the fastest peer (target ≥ 1.30)")
        rivals = [t[f"{p}|adam"] for p in peers if f"{p}|adam" in t]
        for ours in ("flowforge", "flowforge-compiled"):
            if rivals and f"{ours}|fused adam" in t:  # fit's optimizer vs the one each peer's docs use
                out.append(f"train {cfg} (as trained by default: fit's fused Adam vs each peer's documented torch.optim.Adam): "
                           f"{ours} {min(rivals) / t[f'{ours}|fused adam']:.2f}× the fastest peer")
        if "flowforge-invertible|adam" in t:
            slow = t["flowforge-invertible|fused adam"] / t["flowforge|fused adam"]
            out.append(f"train {cfg}: memory=\"invertible\" step {slow:.2f}× the ordinary one, fused Adam (target ≤ 1.60)")
    for cfg, t in results["infer"].items():
        for op in ("log_prob", "sample"):
            rivals = [t[f"{p}|{op}"] for p in peers if f"{p}|{op}" in t]
            for ours in ("flowforge", "flowforge-compiled"):
                if rivals and f"{ours}|{op}" in t:
                    out.append(f"{op} {cfg}: {ours} {min(rivals) / t[f'{ours}|{op}']:.2f}× the fastest peer (target ≥ 1), "
                               f"{t[f'{ours}|{op}'] / t['floor']:.2f}× the floor (target ≤ 1.10 at d=64)")
    per = results.get("memory", {}).get("flowforge-invertible", {})
    depths = sorted(per)
    if len(depths) > 1 and all(per[k].get("peak_mb", 0) > per[k].get("state_mb", 0) for k in depths):
        first, last = per[depths[0]], per[depths[-1]]
        out.append(f"memory=\"invertible\" peak K={depths[-1]} / K={depths[0]}: {last['peak_mb'] / first['peak_mb']:.2f} "
                   f"(target ≤ 1.5); without weights, grads and Adam moments: "
                   f"{(last['peak_mb'] - last['state_mb']) / (first['peak_mb'] - first['state_mb']):.2f}")
    return out


def plan_rounds(args: argparse.Namespace) -> int:
    return (QUICK if args.quick else FULL)["rounds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke run")
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-depth memory processes")
    parser.add_argument("--out", default="bench-results/peers.json")
    parser.add_argument("--results", default=None, help="markdown copy of the table (full runs: benchmarks/RESULTS.md)")
    parser.add_argument("--memory-child", nargs=5, metavar=("LIB", "D", "K", "H", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # peers' deprecation warnings would bury the table
    if args.memory_child:
        name, *sizes = args.memory_child
        print(json.dumps(memory_child(name, *map(int, sizes))))
        return
    load_before = os.getloadavg()[0]
    results = run(args)
    load = f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} cores"
    machine = f"{platform.processor() or platform.machine()}, {platform.platform()}, torch {torch.__version__}, {args.threads} threads"
    header = f"{datetime.date.today()} on {machine}; {load}" + (" (quick smoke run)" if args.quick else "")
    method = (f"Same Real NVP in each library (benchmarks/peer_models.py), float32; medians of {plan_rounds(args)} interleaved "
              "rounds; floor = the same matrix products alone (benchmarks/floor.py). Rerun: `make bench`.")
    report = "\n".join([f"{REPORT_HEADING}{header}", "", method, "", tables(results), "", *(f"- {v}" for v in verdicts(results))])
    print(report)
    results.update(date=str(datetime.date.today()), machine=machine, load=load, quick=args.quick, verdicts=verdicts(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    results_md = args.results or (None if args.quick else str(Path(__file__).parent / "RESULTS.md"))
    if results_md:
        write_results(Path(results_md), report)


def write_results(path: Path, report: str) -> None:
    """Replace the generated part of a results file (from its first "## Peers benchmark" heading
    on) and keep the commentary written above it; the file is swapped in whole, never half-written."""
    from flowforge.train.checkpoint import atomic_write_text  # here: the peers' memory processes need no flowforge

    old = path.read_text() if path.exists() else ""
    commentary = old[: old.find(REPORT_HEADING)] if REPORT_HEADING in old else ""
    if commentary.strip():
        print(f"kept the commentary above the tables in {path}: check that it still matches them", file=sys.stderr)
    atomic_write_text(path, commentary + report + "\n")


if __name__ == "__main__":
    main()
