"""Training curves: per-step train NLL, a smoothed version of it, and validation NLL."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .figure import new_figure, save


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last `window` values (fewer at the start), same length as values."""
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def plot_training_curve(
    steps: ArrayLike,
    train_nll: ArrayLike,
    path: str | os.PathLike,
    val_steps: ArrayLike = (),
    val_nll: ArrayLike = (),
    title: str | None = None,
) -> Path:
    """Plot train NLL per step (faint), its moving average (window ~2% of the run) and val NLL.

    The y-axis is cut at the 95th percentile so the first few (large) losses do not flatten
    the part of the curve that matters.
    """
    steps, train_nll = np.asarray(steps, float), np.asarray(train_nll, float)
    val_steps, val_nll = np.asarray(val_steps, float), np.asarray(val_nll, float)
    smoothed = moving_average(train_nll, max(1, len(train_nll) // 50))
    figure = new_figure(6.4, 4.0)
    axes = figure.add_subplot()
    axes.plot(steps, train_nll, color="tab:blue", alpha=0.25, linewidth=0.8, label="train NLL (per step)")
    axes.plot(steps, smoothed, color="tab:blue", linewidth=1.8, label="train NLL (smoothed)")
    if len(val_nll):
        axes.plot(val_steps, val_nll, "o-", color="tab:orange", markersize=3, linewidth=1.2, label="validation NLL")
    shown = np.concatenate([smoothed, val_nll])
    if len(shown):
        low, high = float(shown.min()), float(np.quantile(shown, 0.95))
        pad = 0.1 * (high - low) or 0.1
        axes.set_ylim(low - pad, high + pad)
    axes.set_xlabel("step")
    axes.set_ylabel("NLL (nats)")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right")
    if title:
        axes.set_title(title, fontsize=9)
    return save(figure, path)
