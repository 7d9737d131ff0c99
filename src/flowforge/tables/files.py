"""Tables on disk through pandas: CSV (blank cells read as missing) and Parquet (the `parquet` extra);
empty or whitespace-only text cells are missing in every format."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import FlowforgeError

READERS = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"), ".parquet": pd.read_parquet}


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise FlowforgeError(f"{path}: unknown table format {suffix!r}; use {', '.join(READERS)}")
    return suffix


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """A DataFrame from a .csv, .tsv or .parquet file, optionally only `columns` (named errors for
    a missing file, a missing column, or Parquet without pyarrow)."""
    path = Path(path)
    suffix = _format(path)
    if not path.is_file():
        raise FlowforgeError(f"{path}: no such file")
    try:
        df = READERS[suffix](path)
    except ImportError as error:
        raise FlowforgeError(f"{path}: reading Parquet needs pyarrow: pip install 'flowforge[parquet]' ({error})") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise FlowforgeError(f"{path}: not a readable {suffix[1:]} table ({str(error).splitlines()[0]})") from None
    df = _blank_text(df)
    if columns:
        absent = [c for c in columns if c not in df.columns]
        if absent:
            raise FlowforgeError(f"{path}: no columns {absent}; it has {list(df.columns)}")
        df = df[columns]
    return df


def _blank_text(df: pd.DataFrame) -> pd.DataFrame:
    """Empty and whitespace-only text cells as missing, in every format: CSV reads an empty cell as
    missing, Parquet keeps it as "" (which would be a level of its own)."""
    for name in df.columns:
        column = df[name]
        if column.dtype == object or pd.api.types.is_string_dtype(column):
            blank = column.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
            if blank.any():
                df[name] = column.mask(blank)
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write df as .csv/.tsv (no index column, ISO dates) or .parquet, by the file's suffix."""
    path = Path(path)
    suffix = _format(path)
    if suffix == ".parquet":
        try:
            df.to_parquet(path, index=False)
        except ImportError as error:
            raise FlowforgeError(f"{path}: writing Parquet needs pyarrow: pip install 'flowforge[parquet]' ({error})") from None
    else:
        df.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    return path
