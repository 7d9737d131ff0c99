"""A mixed table's plots: each column's marginal, data against samples, and a pairs plot of a few
continuous columns, every axis named by its column and on the data's own scale (a log axis for a
positive column spanning decades, dates as dates, counts in whole-number bins, categories as bars)."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ..data.text import is_number
from .figure import new_figure, save

HOW = ("real", "log", "integer", "date", "categorical")  # how a column is drawn
DATA, SAMPLES = ("tab:blue", "data"), ("tab:orange", "model samples")
MAX_BARS = 12  # the most frequent levels shown; the rest are one bar, "other"
BINS = 40


def _numbers(values: ArrayLike, how: str) -> np.ndarray:
    """A column's finite values as float64 (see _as_numbers)."""
    x = _as_numbers(values, how)
    return x[np.isfinite(x)]


def _range(data: np.ndarray) -> tuple[float, float]:
    """The data's 0.5-99.5% range padded 5% (never empty), so a few outlying samples do not squash it."""
    low, high = np.quantile(data, [0.005, 0.995]) if len(data) else (0.0, 1.0)
    pad = 0.05 * (high - low) or max(1e-6, 1e-3 * abs(low)) or 1.0
    return float(low - pad), float(high + pad)


def _bins(data: np.ndarray, how: str) -> np.ndarray:
    low, high = _range(data)
    if how == "integer" and high - low <= 2 * BINS:  # one bin per whole number
        return np.arange(math.floor(low) - 0.5, math.ceil(high) + 1.0)
    return np.linspace(low, high, BINS + 1)


def _log_ticks(axes, which: str) -> None:
    """Label a log10 axis with the values themselves (1, 10, 100 ...)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis = axes.xaxis if which == "x" else axes.yaxis
    axis.set_major_locator(MaxNLocator(nbins=5, integer=True))  # whole powers of ten
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{10 ** v:g}"))


def _date_ticks(axes, which: str) -> None:
    from matplotlib import dates

    axis = axes.xaxis if which == "x" else axes.yaxis
    locator = dates.AutoDateLocator(maxticks=4)
    axis.set_major_locator(locator)
    axis.set_major_formatter(dates.ConciseDateFormatter(locator))


def _scale(axes, which: str, how: str) -> None:
    if how == "log":
        _log_ticks(axes, which)
    elif how == "date":
        _date_ticks(axes, which)


def _histogram(axes, name: str, how: str, data: ArrayLike, samples: ArrayLike) -> None:
    x, s = _numbers(data, how), _numbers(samples, how)
    bins = _bins(x, how)
    with np.errstate(divide="ignore", invalid="ignore"):
        for values, (color, label) in ((x, DATA), (s, SAMPLES)):
            axes.hist(values, bins=bins, density=True, alpha=0.5, color=color, label=label)
    axes.set_xlim(bins[0], bins[-1])
    _scale(axes, "x", how)
    axes.set_xlabel(f"{name} (log scale)" if how == "log" else name, fontsize=8)
    axes.set_yticks([])


def _bars(axes, name: str, data: Sequence[str], samples: Sequence[str]) -> None:
    """Side-by-side bars of each level's share in the data and the samples: numbers in order, text
    levels most frequent first."""
    levels, counts = np.unique(np.asarray(data, dtype=str), return_counts=True)
    order = [str(v) for v in levels[np.argsort(-counts, kind="stable")]]
    if len(order) <= MAX_BARS and all(is_number(v) for v in order):
        order.sort(key=float)
    shown = order[:MAX_BARS] if len(order) <= MAX_BARS + 1 else order[: MAX_BARS - 1]
    labels = shown + ([f"other ({len(order) - len(shown)})"] if len(shown) < len(order) else [])
    position = np.arange(len(labels))
    for offset, values, (color, label) in ((-0.2, data, DATA), (0.2, samples, SAMPLES)):
        values = np.asarray(values, dtype=str)
        share = np.array([np.mean(values == v) if len(values) else 0.0 for v in shown])
        if len(labels) > len(shown):
            share = np.append(share, np.mean(~np.isin(values, shown)) if len(values) else 0.0)
        axes.bar(position + offset, share, width=0.4, color=color, alpha=0.7, label=label)
    axes.set_xticks(position, labels, rotation=45 if max(map(len, labels)) > 3 else 0, ha="right" if max(map(len, labels)) > 3 else "center",
                    fontsize=7)
    axes.set_xlabel(name, fontsize=8)
    axes.set_ylabel("share of rows", fontsize=7)


def plot_marginals(columns: Sequence[tuple[str, str, ArrayLike, ArrayLike]], path: str | os.PathLike,
                   title: str = "each column: data against model samples") -> Path:
    """One panel per (name, how, data, samples) column, `how` one of HOW: histograms (density) for
    numbers, bars of level shares for categories (data: text labels)."""
    n = len(columns)
    cols = min(4, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    figure = new_figure(3.0 * cols, 2.4 * rows + 0.4)
    figure.suptitle(title, fontsize=10)
    for i, (name, how, data, samples) in enumerate(columns):
        if how not in HOW:
            raise ValueError(f"{name}: unknown way to draw {how!r} (one of {HOW})")
        axes = figure.add_subplot(rows, cols, i + 1)
        if how == "categorical":
            _bars(axes, name, data, samples)
        else:
            _histogram(axes, name, how, data, samples)
        axes.tick_params(labelsize=7)
        if i == 0:
            axes.legend(fontsize=7, loc="best")
    return save(figure, path)


def plot_pairs(data: Sequence[ArrayLike], samples: Sequence[ArrayLike], names: Sequence[str], hows: Sequence[str],
               path: str | os.PathLike, title: str = "", max_points: int = 2000, seed: int = 0) -> Path:
    """A pairs plot of k columns (data[j], samples[j]: the rows' values of column j; hows[j] "real",
    "log", "integer" or "date"): data against samples in scatter panels off the diagonal, histograms
    on it, each axis named and on its column's own range."""
    rng = np.random.default_rng(seed)
    k = len(names)

    def table(columns: Sequence[ArrayLike]) -> np.ndarray:
        x = np.stack([_as_numbers(c, how) for c, how in zip(columns, hows)], axis=1)
        x = x[np.isfinite(x).all(1)]
        return x if len(x) <= max_points else x[rng.choice(len(x), max_points, replace=False)]

    x, s = table(data), table(samples)
    s = s[: max(len(x), 1)]  # as many samples as data points (independent draws: the first are a random subset), drawn first: neither cloud hides the other
    limits = [_range(x[:, j]) for j in range(k)]
    figure = new_figure(2.3 * k + 0.4, 2.3 * k + 0.4)
    if title:
        figure.suptitle(title, fontsize=9)
    for row in range(k):
        for col in range(k):
            axes = figure.add_subplot(k, k, row * k + col + 1)
            if row == col:
                bins = _bins(x[:, row], hows[row])
                with np.errstate(divide="ignore", invalid="ignore"):
                    for values, (color, label) in ((x[:, row], DATA), (s[:, row], SAMPLES)):
                        axes.hist(values, bins=bins, density=True, alpha=0.5, color=color, label=label)
                axes.set_yticks([])
            else:
                for values, (color, label) in ((s, SAMPLES), (x, DATA)):
                    axes.scatter(values[:, col], values[:, row], s=3, alpha=0.4, color=color, linewidths=0, label=label)
                axes.set_ylim(limits[row])
                _scale(axes, "y", hows[row])
            axes.set_xlim(limits[col])
            _scale(axes, "x", hows[col])
            axes.tick_params(labelsize=6)
            if row == k - 1:
                axes.set_xlabel(names[col] + (" (log)" if hows[col] == "log" else ""), fontsize=8)
            if col == 0 and row != col:
                axes.set_ylabel(names[row] + (" (log)" if hows[row] == "log" else ""), fontsize=8)
    figure.axes[0].legend(fontsize=7, loc="upper left")
    return save(figure, path)


def _as_numbers(values: ArrayLike, how: str) -> np.ndarray:
    """A column's values as float64 in row order (NaN where blank): dates as date numbers, log columns as log10."""
    if how == "date":
        from matplotlib import dates

        values = np.asarray(values, dtype="datetime64[ns]")
        out = np.full(len(values), np.nan)
        ok = ~np.isnat(values)
        out[ok] = dates.date2num(values[ok])
        return out
    x = np.asarray(values, dtype=float)
    if how == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, np.log10(x), np.nan)
    return x
