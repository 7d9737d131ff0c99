"""What fit tells the user about a table, in the table's own words (column names, its rows):
columns left out, rows dropped for blank cells (loudly when most are), columns of few values."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import LEFT_OUT, Schema
from .support import is_dequantised

MOST_ROWS = 0.5  # dropping more than this share of the rows is said loudly, with what would keep them
FEW_VALUES = 50  # a continuous column with at most this many distinct values (and a tenth of the rows) piles density up


def left_out(schema: Schema) -> str | None:
    """'left out of the model: id (identifier), name (identifier: 311 distinct values in 406 rows ...)'."""
    names = [f"{c.name} ({c.kind}{': ' + c.note if c.note else ''})" for c in schema.of_kinds(LEFT_OUT)]
    return f"left out of the model: {', '.join(names)}" if names else None


def blank_cells(schema: Schema, df: pd.DataFrame) -> dict[str, int]:
    """Blank cells per column that drop a row: modelled columns, less categorical ones whose blank
    cells are a level of their own (missing="level")."""
    dropping = [c.name for c in schema.columns if c.kind not in LEFT_OUT and None not in c.levels and c.name in df.columns]
    return {name: int(n) for name, n in df[dropping].isna().sum().items() if n}


def blank_levels(schema: Schema, df: pd.DataFrame) -> dict[str, int]:
    """Blank cells per categorical column modelled as a level of their own (missing="level")."""
    return {c.name: int(df[c.name].isna().sum()) for c in schema.discrete if None in c.levels and df[c.name].isna().any()}


def _kept_without(df: pd.DataFrame, columns: list[str]) -> int:
    return int((~df[columns].isna().any(axis=1)).sum()) if columns else len(df)


def dropped(schema: Schema, df: pd.DataFrame, keep: np.ndarray, missing: str) -> str | None:
    """The notice for rows left out for blank cells; when most rows go, what would keep more."""
    if keep.all():
        return None
    counts = blank_cells(schema, df)
    if missing == "model":
        return _incomplete(schema, df, keep, counts)
    text = (f"missing={missing!r}: {int((~keep).sum())} of {len(df)} rows have blank cells and are left out "
            f"(blank cells per column: {counts})")
    if keep.mean() >= MOST_ROWS:
        return text
    hints = []
    numeric = [c.name for c in schema.continuous if c.name in counts]
    if missing == "drop" and any(c.name in counts for c in schema.discrete):
        hints.append(f"missing='level' (--missing level) makes blank categories a level and keeps {_kept_without(df, numeric)} rows")
    if numeric:
        blankest = max(numeric, key=counts.get)
        rest = [name for name in counts if name != blankest]
        hints.append(f"leaving out {blankest!r} ({counts[blankest]} blank; --columns '{blankest}:ignored') keeps "
                     f"{_kept_without(df, rest)}")
    return f"MOST ROWS DROPPED: only {int(keep.sum())} of {len(df)} rows are complete. " + text + (
        ". To keep more: " + "; ".join(hints) if hints else "")


def _incomplete(schema: Schema, df: pd.DataFrame, keep: np.ndarray, counts: dict[str, int]) -> str:
    """missing="model"'s notice: the rows with blank numeric cells are modelled, the flow learns from the complete ones."""
    text = (f"missing='model': {int((~keep).sum())} of {len(df)} rows have blank numeric cells (per column: {counts}): "
            f"which cells are blank is modelled with the categories on all {len(df)} rows; the flow of the numeric "
            f"columns learns from the {int(keep.sum())} complete rows")
    if keep.mean() >= MOST_ROWS or not counts:
        return text
    blankest = max(counts, key=counts.get)
    rest = [name for name in counts if name != blankest]
    return (f"MOST ROWS INCOMPLETE: only {int(keep.sum())} of {len(df)} rows are complete. " + text
            + f". Leaving out {blankest!r} ({counts[blankest]} blank; --columns '{blankest}:ignored') gives the flow "
            f"{_kept_without(df, rest)}")


def few_values(schema: Schema, x: np.ndarray) -> str | None:
    """Continuous columns (not dequantised) with so few distinct values in the training rows x that
    a density piles up on them; they are better declared categorical."""
    rows = len(x)
    limit = min(FEW_VALUES, rows // 10)
    few = [f"{c.name!r} ({len(np.unique(x[:, j]))} values)" for j, c in enumerate(schema.continuous)
           if not is_dequantised(c) and rows >= 20 and len(np.unique(x[:, j])) <= limit]
    if not few:
        return None
    return (f"{', '.join(few)} take few distinct values in {rows} training rows: a density piles up on them "
            "(the likelihood can grow without bound). Declare them categorical (--columns NAME:categorical).")
