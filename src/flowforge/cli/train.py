"""`flowforge train`: train a flow and write a run folder, or continue one with --resume.

The parser below is the one list of train's options: TrainConfig is built from the options it
parsed, and --resume refuses the options it defines that a resumed run cannot change.
"""
from __future__ import annotations

import argparse
from dataclasses import fields

from ..errors import FlowforgeError
from ..flows import MODELS
from ..flows.builders import MEMORY
from ..train.flow_matching import COUPLINGS
from ..train.objectives import OBJECTIVES
from .argparse_internals import Subcommands
from .config import TrainConfig
from .mixed_run import is_table_run, report_table_run, train_table_run, wants_table_run
from .options import FRACTION, NON_NEGATIVE_INT, OPEN_FRACTION, POSITIVE_FLOAT, POSITIVE_INT, SEED
from .report import finish
from .resume import prepare_resume
from .table_resume import resume_table_run
from .training import train_run

MISSING = ("drop", "level", "model")
RESUME_OPTIONS = ("--steps", "--save-every", "--threads", "--device", "--no-progress")  # what a resumed run may change
RESUME_APPLIES = f"only {', '.join(RESUME_OPTIONS[:-1])} and {RESUME_OPTIONS[-1]} apply"


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("train", parents=[common], help="train a flow and write a run folder",
                            description="Train a flow on a dataset; write config.json, model.pt, metrics and plots to a run folder.")
    add_arguments(p)
    p.set_defaults(handler=train)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """train's options, with TrainConfig's defaults."""
    _add_model_arguments(p)
    _add_table_arguments(p)
    _add_run_arguments(p)
    return p


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--data", default=d.data, metavar="NAME|FILE",
                   help=f"toy name, 'digits', or a .npy/.npz/.csv file; with --model glow or realnvp, 'digits', a folder of "
                        f"PNG/JPEG or an (N, C, H, W) .npy train the image models (default {d.data})")
    p.add_argument("--model", default=d.model, type=str.lower, help=f"one of {', '.join(sorted(MODELS))} (default {d.model})")
    p.add_argument("--context-columns", metavar="COLS",
                   help="train a conditional flow p(x | context): these columns of the --data file (comma-separated "
                        "header names or 0-based indices) are the context, the other columns are x")
    p.add_argument("--layers", type=POSITIVE_INT, default=d.layers,
                   help=f"flow layers (default {d.layers}; 4 with --hidden 64 64 for fewer than 2,000 training rows)")
    p.add_argument("--hidden", type=POSITIVE_INT, nargs="+", default=list(d.hidden), metavar="H",
                   help=f"conditioner hidden widths (default {' '.join(map(str, d.hidden))})")
    p.add_argument("--steps", type=POSITIVE_INT, help=f"optimizer steps in all (default {d.steps}; with --resume, the run's own)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=d.batch_size, help=f"rows per step (default {d.batch_size})")
    p.add_argument("--lr", type=POSITIVE_FLOAT, default=d.lr, help=f"peak learning rate, cosine decay (default {d.lr})")
    p.add_argument("--seed", type=SEED, default=d.seed, help=f"seed for data, split, init and batches (default {d.seed})")
    p.add_argument("--n", "--rows", dest="n", type=POSITIVE_INT, default=d.n,
                   help="rows: toys draw N points (default 20000); digits and files use a random subset of N rows "
                        "(under torchrun write --rows: torchrun takes --n for its own --nnodes)")
    p.add_argument("--test-fraction", type=FRACTION, default=d.test_fraction,
                   help=f"share of rows held out for the test NLL, 0 for none (default {d.test_fraction})")
    p.add_argument("--val-fraction", type=FRACTION, default=d.val_fraction,
                   help=f"share of the training rows used for validation, 0 for none (default {d.val_fraction})")
    p.add_argument("--patience", type=NON_NEGATIVE_INT, default=d.patience,
                   help=f"stop after this many evaluations without a better val NLL, 0 never stops early (default {d.patience})")
    p.add_argument("--objective", choices=OBJECTIVES, default=d.objective,
                   help="what training minimises: the NLL, or (--model cnf) conditional flow matching of the vector field, "
                        f"which solves no ODE while training; validation and test use the exact NLL either way (default {d.objective}; "
                        "flow-matching for a cnf on images)")
    p.add_argument("--coupling", choices=COUPLINGS, default=d.coupling,
                   help=f"flow matching's pairing of data and noise in a batch: independent, or ot (minibatch optimal transport) (default {d.coupling})")
    p.add_argument("--ema", type=OPEN_FRACTION, metavar="DECAY",
                   help="keep a moving average of the weights with this decay (e.g. 0.999): validation, the saved model and the "
                        "test NLL use it (default: none)")
    p.add_argument("--time-power", type=POSITIVE_FLOAT, default=d.time_power, metavar="P",
                   help="flow matching draws its times as t = u^P: 1 is uniform, 2 puts more near the data (default 1)")
    p.add_argument("--circular", metavar="COLS",
                   help="columns holding angles in radians (comma-separated header names or 0-based indices), for --model nsf "
                        "or nsf-ar: circular splines and a base uniform on the circle; samples lie in [-pi, pi)")


def _add_table_arguments(p: argparse.ArgumentParser) -> None:
    kinds = p.add_mutually_exclusive_group()
    kinds.add_argument("--columns", metavar="NAME:KIND,...",
                       help="column kinds for a table of mixed columns, overriding the inferred ones: real, positive, nonnegative, "
                            "bounded(LOW,HIGH), integer, categorical, datetime or datetime(FORMAT) (e.g. datetime(%%d/%%m/%%Y)), identifier, ignored (left out), "
                            "e.g. price:positive,cut:categorical")
    kinds.add_argument("--schema", metavar="FILE", help="a table's schema as JSON (the 'schema' entry of a table run's config.json)")
    p.add_argument("--missing", choices=MISSING, default="model",
                   help="blank cells of a mixed table: model (default): blank categories are a level and which numeric cells are blank is "
                        "modelled, samples have blank cells, the flow learns from the complete rows; drop: rows with blank cells are left "
                        "out, with the counts printed; level: a blank category is a level of its own, blank numbers drop the row")


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--threads", type=POSITIVE_INT, default=d.threads,
                   help="CPU threads for torch (default: torch's choice); 1 is often fastest for small models on a busy machine")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device,
                   help="where to train: auto is CUDA when available (default auto); under torchrun each rank takes its local GPU")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=d.precision,
                   help="autocast the conditioner networks to bf16/fp16; log-dets and base density stay float32 (default fp32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the flow (falls back to eager with a warning where unsupported)")
    p.add_argument("--memory", choices=tuple(MEMORY), default=d.memory,
                   help="invertible: training memory constant in depth, each layer's input recomputed by its inverse "
                        f"in the backward pass, for about 1.3x the step time (default {d.memory})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", metavar="RUN", help="run folder (default runs/<data>-<model>-<timestamp>)")
    p.add_argument("--save-every", type=POSITIVE_INT, metavar="STEPS",
                   help="also write a resumable RUN/model.pt every STEPS steps (it is always written at the end and on Ctrl-C)")
    p.add_argument("--log", choices=("tensorboard", "mlflow"),
                   help="also send each evaluation's NLL, lr, gradient norm and throughput, and at the end the metrics, config and "
                        "plots, to TensorBoard (RUN/tensorboard/) or MLflow (MLFLOW_TRACKING_URI); needs the tracking extra")
    p.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN to --steps total steps (default: its own), "
                   f"with its data, model and seed; {RESUME_APPLIES}")


def train(args: argparse.Namespace) -> int:
    if args.resume is None:
        config = config_from_args(args)
        if wants_table_run(config, declared=bool(args.columns or args.schema)):
            if config.log:
                raise FlowforgeError("--log applies to runs of numeric and image data; a mixed table trains without a tracker")
            return report_table_run(train_table_run(config, args.columns, args.schema, args.missing))
        if args.columns or args.schema:
            raise FlowforgeError(f"--columns and --schema are for tables (.csv, .tsv, .parquet files); {config.data} is not one")
        return finish(train_run(config))
    _check_resume_options(args)
    if is_table_run(args.resume):
        return report_table_run(resume_table_run(args.resume, steps=args.steps, save_every=args.save_every, threads=args.threads))
    config, resume = prepare_resume(args.resume, steps=args.steps, save_every=args.save_every, threads=args.threads,
                                    progress=False if args.no_progress else None,
                                    device=args.device if args.device != TrainConfig().device else None)
    return finish(train_run(config, resume))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed train options; `given` keeps those set on the command line."""
    names = {f.name for f in fields(TrainConfig)}
    options = {name: value for name, value in vars(args).items() if name in names - {"given"}}
    return TrainConfig(**{
        **options, "steps": args.steps or TrainConfig().steps, "patience": args.patience or None,
        "progress": not args.no_progress, "given": tuple(sorted(name for name in getattr(args, "given", ()) if name in names)),
    })


def _check_resume_options(args: argparse.Namespace) -> None:
    """Refuse the options a resumed run cannot change (it keeps those it started with), where not at their defaults."""
    defaults = vars(add_arguments(argparse.ArgumentParser(add_help=False)).parse_args([]))
    kept = {option.lstrip("-").replace("-", "_") for option in RESUME_OPTIONS} | {"resume"}
    changed = [f"--{name.replace('_', '-')}" for name, default in defaults.items() if name not in kept and getattr(args, name) != default]
    if changed:
        raise FlowforgeError(f"--resume continues {args.resume} with the options it started with; drop {', '.join(changed)} "
                             f"(with --resume {RESUME_APPLIES})")
