"""flowforge's own exception type: every user-facing error names the problem."""
from __future__ import annotations

import math
from typing import Any


class FlowforgeError(ValueError):
    """Bad input, bad option or bad file. Subclasses ValueError so generic handlers still work."""


class CellError(FlowforgeError):
    """A cell of a text table that is not a number: text, a blank or a NaN. The numeric reader
    refuses it; `flowforge train` then models the file as a table of mixed columns."""


def check_int(name: str, value: Any, minimum: int) -> None:
    """Named error unless value is an integer (not a bool) of at least `minimum`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise FlowforgeError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_bound(name: str, value: Any) -> None:
    """Named error unless value is a finite positive number (a soft-clamp or spline bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise FlowforgeError(f"{name} must be a finite positive number, got {value!r}")
