"""infer_schema: each column's kind from its values, with overrides; every bad column in one error.

Rules, in order (a column's non-missing values v):
    header "" / "Unnamed: N" / "rownames" (a saved pandas or R index)  -> identifier
    one distinct value                                                -> constant (left out)
    datetime dtype, or text like 2024-01-31                          -> datetime
    text/boolean/category: distinct per row (>= 10 rows) -> identifier, else categorical
    whole numbers with <= MAX_INTEGER_LEVELS distinct values          -> categorical (exact)
    whole numbers                                                      -> integer (dequantised)
    <= MAX_INTEGER_LEVELS distinct values, >= FEW_VALUES_ROWS rows each -> categorical (coded levels)
    0 < v < 1                                                          -> bounded(0, 1)
    v >= 0 with exact zeros                                            -> nonnegative (P(0), density above)
    v > 0                                                              -> positive (log map)
    otherwise                                                          -> real
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import FlowforgeError
from .schema import KINDS, Column, Schema

# Whole numbers with at most this many levels are categories: exact probabilities, where dequantised
# integers give a lower bound. Held-out NLL, seeds 0-2, categories vs dequantised integers: mtcars
# (cyl, vs, am, gear, carb) 21.67 vs 21.65 nats, airquality (Month) 21.73 vs 21.93.
MAX_INTEGER_LEVELS = 10
# Numbers that are not whole but take at most MAX_INTEGER_LEVELS values, each seen this many times on
# average, are coded levels too. fair (age, yrs_married, children): classifier AUC 0.995 -> see RESULTS.md.
FEW_VALUES_ROWS = 5
MAX_LEVELS = 200  # more text levels than this is rarely a category: name it identifier, or drop it
INDEX_HEADERS = re.compile(r"^(|Unnamed: \d+|rownames|index)$")
DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}")
OVERRIDE = re.compile(r"\s*([^,]+?)\s*:\s*(bounded\s*\([^)]*\)|\w+)\s*(?:,|$)")  # a name may hold a colon: "Unnamed: 0"


def parse_overrides(overrides: str | dict[str, str] | None) -> dict[str, str]:
    """"price:positive,depth:bounded(40,80)" or a dict -> {column: kind text}."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return {str(k): str(v).strip() for k, v in overrides.items()}
    parsed = {m.group(1): m.group(2) for m in OVERRIDE.finditer(overrides)}
    if not parsed and overrides.strip():
        raise FlowforgeError(f"overrides {overrides!r}: expected 'column:kind,...' e.g. 'price:positive,depth:bounded(40,80)'")
    return parsed


def _kind_and_bounds(text: str) -> tuple[str, float | None, float | None]:
    """'bounded(40, 80)' -> ('bounded', 40.0, 80.0); 'positive' -> ('positive', None, None)."""
    match = re.fullmatch(r"bounded\s*\(\s*([^,]+),\s*([^)]+)\)", text.strip().lower())
    if match:
        low, high = float(match.group(1)), float(match.group(2))
        if not low < high:
            raise ValueError(f"bounded({low:g}, {high:g}) needs low < high")
        return "bounded", low, high
    if text.strip().lower() not in KINDS or text.strip().lower() == "bounded":
        raise ValueError(f"unknown kind {text!r} (kinds: {', '.join(KINDS)}, with bounds as bounded(a,b))")
    return text.strip().lower(), None, None


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _levels(values: pd.Series) -> tuple[Any, ...]:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return tuple(_python(v) for v in values.cat.categories if (values == v).any())
    unique = [_python(v) for v in values.unique()]
    if all(isinstance(v, float) and v.is_integer() for v in unique):
        unique = [int(v) for v in unique]  # whole numbers read as floats because of blank cells
    if len({type(v) for v in unique}) > 1 and not all(isinstance(v, (int, float, bool)) for v in unique):
        unique = [str(v) for v in unique]
    return tuple(sorted(unique))


def _is_whole(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and bool(np.all(np.mod(values.to_numpy(float), 1) == 0))


def _guess(name: str, values: pd.Series) -> str:
    """The kind of a column from its non-missing values (the rules in this module's docstring)."""
    if INDEX_HEADERS.match(str(name)):
        return "identifier"
    if values.nunique() == 1:
        return "constant"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime"
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        if values.map(lambda v: isinstance(v, str) and bool(DATE_TEXT.match(v))).all():
            return "datetime"
        return "identifier" if values.nunique() == len(values) >= 10 and not pd.api.types.is_bool_dtype(values) else "categorical"
    if _is_whole(values):
        return "categorical" if values.nunique() <= MAX_INTEGER_LEVELS else "integer"
    if values.nunique() <= MAX_INTEGER_LEVELS and len(values) >= FEW_VALUES_ROWS * values.nunique():
        return "categorical"  # coded levels such as fair's age 17.5, 22, 27: no density puts mass on them
    if values.min() > 0 and values.max() < 1:
        return "bounded"
    if values.min() == 0:
        return "nonnegative"  # zeros are an atom: a probability, and a density above
    return "positive" if values.min() > 0 else "real"  # a density on v > 0: samples cannot leave the support


def _datetimes(values: pd.Series) -> pd.Series:
    return values if pd.api.types.is_datetime64_any_dtype(values) else pd.to_datetime(values, errors="raise")


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Whole seconds since 1970-01-01 of datetimes, as float64 (any pandas time unit)."""
    return ((values - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).to_numpy(float)


def _column(name: str, values: pd.Series, kind: str, low: float | None, high: float | None, missing: int, dtype: str) -> Column:
    """The Column of a kind, with its levels, bounds or resolution; ValueError names what does not fit."""
    if kind == "categorical":
        levels = _levels(values)
        if len(levels) > MAX_LEVELS:
            raise ValueError(f"{len(levels)} levels (more than {MAX_LEVELS}): declare it identifier, or drop it")
        return Column(name, kind, levels, missing=missing, dtype=dtype)
    if kind in ("identifier", "constant"):
        return Column(name, kind, (_python(values.iloc[0]),) if kind == "constant" else (), missing=missing, dtype=dtype)
    if kind == "datetime":
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise ValueError(f"datetime needs dates (a datetime dtype or text such as 2024-01-31), found numbers such as {values.iloc[0]!r}")
        seconds = epoch_seconds(_datetimes(values))
        resolution = next((r for r in (86400, 3600, 60, 1) if np.all(seconds % r == 0)), 1)
        low = float(seconds.min() // resolution)  # the earliest date: units are counted from it
        return Column(name, kind, low=low, resolution=float(resolution), missing=missing, dtype="datetime64[ns]")
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise ValueError(f"{kind} needs numbers, found text such as {values.iloc[0]!r}")
    x = values.to_numpy(float)
    if kind == "positive" and x.min() <= 0:
        raise ValueError(f"positive, but its smallest value is {x.min():g}")
    if kind == "nonnegative":
        if x.min() < 0:
            raise ValueError(f"nonnegative, but its smallest value is {x.min():g}")
        above = x[x > 0]
        width = float(above.min()) / 2 if len(above) else 1.0  # the zeros' cell, below every positive value
        return Column(name, kind, resolution=width, missing=missing, dtype="float64")
    if kind == "bounded":
        low, high = (0.0, 1.0) if low is None else (low, high)
        if x.min() <= low or x.max() >= high:
            raise ValueError(f"bounded({low:g}, {high:g}), but values span [{x.min():g}, {x.max():g}]: the ends must lie outside the data")
    if kind == "integer":
        if not _is_whole(values):
            raise ValueError("integer, but some values are not whole numbers")
        low = 0.0 if x.min() >= 0 else None
    return Column(name, kind, low=low, high=high, missing=missing, dtype="int64" if kind == "integer" else "float64")


def infer_schema(df: pd.DataFrame, overrides: str | dict[str, str] | None = None) -> Schema:
    """The Schema of a DataFrame: each column's kind by the rules above unless `overrides` names it
    ({"price": "positive", "depth": "bounded(40,80)"} or "price:positive,depth:bounded(40,80)").
    Raises one FlowforgeError listing every column that cannot be modelled."""
    if not isinstance(df, pd.DataFrame):
        raise FlowforgeError(f"infer_schema needs a pandas DataFrame, got {type(df).__name__}")
    wanted = parse_overrides(overrides)
    problems = [f"{name!r}: no such column" for name in wanted if name not in df.columns]
    columns = []
    for name in df.columns:
        values = df[name].dropna()
        missing = int(len(df) - len(values))
        try:
            if values.empty:
                raise ValueError(f"all {len(df)} cells are missing: drop the column")
            kind, low, high = _kind_and_bounds(wanted[name]) if name in wanted else (_guess(name, values), None, None)
            columns.append(_column(str(name), values, kind, low, high, missing, str(df[name].dtype)))
        except (ValueError, TypeError) as error:
            problems.append(f"{name!r}: {error}")
    if problems:
        raise FlowforgeError("cannot model these columns:\n  " + "\n  ".join(problems))
    return Schema(columns)
