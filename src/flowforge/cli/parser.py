"""The command line's parser: the subcommands, each defined in its own module, and usage errors."""
from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence

from .. import __version__
from ..errors import FlowforgeError
from . import check, demo, fit_target, sample, score, train
from . import export as export_command
from .argparse_internals import given_options, long_options, subcommand_parsers

SUBCOMMANDS = (train, sample, score, demo, check, fit_target, export_command)  # in the order `flowforge --help` lists them


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as FlowforgeError, for the one-line error format."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("argument --context: expected one argument"):  # argparse took "-1,2" for an option
            message += "; for a negative first value write --context=-1,2"
        raise FlowforgeError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; `--debug` is accepted before or after the subcommand."""
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    parser = _Parser(prog="flowforge", description="Normalizing flows: train, sample, score.", epilog="Run 'flowforge COMMAND --help' for a command's options.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"flowforge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(commands, common)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """argv parsed; `given` holds the options given on the command line. Unknown arguments are a
    FlowforgeError naming the closest option."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise FlowforgeError(unknown_arguments(parser, args.command, unknown))
    args.given = given_options(parser, argv) - {"command", "handler"}
    return args


def unknown_arguments(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> str:
    """Name the unknown arguments, the closest option, and the command's valid options."""
    known = long_options(subcommand_parsers(parser)[command])
    guess = difflib.get_close_matches(unknown[0].split("=")[0], known, n=1) if unknown[0].startswith("--") else []
    hint = f"; did you mean {guess[0]}?" if guess else ""
    return f"{command}: unrecognized arguments: {' '.join(unknown)}{hint} (valid options: {', '.join(known)})"
