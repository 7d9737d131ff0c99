"""`flowforge sample RUN -n N`: draw samples from a run's model, at a conditional run's contexts."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import FlowforgeError
from ..train.checkpoint import load
from .argparse_internals import Subcommands
from .conditional import recorded_x_names, sample_context
from .fit_target import write_weighted_samples
from .mixed_run import is_table_run, sample_table_run
from .options import POSITIVE_FLOAT, POSITIVE_INT, SEED, numbers
from .output import check_suffix, write_array


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("sample", parents=[common], help="draw samples from a trained run",
                            description="Draw samples from the model in a run folder (or a model.pt file).")
    p.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    p.add_argument("-n", type=POSITIVE_INT, required=True, help="number of samples (per context row with --context-file)")
    p.add_argument("--temperature", type=POSITIVE_FLOAT, default=1.0, help="scale of the base noise, <1 is more typical (default 1)")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--context", type=numbers, metavar="V1,V2,...",
                       help="a conditional run's context, one value per context column, for all n samples "
                            "(write --context=-1,2 when the first value is negative)")
    given.add_argument("--context-file", metavar="FILE",
                       help="one context per row (its header may name the run's context columns); "
                            "n samples per row, row by row")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="FILE", help="write FILE.npy or FILE.csv (default: CSV on stdout)")
    p.add_argument("--weighted", action="store_true",
                   help="a fit-target run: each sample with its log importance weight against the run's target (last column, log_weight)")
    p.set_defaults(handler=sample)


def sample(args: argparse.Namespace) -> int:
    if args.weighted:
        if args.context is not None or args.context_file is not None or args.temperature != 1.0:
            raise FlowforgeError("--weighted takes -n, --seed and --out only")
        return write_weighted_samples(args.run, args.n, args.seed, args.out)
    if is_table_run(args.run):
        if args.context is not None or args.context_file is not None or args.temperature != 1.0:
            raise FlowforgeError(f"{args.run} is a run on a mixed table: it takes -n, --seed and --out only")
        return sample_table_run(args.run, args.n, args.seed, args.out)
    check_suffix(args.out)
    x = sample_run(args.run, args.n, temperature=args.temperature, seed=args.seed, context=args.context, context_file=args.context_file)
    if x.ndim > 2 and not (args.out and Path(args.out).suffix.lower() == ".npy"):
        x = x.reshape(len(x), -1)  # images: .npy keeps (n, C, H, W), CSV gets one row of pixel levels per sample
    write_array(x, args.out, recorded_x_names(args.run) or [f"x{i}" for i in range(x.shape[1])])  # score reads them back
    if args.out:
        print(f"wrote {len(x)} samples to {args.out}")
    return 0


def sample_run(
    run: str | os.PathLike, n: int, temperature: float = 1.0, seed: int = 0, context: Any = None,
    context_file: str | os.PathLike | None = None,
) -> np.ndarray:
    """n samples (n, D) from the model in a run folder (or checkpoint file), reproducible by seed.

    A conditional model needs a `context`, one vector of its context features, or a `context_file`
    with one context per row: then n samples per row, row by row (R * n samples in all).
    """
    flow = load(run)
    context = sample_context(flow, run, context, context_file, n)
    torch.manual_seed(seed)
    return flow.sample(n if context is None else len(context), temperature=temperature, context=context).numpy()
