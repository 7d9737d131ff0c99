"""Heat-map of a 2-D density evaluated on a grid."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .figure import new_figure, save
from .scatter import same_scale


def plot_density(xs: ArrayLike, ys: ArrayLike, log_prob: ArrayLike, path: str | os.PathLike, title: str = "model density p(x)",
                 names: tuple[str, str] = ("x0", "x1")) -> Path:
    """Show exp(log_prob) on the grid: xs (W,), ys (H,), log_prob (H, W) with rows along ys; axes
    named `names`, with equal aspect only where the two ranges are alike (scatter.same_scale)."""
    xs, ys, log_prob = np.asarray(xs, float), np.asarray(ys, float), np.asarray(log_prob, float)
    figure = new_figure(5.0, 4.2)
    axes = figure.add_subplot()
    image = axes.imshow(
        np.exp(log_prob), origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]), aspect="equal" if same_scale(np.array([[xs[0], xs[-1]], [ys[0], ys[-1]]])) else "auto", cmap="viridis", interpolation="bilinear"
    )
    figure.colorbar(image, ax=axes, shrink=0.85, label="p(x)")
    axes.set(title=title, xlabel=names[0], ylabel=names[1])
    return save(figure, path)
