"""infer_schema: each column's kind from its values, with overrides; every bad column in one error.

Rules, in order (a column's non-missing values v):
    every cell blank                                                  -> ignored (left out)
    header "" / "Unnamed: N" / "rownames" (a saved pandas or R index)  -> identifier
    one distinct value                                                -> constant (left out)
    datetime dtype, or text that one of DATE_FORMATS reads in full    -> datetime
    text/boolean/category: distinct per row (>= 10 rows), or more than
        half the values distinct (>= 20 rows), or > MAX_LEVELS levels -> identifier (left out), else categorical
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
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import FlowforgeError
from .dates import calendar_of, epoch_seconds, to_units
from .schema import KINDS, Column, Schema

# Whole numbers with at most this many levels are categories: exact probabilities, where dequantised
# integers give a lower bound. Held-out NLL, seeds 0-2, categories vs dequantised integers: mtcars
# (cyl, vs, am, gear, carb) 21.67 vs 21.65 nats, airquality (Month) 21.73 vs 21.93.
MAX_INTEGER_LEVELS = 10
# Numbers that are not whole but take at most MAX_INTEGER_LEVELS values, each seen this many times on
# average, are coded levels too. fair (age, yrs_married, children): classifier AUC 0.995 -> see RESULTS.md.
FEW_VALUES_ROWS = 5
MAX_LEVELS = 200  # more text levels than this is rarely a category: inferred identifier (declaring it categorical is refused)
NEAR_UNIQUE = 0.5  # text with more distinct values than this share of its rows: most levels would be seen once
JUNK_SHARE = 0.02  # at most this share of a column's cells not numbers (or one): typos among numbers, noticed by name
INDEX_HEADERS = re.compile(r"^(|Unnamed: \d+|rownames|index)$")
# one format per column, the first that reads every cell: ISO 8601 (with or without a time), then
# month-first (US) before day-first where both read a column (every day <= 12), then the rest
DATE_FORMATS = ("ISO8601", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%Y/%m/%d", "%d.%m.%Y", "%m-%d-%Y", "%d-%m-%Y",
                "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M")
DATE_TEXT = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")  # what a date of those formats starts with
OVERRIDE = re.compile(r"\s*([^,]+?)\s*:\s*(\w+\s*\([^)]*\)|\w+)\s*(?:,|$)")  # a name may hold a colon: "Unnamed: 0"
DECLARED_FORMAT = re.compile(r"\s*datetime\s*\((.*)\)\s*", re.IGNORECASE)  # datetime(%d/%m/%Y): the format's case matters


def parse_overrides(overrides: str | dict[str, str] | None) -> dict[str, str]:
    """"price:positive,depth:bounded(40,80)" or a dict -> {column: kind text}."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return {str(k): str(v).strip() for k, v in overrides.items()}
    pairs = [(m.group(1), m.group(2)) for m in OVERRIDE.finditer(overrides)]
    parsed = dict(pairs)
    twice = sorted({name for name, _ in pairs if sum(n == name for n, _ in pairs) > 1})
    if twice:
        raise FlowforgeError(f"overrides {overrides!r}: {', '.join(map(repr, twice))} named more than once; give each column one kind")
    if not parsed and overrides.strip():
        raise FlowforgeError(f"overrides {overrides!r}: expected 'column:kind,...' e.g. 'price:positive,depth:bounded(40,80)'")
    return parsed


def _kind_and_bounds(text: str) -> tuple[str, float | None, float | None]:
    """'bounded(40, 80)' -> ('bounded', 40.0, 80.0); 'positive' -> ('positive', None, None);
    'datetime(%d/%m/%Y)' -> ('datetime', None, None) (its format: declared_format)."""
    if declared_format(text) is not None:
        return "datetime", None, None
    match = re.fullmatch(r"bounded\s*\(\s*([^,]+),\s*([^)]+)\)", text.strip().lower())
    if match:
        low, high = float(match.group(1)), float(match.group(2))
        if not low < high:
            raise ValueError(f"bounded({low:g}, {high:g}) needs low < high")
        return "bounded", low, high
    if text.strip().lower() not in KINDS or text.strip().lower() == "bounded":
        raise ValueError(f"unknown kind {text!r} (kinds: {', '.join(KINDS)}, with bounds as bounded(a,b))")
    return text.strip().lower(), None, None


def declared_format(text: str) -> str | None:
    """The strftime format of a 'datetime(FORMAT)' override (None for any other kind text)."""
    match = DECLARED_FORMAT.fullmatch(text)
    if match is None:
        return None
    if not match.group(1).strip():
        raise ValueError("datetime() needs a format, e.g. datetime(%d/%m/%Y)")
    return match.group(1).strip()


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


def date_format(values: pd.Series) -> str | None:
    """The first of DATE_FORMATS that reads every (non-missing) cell of a text column, or None."""
    if not values.map(lambda v: isinstance(v, str) and bool(DATE_TEXT.match(v))).all():
        return None
    return next((f for f in DATE_FORMATS if pd.to_datetime(values, format=f, errors="coerce").notna().all()), None)


def parse_dates(values: pd.Series, fmt: str | None) -> pd.Series:
    """Datetimes (time-zone free) of a column's cells, read in `fmt` and then as ISO 8601 (how
    flowforge writes sampled dates); NaT for blank cells and for cells neither reads."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values
    else:
        text = values.map(lambda v: v if isinstance(v, str) or v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v))
                          else str(v))
        dates = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce")
        again = dates.isna() & text.notna()
        if fmt not in (None, "ISO8601") and again.any():
            dates = dates.astype(object).where(~again, pd.to_datetime(text[again], format="ISO8601", errors="coerce"))
            dates = pd.to_datetime(dates)
    if getattr(dates.dtype, "tz", None) is not None:
        dates = dates.dt.tz_convert(None)
    return dates


def _text_kind(values: pd.Series) -> tuple[str, str]:
    """identifier or categorical for text, booleans or categories, and why identifier."""
    if pd.api.types.is_bool_dtype(values):
        return "categorical", ""
    distinct, rows = values.nunique(), len(values)
    if distinct == rows >= 10:
        return "identifier", f"{distinct} distinct values in {rows} rows"
    if distinct > MAX_LEVELS or (rows >= 20 and distinct > NEAR_UNIQUE * rows and distinct > MAX_INTEGER_LEVELS):
        return "identifier", f"{distinct} distinct values in {rows} rows, too many for a category; declare it categorical to model it"
    return "categorical", ""


def _guess(name: str, values: pd.Series) -> tuple[str, str]:
    """The kind of a column from its non-missing values (the rules in this module's docstring), and
    a note saying why when it is left out."""
    if INDEX_HEADERS.match(str(name)):
        return "identifier", ""
    if values.nunique() == 1:
        return "constant", ""
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime", ""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        if date_format(values):
            return "datetime", ""
        return _text_kind(values)
    return _numeric_kind(values), ""


def _junk_in_numbers(name: str, values: pd.Series, kind: str) -> str | None:
    """A notice when a few cells that are not numbers ('NA?', 'n/a') made a column of numbers
    categorical or an identifier; None otherwise."""
    if kind not in ("categorical", "identifier") or pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    junk = values[numbers.isna()]
    numbers = numbers.dropna()
    if not 0 < len(junk) <= max(1, JUNK_SHARE * len(values)) or numbers.nunique() < 2 or _numeric_kind(numbers) == "categorical":
        return None
    shown = ", ".join(f"{cell!r} (row {row})" for row, cell in list(junk.items())[:5]) + (", ..." if len(junk) > 5 else "")
    cells = "1 cell" if len(junk) == 1 else f"{len(junk)} cells"
    return (f"{name!r} is numeric except {cells}: {shown}; it is modelled as {kind}"
            f"{f' with {values.nunique()} levels' if kind == 'categorical' else ''}: blank or fix those cells to model it "
            f"as numbers, or declare it --columns '{name}:{kind}'")


def _numeric_kind(values: pd.Series) -> str:
    if _is_whole(values):
        return "categorical" if values.nunique() <= MAX_INTEGER_LEVELS else "integer"
    if values.nunique() <= MAX_INTEGER_LEVELS and len(values) >= FEW_VALUES_ROWS * values.nunique():
        return "categorical"  # coded levels such as fair's age 17.5, 22, 27: no density puts mass on them
    if values.min() > 0 and values.max() < 1:
        return "bounded"
    if values.min() == 0:
        return "nonnegative"  # zeros are an atom: a probability, and a density above
    return "positive" if values.min() > 0 else "real"  # a density on v > 0: samples cannot leave the support


def _column(name: str, values: pd.Series, kind: str, low: float | None, high: float | None, missing: int, dtype: str,
            note: str = "", fmt: str | None = None) -> Column:
    """The Column of a kind, with its levels, bounds or resolution; ValueError names what does not fit."""
    if kind == "categorical":
        levels = _levels(values)
        if len(levels) > MAX_LEVELS:
            raise ValueError(f"{len(levels)} levels (more than {MAX_LEVELS}): declare it identifier, or drop it")
        return Column(name, kind, levels, missing=missing, dtype=dtype)
    if kind == "constant":
        return Column(name, kind, (_python(values.iloc[0]),), missing=missing, dtype=dtype)
    if kind in ("identifier", "ignored"):
        if kind == "identifier" and _is_whole(values) and not pd.api.types.is_bool_dtype(values):
            return Column(name, kind, high=float(values.max()), missing=missing, dtype="int64", note=note)  # samples count on from it
        return Column(name, kind, missing=missing, dtype="object", note=note)
    if kind == "datetime":
        return _datetime_column(name, values, missing, fmt)
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


def _datetime_column(name: str, values: pd.Series, missing: int, declared: str | None = None) -> Column:
    """A datetime Column: the text format that reads every cell (`declared`, or the first of
    DATE_FORMATS), resolution and earliest date."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise ValueError(f"datetime needs dates (a datetime dtype or text such as 2024-01-31), found numbers such as {values.iloc[0]!r}")
    if declared is not None:
        check_format(values, declared)
    fmt = None if pd.api.types.is_datetime64_any_dtype(values) else declared or date_format(values)
    if fmt is None and not pd.api.types.is_datetime64_any_dtype(values):
        unread = values[pd.to_datetime(values, format="ISO8601", errors="coerce").isna()]
        raise ValueError(f"datetime, but no one format reads every cell (e.g. {unread.iloc[0]!r}); formats tried: "
                         f"{', '.join(DATE_FORMATS)}. Convert the column to one of them, or read it with pandas first")
    dates = parse_dates(values, fmt)
    calendar = calendar_of(dates)
    if calendar is not None:  # yearly or monthly data: counted in years or months
        return Column(name, "datetime", low=float(to_units(dates, calendar, 1.0).min()), resolution=1.0, missing=missing,
                      dtype="datetime64[ns]", format=fmt, calendar=calendar)
    seconds = epoch_seconds(dates)
    resolution = next((r for r in (86400, 3600, 60, 1) if np.all(seconds % r == 0)), 1)
    low = float(seconds.min() // resolution)  # the earliest date: units are counted from it
    return Column(name, "datetime", low=low, resolution=float(resolution), missing=missing, dtype="datetime64[ns]", format=fmt)


def check_format(values: pd.Series, fmt: str) -> None:
    """ValueError unless the strftime format `fmt` reads every (non-missing) text cell of `values`,
    naming the rows (the frame's index) of the cells it does not read."""
    if pd.api.types.is_datetime64_any_dtype(values):
        raise ValueError(f"datetime({fmt}): a format reads text, and this column holds dates already; declare it datetime")
    text = values.map(lambda v: v if isinstance(v, str) else str(v))
    try:
        dates = pd.to_datetime(text, format=fmt, errors="coerce")
    except ValueError as error:
        raise ValueError(f"datetime({fmt}): not a date format ({error})") from None
    unread = text[dates.isna()]
    if len(unread):
        cells = ", ".join(f"row {row}: {cell!r}" for row, cell in unread.head(5).items())
        raise ValueError(f"datetime({fmt}) does not read {len(unread)} of {len(text)} cells ({cells}{' ...' if len(unread) > 5 else ''})")


def declared_dates(schema: Schema, df: pd.DataFrame) -> Schema:
    """`schema` with each datetime column that names a text format read again from df in that format
    (its earliest date, resolution and calendar follow from the cells): a schema file can set a
    column's format by hand. One FlowforgeError names every cell a format does not read."""
    problems, columns = [], []
    for column in schema.columns:
        if column.kind == "datetime" and column.format and column.format != "ISO8601" and column.name in df.columns:
            values = df[column.name].dropna()
            try:
                column = _datetime_column(column.name, values, int(len(df) - len(values)), column.format)
            except ValueError as error:
                problems.append(f"{column.name!r}: {error}")
        columns.append(column)
    if problems:
        raise FlowforgeError("cannot model these columns:\n  " + "\n  ".join(problems))
    return Schema(columns)


def _blank_column(name: str, rows: int, wanted: str | None) -> Column:
    """An all-blank column is left out as `ignored`; declaring a kind it cannot have is an error saying how to proceed."""
    if wanted is not None and wanted.strip().lower() not in ("ignored", "identifier"):
        raise ValueError(f"all {rows} cells are missing: there is nothing to learn a {wanted.strip()} column from; "
                         "leave the override out (the column is then ignored) or fill the column")
    kind = wanted.strip().lower() if wanted else "ignored"
    return Column(name, kind, missing=rows, dtype="object", note=f"all {rows} cells are blank")


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
                columns.append(_blank_column(str(name), len(df), wanted.get(name)))
                continue
            kind, low, high = _kind_and_bounds(wanted[name]) if name in wanted else (None, None, None)
            note = ""
            if kind is None:
                kind, note = _guess(name, values)
                junk = _junk_in_numbers(str(name), values, kind)
                if junk:
                    warnings.warn(junk, UserWarning, stacklevel=2)
            fmt = declared_format(wanted[name]) if name in wanted else None
            columns.append(_column(str(name), values, kind, low, high, missing, str(df[name].dtype), note, fmt))
        except (ValueError, TypeError) as error:
            problems.append(f"{name!r}: {error}")
    if problems:
        raise FlowforgeError("cannot model these columns:\n  " + "\n  ".join(problems))
    return Schema(columns)
