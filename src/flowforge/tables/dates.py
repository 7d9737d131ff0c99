"""Dates as whole units after a column's earliest training date: seconds, minutes, hours or days,
or calendar years and months where every date is 1 January (yearly data), the 1st (monthly) or a
month's last day (monthly data stamped at month ends). Sampled dates are of the same kind as the
data's: a yearly column samples 1 January of a year, never 1978-05-10."""
from __future__ import annotations

import numpy as np
import pandas as pd

CALENDARS = {"year": "yearly dates (1 January)", "month": "monthly dates (the 1st)", "month-end": "monthly dates (month ends)"}


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Whole seconds since 1970-01-01 of datetimes, as float64 (any pandas time unit); NaN for NaT."""
    return ((values - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).to_numpy(float)


def calendar_of(dates: pd.Series) -> str | None:
    """'year', 'month' or 'month-end' when every (non-missing) date is one, at midnight; else None."""
    d = dates.dropna()
    if d.empty or not (d == d.dt.normalize()).all():
        return None
    if ((d.dt.month == 1) & (d.dt.day == 1)).all():
        return "year"
    if (d.dt.day == 1).all():
        return "month"
    if d.dt.is_month_end.all():
        return "month-end"
    return None


def to_units(dates: pd.Series, calendar: str | None, resolution: float) -> np.ndarray:
    """Dates as counts of `resolution` seconds since 1970, or of calendar years or months since
    year 0; NaN for NaT. A date that is not of the calendar's kind (a mid-year date in a yearly
    column) gets a fraction, which no whole-number support holds: its row scores -inf."""
    if calendar is None:
        return epoch_seconds(dates) / resolution
    midnight = (dates == dates.dt.normalize()).to_numpy()
    years = dates.dt.year.to_numpy(float)
    if calendar == "year":
        exact = midnight & (dates.dt.month == 1).to_numpy() & (dates.dt.day == 1).to_numpy()
        units = years
    else:
        units = years * 12 + dates.dt.month.to_numpy(float) - 1
        exact = midnight & (dates.dt.day == 1 if calendar == "month" else dates.dt.is_month_end).to_numpy()
    return np.where(exact | np.isnan(units), units, units + 0.5)


def from_units(units: np.ndarray, calendar: str | None, resolution: float) -> pd.Series:
    """The inverse of to_units on whole numbers: datetime64 dates."""
    units = np.asarray(units, dtype=float)
    if calendar is None:
        return pd.Series(pd.to_datetime(units * resolution, unit="s"))
    if calendar == "year":
        return pd.Series(pd.to_datetime(pd.DataFrame({"year": units, "month": 1, "day": 1})))
    first = pd.to_datetime(pd.DataFrame({"year": units // 12, "month": units % 12 + 1, "day": 1}))
    return pd.Series(first + pd.offsets.MonthEnd(0) if calendar == "month-end" else first)
