"""Samples against data: side-by-side scatter for 2-D, a pairs plot of a few dimensions above."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .figure import new_figure, save


def _subsample(x: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= max_points else x[rng.choice(len(x), max_points, replace=False)]


def _limits(x: np.ndarray) -> np.ndarray:
    """(D, 2) axis limits: the data's 0.5-99.5% range, padded 10%, so outlying samples do not rescale."""
    low, high = np.quantile(x.astype(np.float64), [0.005, 0.995], axis=0)  # float64: padding huge values overflows float32
    pad = 0.1 * np.maximum(high - low, 1e-6 * np.maximum(1.0, np.maximum(abs(low), abs(high))))  # a constant column too
    return np.stack([low - pad, high + pad], axis=1)


SAME_SCALE = 3.0  # two columns whose ranges differ by less than this factor share one scale (equal axes)


def same_scale(limits: np.ndarray) -> bool:
    """Whether two axes' ranges are close enough to draw with equal aspect (x and y in one unit);
    otherwise each axis gets its own scale, so that the data fills the panel."""
    ratio = np.ptp(limits[1]) / np.ptp(limits[0])
    return bool(1 / SAME_SCALE <= ratio <= SAME_SCALE)


def _side_by_side(data: np.ndarray, samples: np.ndarray, path: str | os.PathLike, names: list[str]) -> Path:
    limits = _limits(data)
    equal = same_scale(limits)
    aspect = np.clip(np.ptp(limits[1]) / np.ptp(limits[0]), 0.4, 1.5) if equal else 1.0  # panel height / width
    figure = new_figure(8.0, 3.4 * aspect + 0.9)
    for i, (x, title, color) in enumerate([(data, "data (test split)", "tab:blue"), (samples, "model samples", "tab:orange")]):
        axes = figure.add_subplot(1, 2, i + 1)
        axes.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, color=color, linewidths=0)
        axes.set(xlim=limits[0], ylim=limits[1], title=title, xlabel=names[0], ylabel=names[1])
        axes.set_aspect("equal" if equal else "auto", adjustable="box")
    return save(figure, path)


def _pairs(data: np.ndarray, samples: np.ndarray, path: str | os.PathLike, dims: int, names: list[str]) -> Path:
    chosen = np.arange(min(dims, data.shape[1]))  # the table's first columns: by name, in its order
    k = len(chosen)
    limits = _limits(data)
    figure = new_figure(2.2 * k + 0.6, 2.2 * k)
    if k < data.shape[1]:
        figure.suptitle(f"the first {k} of {data.shape[1]} columns", fontsize=9)
    for row, i in enumerate(chosen):
        for col, j in enumerate(chosen):
            axes = figure.add_subplot(k, k, row * k + col + 1)
            if i == j:
                bins = np.linspace(*limits[i], 40)
                with np.errstate(divide="ignore", invalid="ignore"):  # no sample inside the limits: an empty histogram
                    axes.hist(data[:, i], bins=bins, density=True, alpha=0.5, color="tab:blue", label="data (test split)")
                    axes.hist(samples[:, i], bins=bins, density=True, alpha=0.5, color="tab:orange", label="model samples")
            else:
                axes.scatter(data[:, j], data[:, i], s=3, alpha=0.4, color="tab:blue", linewidths=0)
                axes.scatter(samples[:, j], samples[:, i], s=3, alpha=0.4, color="tab:orange", linewidths=0)
                axes.set_ylim(limits[i])
            axes.set_xlim(limits[j])
            axes.tick_params(labelsize=7)
            if row == k - 1:
                axes.set_xlabel(names[j], fontsize=8)
            if col == 0:
                axes.set_ylabel(names[i] if i != j else "density", fontsize=8)
    figure.axes[0].legend(fontsize=7, loc="upper left")
    return save(figure, path)


def plot_samples(data: ArrayLike, samples: ArrayLike, path: str | os.PathLike, max_points: int = 2000, dims: int = 4, seed: int = 0,
                 names: list[str] | None = None) -> Path:
    """Compare model samples with data, both (N, D) arrays, at most `max_points` of each; axes
    named by `names` (one per column; x0, x1, ... without) on each column's own range.

    D = 2: data and samples side by side on the same axes (equal aspect where the two columns'
    ranges are alike). Otherwise: a pairs plot of the first `dims` columns, scatter off the
    diagonal and histogram overlays on it.
    """
    rng = np.random.default_rng(seed)
    data = _subsample(np.asarray(data, float), max_points, rng)
    samples = _subsample(np.asarray(samples, float), max_points, rng)
    names = [str(n) for n in names] if names is not None and len(names) == data.shape[1] else [f"x{j}" for j in range(data.shape[1])]
    if data.shape[1] == 2:
        return _side_by_side(data, samples, path, names)
    return _pairs(data, samples, path, dims, names)
