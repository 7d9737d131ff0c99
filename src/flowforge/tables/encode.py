"""A DataFrame as the arrays the models see, and back: continuous values and category codes.

Continuous columns keep their raw values (a datetime as whole `resolution` units after the
earliest training date); categorical columns become codes 0..K-1 into the schema's levels.
Unseen levels and values outside a column's support are flagged per row, never guessed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import FlowforgeError
from .dates import CALENDARS, from_units, to_units
from .infer import parse_dates
from .schema import Column, Schema
from .support import in_support


@dataclass
class Encoded:
    """Rows as arrays: `continuous` (n, D) float64, `codes` (n, C) int64 (-1 where unseen or
    missing), `missing` (n,) rows with a blank modelled cell, `outside` (n,) rows with an unseen
    level or a value outside its column's support; `why_outside` says which, per column:
    {column: (rows (n,) bool, what those cells are)}."""

    continuous: np.ndarray
    codes: np.ndarray
    missing: np.ndarray
    outside: np.ndarray
    why_outside: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)

    def describe_outside(self, index: pd.Index, limit: int = 10) -> str:
        """"'day': 2 cells that are not dates (e.g. 'soon') in rows [4, 9]; 'cut': ..."""
        return "; ".join(f"{name!r}: {int(rows.sum())} {what} in rows {list(index[rows][:limit])}"
                         for name, (rows, what) in self.why_outside.items())


BLANK = ("blank", None)  # the key of the level None: blank cells, modelled with missing="level"


def _key(value: Any) -> tuple[str, Any]:
    """Match levels by value: 1, 1.0 and True are one number; text is compared as text."""
    value = value.item() if hasattr(value, "item") else value
    if value is None:
        return BLANK
    return ("n", float(value)) if isinstance(value, (bool, int, float)) else ("s", str(value))


def _is_text(values: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _numbers_as_text(values: pd.Series) -> bool:
    """Text cells that all read as numbers ('12', '3.5'): Parquet, JSON or dtype=str reads of a numeric column."""
    present = values.dropna()
    return len(present) > 0 and _is_text(present) and not pd.api.types.is_bool_dtype(present) \
        and bool(pd.to_numeric(present, errors="coerce").notna().all())


def _numeric_levels(column: Column) -> bool:
    return bool(column.levels) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column.levels if v is not None)


def _read_numbers(schema: Schema, df: pd.DataFrame) -> pd.DataFrame:
    """df with every numeric column that arrived as text digits read as numbers (a copy, only if needed)."""
    numeric = [c.name for c in schema.columns if c.name in df.columns and c.kind != "datetime"
               and (c in schema.continuous or _numeric_levels(c)) and _numbers_as_text(df[c.name])]
    if not numeric:
        return df
    df = df.copy()
    for name in numeric:
        df[name] = pd.to_numeric(df[name], errors="coerce")
    return df


def _check_types(schema: Schema, df: pd.DataFrame) -> None:
    """One error naming every column that is absent or of another type than in training."""
    problems = [f"{c.name!r}: missing from the table" for c in schema.columns if c.name not in df.columns and c.kind not in ("identifier", "ignored")]
    for c in schema.continuous:
        values = df[c.name].dropna() if c.name in df.columns else None
        if values is not None and c.kind != "datetime" and _is_text(values) and len(values):
            text = values[pd.to_numeric(values, errors="coerce").isna()]  # the cells that are not numbers
            if len(text):  # text digits alone were read as numbers by _read_numbers
                problems.append(f"{c.name!r}: {c.kind} in training, but text here (e.g. {text.iloc[0]!r})")
    for c in schema.discrete:
        if c.name in df.columns and all(isinstance(v, str) for v in c.levels) and not _is_text(df[c.name].dropna()):
            problems.append(f"{c.name!r}: categorical (text) in training, but numbers here")
    if problems:
        raise FlowforgeError("the table does not match the schema:\n  " + "\n  ".join(problems))


def _continuous(column: Column, values: pd.Series) -> np.ndarray:
    if column.kind == "datetime":
        return to_units(parse_dates(values, column.format), column.calendar, column.resolution) - column.low
    return pd.to_numeric(values, errors="coerce").to_numpy(float)


def _what_is_outside(column: Column, values: pd.Series, rows: np.ndarray) -> str:
    """What a column's cells outside the support are, in words, with an example."""
    example = values[rows].iloc[0]
    example = example.item() if hasattr(example, "item") else example
    if column.kind == "datetime":
        unread = values[rows][parse_dates(values[rows], column.format).isna()]
        if len(unread):
            return f"cells that are not dates{f' as {column.format}' if column.format else ''} (e.g. {unread.iloc[0]!r})"
        kind = CALENDARS[column.calendar] if column.calendar else f"whole multiples of {column.resolution:g} s"
        return f"dates that are not {kind} like the training dates (e.g. {str(example)!r})"
    if column.kind == "categorical":
        return f"cells of a level unseen in training (e.g. {example!r})"
    return f"cells a {column.kind} column cannot hold (e.g. {example!r})"


def encode(schema: Schema, df: pd.DataFrame) -> Encoded:
    """Encode the schema's modelled columns of df (extra columns are ignored); numeric columns
    that arrive as text digits are read as numbers."""
    df = _read_numbers(schema, df)
    _check_types(schema, df)
    n = len(df)
    missing = np.zeros(n, bool)
    why: dict[str, tuple[np.ndarray, str]] = {}

    def flag(column: Column, rows: np.ndarray) -> None:
        if rows.any():
            why[column.name] = (rows, _what_is_outside(column, df[column.name], rows))

    continuous = np.zeros((n, len(schema.continuous)))
    for j, c in enumerate(schema.continuous):
        continuous[:, j] = _continuous(c, df[c.name])
        blank = df[c.name].isna().to_numpy()
        missing |= blank
        flag(c, ~blank & ~in_support(c, torch.from_numpy(continuous[:, j])).numpy())
    codes = np.full((n, len(schema.discrete)), -1, dtype=np.int64)
    for j, c in enumerate(schema.discrete):
        index = {_key(level): i for i, level in enumerate(c.levels)}
        blank = df[c.name].isna().to_numpy()
        codes[:, j] = [index.get(BLANK, -1) if b else index.get(_key(v), -1) for v, b in zip(df[c.name], blank)]
        blank = blank & (BLANK not in index)  # a blank cell is a level of its own when fitted with missing="level"
        missing |= blank
        flag(c, ~blank & (codes[:, j] < 0))
    for c in schema.of_kinds(("constant",)):
        blank = df[c.name].isna().to_numpy()
        missing |= blank
        flag(c, ~blank & np.array([_key(v) != _key(c.levels[0]) for v in df[c.name]], dtype=bool))
    outside = np.zeros(n, bool)
    for rows, _ in why.values():
        outside |= rows
    return Encoded(continuous, codes, missing, outside, why)


def _written(column: Column, values: np.ndarray | list) -> pd.Series:
    """Values in the dtype the column had (whole numbers as int64, dates as datetime64)."""
    if column.kind == "datetime":
        return from_units(np.asarray(values, float) + column.low, column.calendar, column.resolution)
    if column.kind == "integer" or (column.levels and all(isinstance(v, int) and not isinstance(v, bool) for v in column.levels)):
        return pd.Series(np.asarray(values, dtype=np.int64))
    series = pd.Series(values)
    try:
        return series.astype(column.dtype)
    except (TypeError, ValueError):
        return series


def _left_out(column: Column, n: int) -> pd.Series:
    """A left-out column's sampled cells: a constant's value; fresh whole-number ids counting on
    from the training table's largest (never a real row's id); blank cells for text ids and ignored columns."""
    if column.kind == "constant":
        return _written(column, [column.levels[0]] * n)
    if column.kind == "identifier" and column.high is not None:
        return pd.Series(np.arange(1, n + 1, dtype=np.int64) + int(column.high))
    return pd.Series([None] * n, dtype=object)


def decode(schema: Schema, continuous: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    """A DataFrame in the schema's column order from sampled values (whole numbers already
    floored) and codes; left-out columns as `_left_out` writes them."""
    n = len(continuous)
    where_c = {c.name: j for j, c in enumerate(schema.continuous)}
    where_d = {c.name: j for j, c in enumerate(schema.discrete)}
    out = {}
    for c in schema.columns:
        if c.name in where_c:
            out[c.name] = _written(c, continuous[:, where_c[c.name]])
        elif c.name in where_d:
            out[c.name] = _written(c, [c.levels[k] for k in codes[:, where_d[c.name]]])
        else:
            out[c.name] = _left_out(c, n)
    return pd.DataFrame(out)
