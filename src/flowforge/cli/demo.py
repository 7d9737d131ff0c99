"""`flowforge demo`: a small RealNVP on two moons, trained and plotted in under a minute."""
from __future__ import annotations

import argparse

from .argparse_internals import Subcommands
from .config import TrainConfig
from .options import POSITIVE_INT
from .report import finish
from .run_folder import default_folder
from .training import train_run


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("demo", parents=[common], help="train RealNVP on two moons in under a minute and plot it",
                            description="Train a small RealNVP on two moons and write the run folder with its plots.")
    p.add_argument("--out", metavar="RUN", help="run folder (default runs/demo-<timestamp>)")
    p.add_argument("--steps", type=POSITIVE_INT, default=1500, help=argparse.SUPPRESS)  # tests shorten the demo
    p.set_defaults(handler=demo)


def demo(args: argparse.Namespace) -> int:
    return finish(train_run(demo_config(args.out, steps=args.steps)), list_plots=True)


def demo_config(out: str | None = None, steps: int = 1500) -> TrainConfig:
    """The demo's run, sized for well under a minute on 2 cores.

    One thread: layers this small gain nothing from more, and on a busy machine extra threads
    spin-wait for each other.
    """
    return TrainConfig(data="moons", model="realnvp", layers=6, hidden=(64, 64), steps=steps, batch_size=256, lr=2e-3,
                       threads=1, out=out or str(default_folder("demo")))
