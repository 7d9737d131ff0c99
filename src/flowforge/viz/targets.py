"""Plots of a target fit: samples over the target's contours (2-D), and ESS and log Z over training."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .figure import new_figure, save


def plot_target_samples(xs: ArrayLike, ys: ArrayLike, log_density: ArrayLike, samples: ArrayLike,
                        path: str | os.PathLike, title: str = "flow samples over the target") -> Path:
    """Contours of the target's log p~ on the grid (xs (W,), ys (H,), log_density (H, W)) with samples (N, 2) on top."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    log_density, samples = np.asarray(log_density, float), np.asarray(samples, float)
    figure = new_figure(5.0, 4.6)
    axes = figure.add_subplot()
    finite = np.where(np.isfinite(log_density), log_density, np.nan)
    top = np.nanmax(finite)
    axes.contourf(xs, ys, np.exp(finite - top), levels=12, cmap="Blues")  # p~ / max p~: the shape, any normaliser
    axes.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:orange", alpha=0.5, linewidths=0)
    axes.set(title=title, xlabel="x0", ylabel="x1", xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]))
    return save(figure, path)


def plot_importance_curves(steps: ArrayLike, ess: ArrayLike, log_z: ArrayLike, log_z_stderr: ArrayLike,
                           path: str | os.PathLike, true_log_z: float | None = None) -> Path:
    """ESS (fraction) and the log Z estimate with +-2 standard errors at each evaluation."""
    steps, ess = np.asarray(steps, float), np.asarray(ess, float)
    log_z, stderr = np.asarray(log_z, float), np.asarray(log_z_stderr, float)
    figure = new_figure(8.0, 3.4)
    left, right = figure.subplots(1, 2)
    left.plot(steps, ess, marker=".")
    left.set(title="effective sample size", xlabel="step", ylabel="ESS / samples", ylim=(0, 1.02))
    shown = np.isfinite(log_z)
    right.plot(steps[shown], log_z[shown], marker=".", label="estimate")
    band = shown & np.isfinite(stderr)
    right.fill_between(steps[band], (log_z - 2 * stderr)[band], (log_z + 2 * stderr)[band], alpha=0.25, label="+-2 s.e.")
    if true_log_z is not None:
        right.axhline(true_log_z, color="black", linestyle="--", linewidth=1, label="true log Z")
    right.set(title="log Z", xlabel="step")
    right.legend(loc="best", fontsize="small")
    return save(figure, path)
