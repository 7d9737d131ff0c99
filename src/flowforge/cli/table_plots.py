"""A table run's plots in RUN/plots/, every axis named by its column and on the data's own scale:

    marginals.png       each modelled column, the table's rows against model samples: histograms
                        for numbers (a log axis for a positive column or a count spanning more than LOG_SPAN,
                        one bin per whole number for counts, dates as dates), bars of level shares
                        for categories
    pairs.png           the PAIRS continuous columns most rank-correlated with another (named in
                        its title), data against samples
    training_curve.png  the flow's training and validation NLL (of the continuous columns after
                        their support maps, given the categories)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..tables import Column, TableFlow
from ..tables.infer import parse_dates
from ..tables.schema import CONTINUOUS, DISCRETE

PLOT_SAMPLES = 2000
PAIRS = 4
LOG_SPAN = 100.0  # a positive column whose 99.5% and 0.5% quantiles differ by more than this factor gets a log axis


def write_table_plots(folder: Path, model: TableFlow, data: pd.DataFrame, seed: int = 0) -> list[Path]:
    """Draw the plots of a fitted TableFlow against the table `data` (the rows it modelled)."""
    from .. import viz  # matplotlib loads only when plots are drawn

    samples = model.sample(PLOT_SAMPLES, seed=seed)
    columns = [c for c in model.schema.columns if c.kind in CONTINUOUS + DISCRETE]
    hows = {c.name: how_to_draw(c, data) for c in columns}
    marginals = [(c.name, hows[c.name], values_of(data, c), values_of(samples, c)) for c in columns]
    paths = [viz.plot_marginals(marginals, folder / "marginals.png",
                                title=f"each column: the table's {len(data)} rows against {len(samples)} model samples")]
    chosen, title = most_informative([c for c in columns if c.kind in CONTINUOUS], data)
    if len(chosen) >= 2:
        paths.append(viz.plot_pairs([values_of(data, c) for c in chosen], [values_of(samples, c) for c in chosen],
                                    [c.name for c in chosen], [hows[c.name] for c in chosen], folder / "pairs.png", title, seed=seed))
    history = getattr(model, "history", None)
    if history is not None and history.step:
        paths.append(viz.plot_training_curve(np.add(history.step, 1), history.train_nll, folder / "training_curve.png",
                                             history.val_step, history.val_nll,
                                             title="the flow's NLL: continuous columns after their support maps, given the categories"))
    return paths


def how_to_draw(column: Column, data: pd.DataFrame) -> str:
    """viz.tables' way to draw a column: categorical, date, integer, log (a positive column spanning
    decades) or real."""
    if column.kind in DISCRETE:
        return "categorical"
    if column.kind == "datetime":
        return "date"
    if column.kind in ("positive", "integer"):
        x = values_of(data, column)
        x = x[np.isfinite(x)]
        if len(x) and x.min() > 0 and np.divide(*np.quantile(x, [0.995, 0.005])) > LOG_SPAN:
            return "log"  # amounts spanning decades (prices, incomes): their shape shows on a log axis
    return "integer" if column.kind == "integer" else "real"


def values_of(df: pd.DataFrame, column: Column) -> np.ndarray:
    """A column's cells for plotting: level labels (text) for a category, datetime64 for dates, float64 otherwise."""
    values = df[column.name]
    if column.kind in DISCRETE:
        return np.array([_label(v) for v in values], dtype=object)
    if column.kind == "datetime":
        return parse_dates(values, column.format).to_numpy("datetime64[ns]")
    return pd.to_numeric(values, errors="coerce").to_numpy(float)


def _label(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "(blank)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 2.0 in a column read with blanks, 2 in samples: one level
    return str(value)


def most_informative(columns: list[Column], data: pd.DataFrame, k: int = PAIRS) -> tuple[list[Column], str]:
    """The `k` continuous columns with the strongest rank (Spearman) correlation to another one, in
    the table's order, and a title that names the choice."""
    if len(columns) <= k:
        return columns, f"the table's {len(columns)} continuous columns" if len(columns) > 1 else ""
    numbers = pd.DataFrame({c.name: _as_float(values_of(data, c)) for c in columns})
    rho = numbers.corr(method="spearman").abs().to_numpy(copy=True)
    np.fill_diagonal(rho, np.nan)
    with np.errstate(all="ignore"):
        strength = np.nan_to_num(np.nanmax(rho, axis=1), nan=0.0) if len(rho) else np.zeros(0)
    chosen = sorted(np.argsort(-strength, kind="stable")[:k])
    return [columns[i] for i in chosen], (f"the {k} of {len(columns)} continuous columns most rank-correlated with another "
                                          f"(|Spearman| {', '.join(f'{strength[i]:.2f}' for i in chosen)})")


def _as_float(values: np.ndarray) -> np.ndarray:
    if np.issubdtype(values.dtype, np.datetime64):
        return np.where(np.isnat(values), np.nan, values.astype("int64").astype(float))
    return values.astype(float)
