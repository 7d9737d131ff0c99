"""The `flowforge` command line: parse and validate here; cli_commands.py delegates to flowforge.train.run and reports.

    flowforge train --data moons --out runs/moons      train, write a run folder, print test NLL
    flowforge sample runs/moons -n 1000 --out x.csv    draw samples (.npy, .csv, or CSV on stdout)
    flowforge score runs/moons --data x.csv            per-row log-likelihood, mean NLL
    flowforge train --data t.csv --context-columns theta --out runs/c    learn p(x | theta)
    flowforge sample runs/c -n 100 --context 1.5       samples at theta = 1.5
    flowforge demo                                     RealNVP on two moons in under a minute
    flowforge train --resume runs/moons --steps 5000   continue a run (interrupted or finished) to 5000 steps
    flowforge check runs/moons --dtype float64         round-trip error, log-det gap, layer scales

Errors in the user's input (FlowforgeError, a missing file) print one line
`flowforge: error: ...` and exit with status 2; `flowforge --debug ...` shows the traceback.
`check` exits with 1 when a tolerance is exceeded. Ctrl-C (SIGINT) or SIGTERM during `train`
stops after the current step, writes a resumable RUN/model.pt and exits with 130 or 143
(128 + the signal's number, as a shell reports a process the signal ended); a second signal
stops at once, leaving the last checkpoint.
"""
from __future__ import annotations

import argparse
import copy
import difflib
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from . import __version__, cli_commands
from .errors import FlowforgeError
from .flows import MODELS
from .flows.builders import MEMORY
from .train.check import LOGDET_TOLERANCE, TOLERANCE
from .train.config import TrainConfig


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as FlowforgeError, for the one-line error format."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("argument --context: expected one argument"):  # argparse took "-1,2" for an option
            message += "; for a negative first value write --context=-1,2"
        raise FlowforgeError(f"{message} (see '{self.prog} --help')")


def _number(kind: type, check: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected  # argparse names the type in some messages
    return parse


POSITIVE_INT = _number(int, lambda v: v >= 1, "a positive integer")
NON_NEGATIVE_INT = _number(int, lambda v: v >= 0, "a non-negative integer")
SEED = _number(int, lambda v: 0 <= v < 2**32, "an integer from 0 to 2**32 - 1")  # numpy's seeds stop there
POSITIVE_FLOAT = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
OPEN_FRACTION = _number(float, lambda v: 0 < v < 1, "a fraction strictly between 0 and 1")
FRACTION = _number(float, lambda v: 0 <= v < 1, "a fraction in [0, 1)")


def _numbers(text: str) -> list[float]:
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_train(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p = commands.add_parser("train", parents=[common], help="train a flow and write a run folder",
                            description="Train a flow on a dataset; write config.json, model.pt, metrics and plots to a run folder.")
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
    p.add_argument("--test-fraction", type=OPEN_FRACTION, default=d.test_fraction,
                   help=f"share of rows held out for the test NLL (default {d.test_fraction})")
    p.add_argument("--val-fraction", type=FRACTION, default=d.val_fraction,
                   help=f"share of the training rows used for validation, 0 for none (default {d.val_fraction})")
    p.add_argument("--patience", type=NON_NEGATIVE_INT, default=d.patience,
                   help=f"stop after this many evaluations without a better val NLL, 0 never stops early (default {d.patience})")
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
    p.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN to --steps total steps (default: its own), "
                   "with its data, model and seed; only --steps, --save-every, --threads, --device and --no-progress apply")
    p.set_defaults(handler=cli_commands.train)


def _add_sample(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("sample", parents=[common], help="draw samples from a trained run",
                            description="Draw samples from the model in a run folder (or a model.pt file).")
    p.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    p.add_argument("-n", type=POSITIVE_INT, required=True, help="number of samples (per context row with --context-file)")
    p.add_argument("--temperature", type=POSITIVE_FLOAT, default=1.0, help="scale of the base noise, <1 is more typical (default 1)")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--context", type=_numbers, metavar="V1,V2,...",
                       help="a conditional run's context, one value per context column, for all n samples "
                            "(write --context=-1,2 when the first value is negative)")
    given.add_argument("--context-file", metavar="FILE",
                       help="one context per row (its header may name the run's context columns); "
                            "n samples per row, row by row")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="FILE", help="write FILE.npy or FILE.csv (default: CSV on stdout)")
    p.set_defaults(handler=cli_commands.sample)


def _add_score(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("score", parents=[common], help="per-row log-likelihood of a data file (anomaly scores)",
                            description="Score each row of a data file by its log-likelihood under a trained model; print the mean NLL.")
    p.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    p.add_argument("--data", required=True, metavar="FILE", help=".npy, .npz or .csv file with the model's feature count; for a conditional run, "
                        "also its context columns (found by header name, else at the training file's indices)")
    p.add_argument("--out", metavar="FILE", help="write a log_prob column to FILE.csv or FILE.npy (default: CSV on stdout)")
    p.set_defaults(handler=cli_commands.score)


def _add_demo(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("demo", parents=[common], help="train RealNVP on two moons in under a minute and plot it",
                            description="Train a small RealNVP on two moons and write the run folder with its plots.")
    p.add_argument("--out", metavar="RUN", help="run folder (default runs/demo-<timestamp>)")
    p.add_argument("--steps", type=POSITIVE_INT, default=1500, help=argparse.SUPPRESS)  # tests shorten the demo
    p.set_defaults(handler=cli_commands.demo)


def _add_check(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("check", parents=[common], help="numerical health of a run: round-trip error, log-det gap, layer scales",
                            description="On the run's held-out split (or --data FILE): the max and median round-trip error "
                                        "|decode(encode(x)) - x|, the gap |forward + inverse log-det|, and each layer's largest "
                                        "|log det|; prints a table, writes RUN/check.json, exits with 1 past a tolerance.")
    p.add_argument("run", metavar="RUN", help="run folder (or checkpoint file, with --data)")
    p.add_argument("--data", metavar="FILE", help="check the rows of FILE instead of the held-out split")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="run the whole flow in this precision (default float32)")
    p.add_argument("--tolerance", type=POSITIVE_FLOAT, default=TOLERANCE,
                   help=f"largest accepted round-trip error, in data units (default {TOLERANCE:g})")
    p.add_argument("--logdet-tolerance", type=POSITIVE_FLOAT, default=LOGDET_TOLERANCE,
                   help=f"largest accepted log-det gap, in nats (default {LOGDET_TOLERANCE:g})")
    p.set_defaults(handler=cli_commands.check)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; `--debug` is accepted before or after the subcommand."""
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    parser = _Parser(prog="flowforge", description="Normalizing flows: train, sample, score.", epilog="Run 'flowforge COMMAND --help' for a command's options.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"flowforge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for add in (_add_train, _add_sample, _add_score, _add_demo, _add_check):
        add(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on argv (default sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            raise FlowforgeError(_unknown_arguments(parser, args.command, unknown))
    except SystemExit as done:  # --help, --version
        return int(done.code or 0)
    except FlowforgeError as error:  # a usage mistake: never worth a traceback
        return _fail(error)
    args.given = _given_options(parser, sys.argv[1:] if argv is None else argv)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _show_warning
            return args.handler(args)
    except BrokenPipeError:  # the reader went away (`flowforge sample RUN | head`): stop quietly
        _silence_stdout()
        return 141  # 128 + SIGPIPE: what the shell reports for a tool stopped by a closed pipe
    except (FlowforgeError, OSError) as error:
        if args.debug:
            raise
        return _fail(error)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("flowforge: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, MemoryError) as error:
        if not args.debug and _out_of_memory(error):
            print(f"flowforge: error: out of memory ({_first_line(error)[:160]}); "
                  "ask for fewer rows at once (-n, --batch-size) or free memory", file=sys.stderr)
            return 1
        if args.debug or not _lost_other_ranks():
            raise
        first = _first_line(error)[:200]
        print(f"flowforge: error: stopped because another process of this torchrun run failed (its error is above; here: {first})",
              file=sys.stderr)
        return 1


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _out_of_memory(error: BaseException) -> bool:
    """torch's CPU and CUDA allocation failures, and Python's."""
    text = str(error)
    return isinstance(error, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()


def _unknown_arguments(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> str:
    """Name the unknown arguments, the closest option, and the command's valid options."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    known = sorted({option for action in sub._actions for option in action.option_strings if option.startswith("--")})
    guess = difflib.get_close_matches(unknown[0].split("=")[0], known, n=1) if unknown[0].startswith("--") else []
    hint = f"; did you mean {guess[0]}?" if guess else ""
    return f"{command}: unrecognized arguments: {' '.join(unknown)}{hint} (valid options: {', '.join(known)})"


def _given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options given on the command line (not left at their defaults)."""
    quiet = copy.deepcopy(parser)
    subparsers = next(a for a in quiet._actions if isinstance(a, argparse._SubParsersAction))
    for sub in (quiet, *subparsers.choices.values()):
        for action in sub._actions:
            action.default = argparse.SUPPRESS
    given, _ = quiet.parse_known_args(argv)
    return set(vars(given)) - {"command", "handler"}


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line, like the errors (no source path and code line; --debug shows them).
    torch's notices about its own internals (a deprecation inside torch.compile's code) are left
    out: nothing a flowforge user can act on."""
    if issubclass(category, (DeprecationWarning, FutureWarning)) and f"{os.sep}torch{os.sep}" in str(filename):
        return
    print(f"flowforge: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _lost_other_ranks() -> bool:
    """Inside a torchrun group flowforge made: a collective's RuntimeError means a peer went away."""
    if "torch.distributed" not in sys.modules:
        return False
    from .train import distributed

    return distributed.made_group()


def _fail(error: Exception) -> int:
    if isinstance(error, OSError) and error.strerror and error.filename:
        message = f"{error.filename}: {error.strerror}"
    else:
        message = str(error)
    print(f"flowforge: error: {' '.join(message.split())}", file=sys.stderr)
    return 2
