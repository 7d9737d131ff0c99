"""`flowforge fit-target --target NAME|FILE.py:FUNCTION`: train a flow to sample a target density.

The run folder holds config.json (kind "target": the target, model and options), model.pt,
metrics.jsonl (one line per evaluation: step, loss, ESS, log Z), metrics.json (the final
importance-sampling results: `ess`, `log_z`, `log_z_stderr` from --eval-samples draws) and plots/.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from ..errors import FlowforgeError
from ..flows import MODELS, Flow, build_model
from ..targets import TARGETS, Target, compare_to_reference, importance_sample, load_target
from ..train import TargetHistory, fit_target, save
from ..train.target_options import OBJECTIVES, TargetOptions
from .argparse_internals import Subcommands
from .options import FRACTION, NON_NEGATIVE_INT, POSITIVE_FLOAT, POSITIVE_INT, SEED
from .run_folder import RunFolder, finite

KIND = "target"
WEIGHTED_ROUNDS = 10  # rounds of further draws `sample --weighted` makes to replace the draws its target failed at


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("fit-target", parents=[common], help="train a flow to sample a target density (no data)",
                            description="Train a flow on an unnormalised log-density (reverse KL or an alpha-divergence) and "
                                        "report importance sampling: ESS, log Z and its standard error.")
    p.add_argument("--target", required=True, metavar="NAME|FILE.py:FUNCTION",
                   help=f"a built-in target ({', '.join(TARGETS)}), or a function log_density(x) -> (batch,) or a "
                        "flowforge.Target (which may carry the true log_z) in a Python file")
    p.add_argument("--features", type=POSITIVE_INT, help="D, the size of x (needed for a target from a file)")
    p.add_argument("--model", default="realnvp", type=str.lower, help=f"one of {', '.join(sorted(MODELS))} (default realnvp)")
    p.add_argument("--layers", type=POSITIVE_INT, default=8, help="flow layers (default 8)")
    p.add_argument("--hidden", type=POSITIVE_INT, nargs="+", default=[64, 64], metavar="H", help="hidden widths (default 64 64)")
    p.add_argument("--steps", type=POSITIVE_INT, default=2000, help="optimizer steps (default 2000)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=256, help="samples (target evaluations) per step (default 256)")
    p.add_argument("--lr", type=POSITIVE_FLOAT, default=1e-3, help="peak learning rate, cosine decay (default 0.001)")
    p.add_argument("--objective", choices=OBJECTIVES, default="reverse_kl",
                   help="reverse_kl (mode-seeking) or alpha, the mass-covering alpha-divergence (default reverse_kl)")
    p.add_argument("--alpha", type=POSITIVE_FLOAT, default=2.0, help="alpha of --objective alpha (default 2)")
    p.add_argument("--anneal-steps", type=NON_NEGATIVE_INT, default=0,
                   help="temper the target over the first N steps, beta from 0.1 to 1 (default 0: none)")
    p.add_argument("--ema", type=FRACTION, default=TargetOptions().ema or 0.0, metavar="DECAY",
                   help="decay of the moving average of the weights that is evaluated and kept "
                        f"(default {TargetOptions().ema or 0}; 0: the live weights)")
    p.add_argument("--path-gradient", action=argparse.BooleanOptionalAction, default=TargetOptions().path_gradient,
                   help="reverse_kl: the path gradient (sticking the landing), whose noise vanishes as the flow "
                        f"approaches the target (default {'on' if TargetOptions().path_gradient else 'off'})")
    p.add_argument("--eval-samples", type=POSITIVE_INT, default=10_000, help="samples for the final ESS and log Z (default 10000)")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/<target>-<model>-<time>)")
    p.add_argument("--threads", type=POSITIVE_INT,
                   help="CPU threads for torch (default: torch's choice); 1 is often fastest for small flows on a busy machine")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=fit_target_command)


def fit_target_command(args: argparse.Namespace) -> int:
    target = load_target(args.target, args.features)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    flow = build_model(args.model, features=target.features, layers=args.layers, hidden=tuple(args.hidden))
    folder = RunFolder.claim_named(args.out, f"{target.name}-{args.model}")
    options = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "objective": args.objective,
               "alpha": args.alpha, "anneal_steps": args.anneal_steps, "ema": args.ema or None,
               "path_gradient": args.path_gradient, "seed": args.seed}
    folder.write_record({"kind": KIND, "target": _target_spec(args.target), "features": target.features,
                         "model": flow.spec, "options": options, "eval_samples": args.eval_samples})
    log = _EvaluationLog(folder.path / "metrics.jsonl")
    history = fit_target(flow, target, progress=not args.no_progress, callback=log, **options)
    save(flow, folder.checkpoint)
    torch.manual_seed(args.seed)
    result = importance_sample(flow, target, args.eval_samples)
    metrics = _metrics(result.summary(), compare_to_reference(result, target, args.seed), history)
    folder.write_metrics(metrics)
    plots = write_target_plots(folder.path / "plots", flow, target, history, result.resample(min(args.eval_samples, 5000)))
    print(f"ESS {metrics['ess']:.1%} of {args.eval_samples} samples, log Z {metrics['log_z']:.4f} +- {metrics['log_z_stderr']:.4f}"
          + (f" (true {target.log_z:.4f})" if target.log_z is not None else "")
          + (f", {metrics['modes_covered']} of {metrics['modes']} modes covered" if "modes" in metrics else "")
          + (f", {metrics['dropped']} samples dropped (target NaN or +inf)" if metrics["dropped"] else ""))
    print(f"wrote {folder.path} (model.pt, metrics.json, {len(plots)} plots)")
    return 0


def _target_spec(spec: str) -> str:
    """A file target's path made absolute, so `sample --weighted` finds it from anywhere."""
    path, colon, name = spec.rpartition(":")
    return f"{Path(path).resolve()}:{name}" if colon and Path(path).is_file() else spec


class _EvaluationLog:
    """fit_target callback: one metrics.jsonl line per evaluation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, step: int, flow: Flow, history: TargetHistory) -> None:
        if not history.val_step or history.val_step[-1] != step:
            return
        row = {"step": step, "loss": finite(history.train_nll[-1]), "reverse_kl_minus_log_z": finite(history.val_nll[-1]),
               "ess": history.val_ess[-1], "log_z": finite(history.val_log_z[-1]),
               "log_z_stderr": finite(history.val_log_z_stderr[-1]), "lr": history.lr[-1]}
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


def _metrics(summary: dict[str, Any], checks: dict[str, Any], history: TargetHistory) -> dict[str, Any]:
    metrics = {"ess": summary["ess"], "log_z": finite(summary["log_z"]), "log_z_stderr": finite(summary["log_z_stderr"]),
               "eval_samples": summary["samples"], "dropped": summary["dropped"]}
    metrics.update({key: finite(value) if isinstance(value, float) else value for key, value in checks.items()})
    metrics.update(best_step=history.best_step, steps_run=len(history.step), skipped_steps=history.skipped_steps,
                   dropped_during_training=history.dropped_samples, target_evaluations=history.target_evaluations,
                   seconds=round(history.seconds, 2))
    return metrics


def write_target_plots(folder: Path, flow: Flow, target: Target, history: TargetHistory, resampled: torch.Tensor) -> list[Path]:
    """ESS and log Z over training; for a 2-D target, resampled points over its contours."""
    from ..viz import plot_importance_curves, plot_target_samples

    plots = [plot_importance_curves(history.val_step, history.val_ess, history.val_log_z, history.val_log_z_stderr,
                                    folder / "importance.png", target.log_z)]
    if target.features == 2:
        points = resampled.detach().double().cpu()
        low, high = points.quantile(0.001, 0), points.quantile(0.999, 0)
        pad = 0.15 * (high - low)
        xs = torch.linspace(float(low[0] - pad[0]), float(high[0] + pad[0]), 200, dtype=torch.float64)
        ys = torch.linspace(float(low[1] - pad[1]), float(high[1] + pad[1]), 200, dtype=torch.float64)
        grid = torch.cartesian_prod(ys, xs).flip(1)  # rows along ys
        with torch.no_grad():
            values = target(grid.to(flow._anchor().dtype)).double().reshape(200, 200)
        plots.append(plot_target_samples(xs.numpy(), ys.numpy(), values.numpy(), points.numpy(), folder / "samples.png",
                                         title=f"importance-resampled flow samples over {target.name}"))
    return plots


def is_target_run(run: str | Path) -> bool:
    """Whether a run folder was written by fit-target."""
    record = RunFolder.of(run).record()
    return bool(record) and record.get("kind") == KIND


def weighted_samples(run: str | Path, n: int, seed: int = 0) -> tuple[Any, Any, int]:
    """n samples of a fit-target run's flow, their log importance weights against its target, and
    how many draws were dropped. Rows where the target fails (NaN, +inf) are left out, as importance sampling
    does, and replaced by further draws (at most WEIGHTED_ROUNDS rounds): fewer than n rows come back
    only where the target fails almost everywhere the flow puts its mass."""
    from ..train import load

    record = RunFolder.of(run).record() or {}
    target = load_target(record["target"], record.get("features"))
    flow = load(run)
    torch.manual_seed(seed)
    xs, log_weights, drawn, kept = [], [], 0, 0
    for _ in range(WEIGHTED_ROUNDS):
        if kept >= n or (drawn and not kept):
            break
        share = kept / drawn if drawn else 1.0  # the share of draws the target is defined at
        wanted = n - kept if not drawn else math.ceil(1.2 * (n - kept) / share) + 16
        result = importance_sample(flow, target, wanted)
        xs.append(result.x)
        log_weights.append(result.log_weights)
        drawn, kept = drawn + result.drawn, kept + len(result.x)
    return torch.cat(xs)[:n].numpy(), torch.cat(log_weights)[:n].numpy(), drawn - kept


def write_weighted_samples(run: str, n: int, seed: int, out: str | None) -> int:
    """`sample RUN --weighted`: the samples and a last column, log_weight (CSV or .npy, as `sample` writes)."""
    import numpy as np

    from .output import check_suffix, write_array

    if not is_target_run(run):
        raise FlowforgeError(f"--weighted is for runs of flowforge fit-target; {run} is not one")
    check_suffix(out)
    x, log_weights, dropped = weighted_samples(run, n, seed)
    write_array(np.column_stack([x, log_weights]), out, [f"x{i}" for i in range(x.shape[1])] + ["log_weight"])
    if len(x) < n:
        print(f"flowforge: warning: {len(x)} of the {n} samples asked for: the target was NaN or +inf at {dropped} draws, "
              "and further draws did not fill the rest (it fails almost everywhere the flow samples)", file=sys.stderr)
    if out:
        print(f"wrote {len(x)} samples with their log importance weights to {out}"
              + (f" ({dropped} draws where the target was NaN or +inf were replaced by further draws)" if dropped and len(x) == n else ""))
    return 0
