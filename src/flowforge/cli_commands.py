"""The `flowforge` subcommands: run each parsed command through flowforge.train and report or write its result."""
from __future__ import annotations

import argparse
import signal
import sys
import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np

from .errors import FlowforgeError
from .train.config import TrainConfig

OUTPUT_SUFFIXES = (".npy", ".csv")


def train(args: argparse.Namespace) -> int:
    from .train.resume import prepare_resume
    from .train.run import train_run

    if args.resume is not None:
        _check_resume_options(args)
        config, resume = prepare_resume(args.resume, steps=args.steps, save_every=args.save_every, threads=args.threads,
                                        progress=False if args.no_progress else None,
                                        device=args.device if args.device != TrainConfig().device else None)
        return _finish(train_run(config, resume))
    d = TrainConfig()
    config = TrainConfig(
        data=args.data, model=args.model, n=args.n, layers=args.layers, hidden=tuple(args.hidden), steps=args.steps or d.steps,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, test_fraction=args.test_fraction,
        val_fraction=args.val_fraction, patience=args.patience or None, threads=args.threads, progress=not args.no_progress,
        out=args.out, context_columns=args.context_columns, save_every=args.save_every,
        device=args.device, precision=args.precision, compile=args.compile, memory=args.memory,
        given=tuple(sorted(name for name in getattr(args, "given", ()) if name in {f.name for f in fields(TrainConfig)})),
    )
    return _finish(train_run(config))


def _check_resume_options(args: argparse.Namespace) -> None:
    d = TrainConfig()
    given = {"data": args.data, "model": args.model, "context-columns": args.context_columns, "n": args.n, "layers": args.layers,
             "hidden": tuple(args.hidden), "batch-size": args.batch_size, "lr": args.lr, "seed": args.seed,
             "test-fraction": args.test_fraction, "val-fraction": args.val_fraction, "patience": args.patience, "out": args.out,
             "precision": args.precision, "compile": args.compile, "memory": args.memory}
    changed = [f"--{name}" for name, value in given.items() if value != getattr(d, name.replace("-", "_"))]
    if changed:
        raise FlowforgeError(f"--resume continues {args.resume} with the options it started with; drop {', '.join(changed)} "
                             "(with --resume only --steps, --save-every, --threads, --device and --no-progress apply)")


def _finish(result, list_plots: bool = False) -> int:
    """Report a run (and its plots' paths); an interrupted one exits with 128 + the signal's number.
    Under torchrun every rank waits for rank 0's files, and only rank 0 reports."""
    from .train import distributed

    main_rank = distributed.is_main()
    distributed.leave()  # every rank ends with rank 0's files written
    if not main_rank:
        return 0 if result.stopped_by is None else 128 + result.stopped_by
    if result.stopped_by is None:
        _report(result)
        if list_plots:
            print(f"plots: {', '.join(str(p) for p in sorted((result.folder / 'plots').glob('*.png')))}")
        return 0
    name = signal.Signals(result.stopped_by).name
    print(f"flowforge: interrupted by {name} after {result.metrics['steps_run']} steps; {result.folder / 'model.pt'} holds the "
          f"progress: 'flowforge train --resume {result.folder}' continues", file=sys.stderr)
    return 128 + result.stopped_by


def demo(args: argparse.Namespace) -> int:
    from .train.run import demo_config, train_run

    return _finish(train_run(demo_config(args.out, steps=args.steps)), list_plots=True)


def _report(result) -> None:
    m = result.metrics
    test_nll = "n/a" if m["test_nll"] is None else f"{m['test_nll']:.4f}"
    print(f"run folder: {result.folder}")
    print(f"test_nll: {test_nll} nats ({m['n_test']} held-out rows; {m['steps_run']} steps in {m['train_seconds']:.1f} s)")
    if m.get("test_bpd") is not None:
        print(f"test_bpd: {m['test_bpd']:.4f} bits/dim on the pixel scale")


def sample(args: argparse.Namespace) -> int:
    from .train.conditional import recorded_x_names
    from .train.run import sample_run

    _check_suffix(args.out)
    x = sample_run(args.run, args.n, temperature=args.temperature, seed=args.seed, context=args.context, context_file=args.context_file)
    if x.ndim > 2 and not (args.out and Path(args.out).suffix.lower() == ".npy"):
        x = x.reshape(len(x), -1)  # images: .npy keeps (n, C, H, W), CSV gets one row of pixel levels per sample
    _write_array(x, args.out, recorded_x_names(args.run) or [f"x{i}" for i in range(x.shape[1])])  # score reads them back
    if args.out:
        print(f"wrote {len(x)} samples to {args.out}")
    return 0


def score(args: argparse.Namespace) -> int:
    from .train.run import score_file

    _check_suffix(args.out)
    log_prob = score_file(args.run, args.data)
    _write_array(log_prob[:, None], args.out, ["log_prob"])
    infinite = ~np.isfinite(log_prob)
    if infinite.any():  # a density of 0, or one that overflows float32: far outside the training data
        warnings.warn(f"{args.data}: {int(infinite.sum())} of {len(log_prob)} rows score -inf (the first is data row {int(np.flatnonzero(infinite)[0]) + 1}, from 1 without the header); "
                      "their values lie far outside the data the model was trained on, or outside a layer's support", RuntimeWarning, stacklevel=2)
    nll = -float(np.mean(log_prob))
    summary = f"mean NLL: {nll:{'.4f' if abs(nll) < 1e9 else '.4g'}} nats over {len(log_prob)} rows"
    print(summary + (f"; wrote {args.out}" if args.out else ""), file=sys.stdout if args.out else sys.stderr)
    return 0


def check(args: argparse.Namespace) -> int:
    from .health import table
    from .train.check import check_run

    result = check_run(args.run, args.data, dtype=args.dtype, tolerance=args.tolerance, logdet_tolerance=args.logdet_tolerance)
    print(f"{result.source}, {result.health.dtype}")
    print(table(result.health))
    verdict = "passed" if result.passed else f"FAILED: {'; '.join(result.problems)}"
    print(f"check {verdict} (wrote {result.path})")
    if not result.passed and result.health.dtype == "float32":  # e.g. 16-bit pixels, which float32 resolves coarsely
        print("`--dtype float64` measures the same model without float32's rounding: a defect fails there too")
    return 0 if result.passed else 1


def _check_suffix(out: str | None) -> None:
    if out is not None and Path(out).suffix.lower() not in OUTPUT_SUFFIXES:
        raise FlowforgeError(f"--out {out}: unknown file type {Path(out).suffix or '(none)'!r}; use {' or '.join(OUTPUT_SUFFIXES)}")


def _write_array(x: np.ndarray, out: str | None, columns: list[str]) -> None:
    """.npy keeps float32 exactly; CSV (a file, or stdout when out is None) has a header line.
    Files are written atomically: never half-written, even if the process is killed."""
    from .train.checkpoint import atomic_write_bytes

    def write_csv(handle) -> None:
        np.savetxt(handle, x, fmt="%.7g", delimiter=",", header=",".join(columns), comments="")

    if out is None:
        write_csv(sys.stdout)
    elif Path(out).suffix.lower() == ".npy":
        atomic_write_bytes(out, lambda handle: np.save(handle, x))  # np.save(path) would append ".npy" to "X.NPY"
    else:
        atomic_write_bytes(out, write_csv)
