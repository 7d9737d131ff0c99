"""Numeric text tables (.csv, .txt, .tsv) -> float64 arrays, with errors that give row and column.

Rows are numbered as lines in the file, from 1 and counting the header, as an editor shows them.
Lines starting with '#' (np.savetxt's header and footer) and blank lines before and after the
table are skipped; inside it they are reported: a blank line is a missing value in a one-column
file, and a '#' line is a row, such as a spreadsheet's '#N/A', that is not a number.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Callable

import numpy as np

from ..errors import CellError, FlowforgeError

_DELIMITERS = ("\t", ";", ",")  # the first one in the first line wins; whitespace if none is there
_FLOAT32_MAX = float(np.finfo(np.float32).max)
MISSING = {"NA", "N/A", "#N/A", "NULL", "NONE", "?", "-", "."}  # spreadsheet and R spellings of a missing value

Row = tuple[int, list[str]]  # (line number in the file, stripped cells)


def is_number(cell: str) -> bool:
    """Whether a text cell reads as a float (as float() reads it: '1e3', 'nan' and 'inf' too)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _splitter(first_line: str) -> Callable[[str], list[str]]:
    for delimiter in _DELIMITERS:
        if delimiter in first_line:
            return lambda line: [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))]
    return str.split


def _problem(name: str, line: int, column: int, cell: str, names: list[str] | None) -> str:
    label = repr(names[column]) if names and names[column] else str(column + 1)
    where = f"{name}: row {line}, column {label}"
    if cell == "" or cell.upper() in MISSING:
        return f"{where} is {'empty' if cell == '' else repr(cell)} (a missing value); fill or remove it"
    if not is_number(cell):
        return f"{where}: {cell!r} is not a number"
    if math.isfinite(float(cell)):
        return f"{where}: {cell} is too large for float32"
    return f"{where} is NaN/Inf ({cell!r}); fill or remove missing values"


def _values(rows: list[Row], names: list[str] | None, name: str, width_line: int) -> np.ndarray:
    """The rows as floats; one error naming the first bad cell of every bad column at once."""
    width = len(names) if names is not None else len(rows[0][1])
    out = np.empty((len(rows), width))
    bad: dict[int, tuple[str, bool]] = {}  # column -> (its first problem, whether it is a CellError)
    for k, (line, cells) in enumerate(rows):
        if not cells:
            raise CellError(f"{name}: row {line} is blank (missing values); fill it in or remove it")
        if cells[0].startswith("#") and not (cells[0].upper() in MISSING and len(cells) == width):
            raise FlowforgeError(f"{name}: row {line} starts with '#' inside the table: comments go before or after it")
        if len(cells) != width:
            raise FlowforgeError(f"{name}: row {line} has {len(cells)} values, expected {width} as in row {width_line}")
        try:
            out[k] = [float(cell) for cell in cells]
        except ValueError:
            for column, cell in enumerate(cells):
                if column not in bad and not is_number(cell):
                    bad[column] = (_problem(name, line, column, cell, names), True)
            out[k] = [float(cell) if is_number(cell) else 0.0 for cell in cells]
    for k, column in np.argwhere(~(np.abs(out) <= _FLOAT32_MAX)):  # NaN, Inf, or beyond float32, in row order
        if column not in bad:
            line, cells = rows[k]
            # a NaN is a blank cell; Inf or 1e39 are numbers
            bad[column] = (_problem(name, line, column, cells[column], names), bool(np.isnan(out[k, column])))
    if bad:
        problems = [bad[column] for column in sorted(bad)]
        error = CellError if any(cell for _, cell in problems) else FlowforgeError
        if len(problems) == 1:
            raise error(problems[0][0])
        lines = "\n  ".join(problem.removeprefix(f"{name}: ") for problem, _ in problems)
        raise error(f"{name}: {len(problems)} columns hold cells that are not usable numbers (the first of each):\n  {lines}")
    return out


def parse_table(text: str, name: str) -> tuple[np.ndarray, list[str] | None]:
    """A (rows, columns) float64 array and the header's column names (None without a header).

    The first row is a header when none of its cells is a number and some cell is a name (not
    empty, and not a missing-value spelling such as NA); `name` labels error messages.
    """
    lines = list(enumerate(text.splitlines(), 1))
    table = [k for k, (_, line) in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if not table:
        raise FlowforgeError(f"{name} is empty: no data rows")
    lines = lines[table[0] : table[-1] + 1]  # blank and '#' lines inside the table are reported later
    split = _splitter(lines[0][1])
    rows = [(i, split(line) if line.strip() else []) for i, line in lines]
    names = None
    first = rows[0][1]
    if any(c and c.upper() not in MISSING for c in first) and not any(is_number(cell) for cell in first):
        names, rows = rows[0][1], rows[1:]
        if not rows:
            raise FlowforgeError(f"{name} has a header row but no data rows")
    return _values(rows, names, name, lines[0][0]), names
