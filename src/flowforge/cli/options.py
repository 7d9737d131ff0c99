"""Value types for the command line's options: each names what it expects when a value is wrong."""
from __future__ import annotations

import argparse
from collections.abc import Callable


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


def numbers(text: str) -> list[float]:
    """Comma-separated numbers, e.g. a context vector."""
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
