"""Hand-made mixed tables for the tables tests: one column of every kind."""
from __future__ import annotations

import numpy as np
import pandas as pd


def mixed(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Every kind: identifier, real, positive, proportion, counts, text and integer categories,
    a boolean, a date and a constant; a few blank cells."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    df = pd.DataFrame({
        "Unnamed: 0": np.arange(n),
        "height": rng.normal(170, 10, n) + 5 * (colour == "red"),
        "price": rng.lognormal(3, 1, n),
        "share": rng.beta(2, 5, n),
        "visits": rng.poisson(30, n),
        "colour": colour,
        "doors": rng.choice([2, 4, 5], n),
        "member": rng.random(n) < 0.4,
        "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "country": "NL",
    })
    return df


def with_blanks(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.loc[out.index[:3], "height"] = np.nan
    out.loc[out.index[5:7], "colour"] = None
    return out
