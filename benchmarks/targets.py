"""Fitting flows to target densities: flowforge's fit_target against normflows' reverse KL.

For every built-in target, the same Real NVP (8 affine couplings with a flip between them, MLP
conditioners 64-64 with ReLU, standard normal base placed at the target's location and scale)
is trained by each library with Adam at the same cosine-decayed learning rate, on the same
number of target evaluations: normflows gets as many steps as flowforge's training plus its
held-out evaluations cost. The runs alternate between libraries (target by target, seed by
seed). Each trained flow is then scored the same way, by importance sampling with 10,000
samples: Kish ESS (fraction), |log Z error| against the known log Z, the modes of the 40-mode
mixture covered (>= 0.5% of 10,000 resampled points within 2 standard deviations of a mode), and
for the logistic regression the largest error of the posterior means and standard deviations,
in reference posterior standard deviations. flowforge runs reverse KL on every target, and its
mass-covering alpha = 2 objective as well on the multimodal targets (40-mode mixture, wells).

    PYTHONPATH=src /work/venv-peers/bin/python benchmarks/targets.py [--quick] [--seeds 0 1] [--targets banana,funnel]

flowforge's fit_target is given the run's seed (its draws), as normflows' run is. Seeds in parallel
processes: `--seeds 1 --out bench-results/targets-1.json`, then `--combine bench-results/targets-*.json`.

Writes bench-results/targets.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import flowforge
from flowforge.targets import ImportanceSamples, make_target

LAYERS, HIDDEN, EVAL_SAMPLES, SCORE_SAMPLES = 8, 64, 1024, 10_000
MULTIMODAL = ("gmm40", "double_well", "many_well")  # flowforge also runs its mass-covering objective on these
SETTINGS = {  # steps, batch size, learning rate
    "banana": (1000, 256, 1e-3),
    "funnel": (2000, 256, 1e-3),
    "gmm40": (1000, 1024, 1e-3),
    "double_well": (1000, 256, 1e-3),
    "many_well": (2000, 256, 1e-3),
    "logistic_regression": (2500, 256, 1e-3),
}


def flowforge_run(target, steps: int, batch: int, lr: float, objective: str, seed: int,
                  **options) -> tuple[torch.nn.Module, flowforge.TargetHistory]:
    flow = flowforge.RealNVP(target.features, layers=LAYERS, hidden=(HIDDEN, HIDDEN))
    options = {"eval_samples": EVAL_SAMPLES, **options}  # --fit-option eval_samples=N replaces it
    history = flowforge.fit_target(flow, target, steps=steps, batch_size=batch, lr=lr, objective=objective,
                                   progress=False, seed=seed, **options)
    return flow, history


def flowforge_score(flow, target) -> ImportanceSamples:
    return flowforge.importance_sample(flow, target, SCORE_SAMPLES)


def normflows_model(target):
    import normflows as nf

    d = target.features
    half, rest = (d + 1) // 2, d // 2  # torch.chunk's split: the first part takes the odd feature
    flows = []
    for i in range(LAYERS):
        flows.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([half, HIDDEN, HIDDEN, 2 * rest], init_zeros=True)))
        flows.append(nf.flows.Permute(d, mode="swap"))
    base = nf.distributions.DiagGaussian(d, trainable=False)
    if target.loc is not None:  # the same starting place flowforge's Standardize layer gets from the target
        base.loc.data = target.loc.float()[None]
        base.log_scale.data = target.scale.float().log()[None]

    class Wrapped(nf.distributions.Target):
        def log_prob(self, z):
            return target(z)

    return nf.NormalizingFlow(base, flows, Wrapped())


def normflows_run(target, evaluations: int, batch: int, lr: float):
    model = normflows_model(target)
    steps = math.ceil(evaluations / batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    warmup = min(100, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (s + 1) / warmup if s < warmup else
                                                 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup))))
    for _ in range(steps):  # normflows' examples' loop: a NaN or inf loss skips the step
        optimizer.zero_grad()
        loss = model.reverse_kld(batch)
        if torch.isfinite(loss):
            loss.backward()
            optimizer.step()
        schedule.step()
    return model, steps * batch


@torch.no_grad()
def normflows_score(model, target) -> ImportanceSamples:
    model.eval()
    x, log_q = model.sample(SCORE_SAMPLES)
    log_p = target(x)
    keep = torch.isfinite(log_p) & torch.isfinite(log_q) & torch.isfinite(x).all(1)
    return ImportanceSamples(x[keep], log_q[keep], log_p[keep], SCORE_SAMPLES)


def measures(result: ImportanceSamples, target) -> dict[str, float | int | None]:
    row = {"ess": result.ess, "log_z": result.log_z, "log_z_stderr": result.log_z_stderr,
           "log_z_error": abs(result.log_z - target.log_z) if target.log_z is not None else None}
    generator = torch.Generator().manual_seed(0)
    if "locations" in target.reference:
        points = result.resample(SCORE_SAMPLES, generator).double()
        near = torch.cdist(points, target.reference["locations"].double()) < 2 * target.reference["std"]
        row["modes_covered"] = int((near.double().mean(0) >= 0.005).sum())
    if "mean" in target.reference:
        ref_mean, ref_std = target.reference["mean"], target.reference["std"]
        x = result.x.double()
        w = result.normalized_weights
        mean = w @ x
        std = (w @ (x - mean) ** 2).sqrt()
        row["mean_error_sd"] = float(((mean - ref_mean) / ref_std).abs().max())
        row["std_error_sd"] = float(((std - ref_std) / ref_std).abs().max())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps (a smoke run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--targets", default=",".join(SETTINGS))
    parser.add_argument("--out", default="bench-results/targets.json")
    parser.add_argument("--objectives", help="flowforge's objectives (default: reverse_kl, and alpha on multimodal targets)")
    parser.add_argument("--fit-option", action="append", default=[], metavar="NAME=JSON",
                        help="a fit_target option for flowforge's runs, e.g. keep_best='\"last\"' or grad_clip=null")
    parser.add_argument("--flowforge-only", action="store_true", help="skip normflows (for trying fit_target options)")
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="print one table of these runs' rows (no training)")
    args = parser.parse_args()
    if args.combine:
        print(table([row for path in args.combine for row in json.loads(Path(path).read_text())]))
        return
    torch.set_num_threads(1)
    options = {name: json.loads(value) for name, value in (item.split("=", 1) for item in args.fit_option)}
    rows = []
    for name in args.targets.split(","):
        target = make_target(name)
        steps, batch, lr = SETTINGS[name]
        steps = max(50, steps // 10) if args.quick else steps
        objectives = ["reverse_kl", "alpha"] if name in MULTIMODAL else ["reverse_kl"]
        objectives = args.objectives.split(",") if args.objectives else objectives
        for seed in args.seeds:
            evaluations = 0
            for objective in objectives:
                torch.manual_seed(seed)
                start = time.perf_counter()
                flow, history = flowforge_run(target, steps, batch, lr, objective, seed, **options)
                seconds = time.perf_counter() - start
                used = history.target_evaluations
                evaluations = max(evaluations, used)
                rows.append({"target": name, "library": "flowforge", "objective": objective, "seed": seed, **options,
                             "target_evaluations": used, "best_step": history.best_step, "seconds": seconds,
                             **measures(flowforge_score(flow, target), target)})
                print(json.dumps(rows[-1]), flush=True)
            if args.flowforge_only:
                continue
            torch.manual_seed(seed)
            start = time.perf_counter()
            model, used = normflows_run(target, evaluations, batch, lr)
            seconds = time.perf_counter() - start
            rows.append({"target": name, "library": "normflows", "objective": "reverse_kl", "seed": seed,
                         "target_evaluations": used, "seconds": seconds, **measures(normflows_score(model, target), target)})
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))


def table(rows: list[dict]) -> str:
    def cell(value, digits=3):
        return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    lines = ["| target | library | objective | seed | target evals | ESS | abs log Z error | modes | mean err (sd) | std err (sd) | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['library']} | {r['objective']} | {r['seed']} | {r['target_evaluations']} | "
                     f"{cell(r['ess'])} | {cell(r['log_z_error'], 4)} | {cell(r.get('modes_covered'))} | "
                     f"{cell(r.get('mean_error_sd'))} | {cell(r.get('std_error_sd'))} | {r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
