"""The argparse internals the command line relies on, in one place.

argparse has no public way to list a parser's options or its subcommands' parsers, which the
command line needs twice: to suggest the closest option for an unknown one, and to tell which
options were given on the command line rather than left at their defaults (an image run keeps
those, TrainConfig.given). Both read `ArgumentParser._actions` and `argparse._SubParsersAction`,
stable since Python 3.2; tested on CPython 3.11 (this project supports 3.10 and later).
"""
from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence

Subcommands = argparse._SubParsersAction  # what add_subparsers returns: each subcommand's add_parser


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each subcommand of `parser`, by name."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def long_options(parser: argparse.ArgumentParser) -> list[str]:
    """The --options of a parser, sorted."""
    return sorted({option for action in parser._actions for option in action.option_strings if option.startswith("--")})


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options given in argv (not left at their defaults), by parsing
    argv again with every default suppressed."""
    quiet = copy.deepcopy(parser)
    for sub in (quiet, *subcommand_parsers(quiet).values()):
        for action in sub._actions:
            action.default = argparse.SUPPRESS
    given, _ = quiet.parse_known_args(argv)
    return set(vars(given))
