"""A new Agg-backed figure and a save that creates the folder: the two things every plot needs."""
from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110


def new_figure(width: float, height: float) -> Figure:
    """A figure of width x height inches drawn on an Agg canvas, with constrained layout."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: str | os.PathLike) -> Path:
    """Write the figure as an image (format from the suffix) and return the path; atomically, so
    a failed or killed draw leaves no half-written file."""
    from ..train.checkpoint import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format=path.suffix.lstrip(".").lower() or None, dpi=DPI))
    return path
