"""Image figures: labelled rows of images (samples by temperature, reconstructions, interpolations)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .figure import new_figure, save


def tile(images: ArrayLike, levels: int) -> np.ndarray:
    """(N, C, H, W) pixel levels -> one (H, N * (W + 1) - 1, C) strip in [0, 1], 1-pixel white gaps."""
    x = np.clip(np.asarray(images, dtype=np.float32) / (levels - 1), 0, 1)
    n, c, h, w = x.shape
    strip = np.ones((h, n * (w + 1) - 1, c), dtype=np.float32)
    for i in range(n):
        strip[:, i * (w + 1) : i * (w + 1) + w] = x[i].transpose(1, 2, 0)
    return strip


def plot_image_rows(rows: Sequence[tuple[str, ArrayLike]], levels: int, path: str | os.PathLike, title: str | None = None) -> Path:
    """One labelled row per (label, (N, C, H, W) images): colour from the first three channels
    (RGB, or RGBA without its alpha); grey from the first channel of one or two."""
    strips = [(label, tile(images, levels)) for label, images in rows]
    height, width = strips[0][1].shape[:2]
    figure = new_figure(min(1.2 + width / 12, 16), 0.4 + len(strips) * max(height / 12, 0.8))
    for i, (label, strip) in enumerate(strips):
        axes = figure.add_subplot(len(strips), 1, i + 1)
        grey = strip.shape[2] < 3
        axes.imshow(strip[..., 0] if grey else strip[..., :3], cmap="gray" if grey else None, vmin=0, vmax=1,
                    interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        figure.suptitle(title)
    return save(figure, path)


def plot_samples_by_temperature(samples: dict[float, ArrayLike], levels: int, path: str | os.PathLike) -> Path:
    """A row of samples for each temperature T (latents scaled by T; lower T: smoother, less varied)."""
    return plot_image_rows([(f"T = {t:g}", x) for t, x in samples.items()], levels, path, "samples by temperature")


def plot_reconstructions(data: ArrayLike, reconstructions: ArrayLike, levels: int, path: str | os.PathLike) -> Path:
    """Test images above their decode(encode(x)); a flow reconstructs exactly, so the rows match."""
    return plot_image_rows([("data", data), ("decode(encode)", reconstructions)], levels, path, "reconstructions")


def plot_interpolations(strips: Sequence[ArrayLike], levels: int, path: str | os.PathLike) -> Path:
    """Rows of latent interpolations, each from one test image (left) to another (right)."""
    return plot_image_rows([(f"pair {i + 1}", s) for i, s in enumerate(strips)], levels, path, "latent interpolation")
