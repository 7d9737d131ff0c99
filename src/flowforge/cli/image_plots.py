"""A finished image run's plots: training curve, samples by temperature, reconstructions, interpolations."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..flows import Flow
from ..train.history import History

TEMPERATURES = (0.5, 0.7, 0.85, 1.0)


@torch.no_grad()
def interpolate(flow: Flow, a: Tensor, b: Tensor, steps: int = 9) -> Tensor:
    """decode(cos(t pi/2) z_a + sin(t pi/2) z_b) for t in [0, 1]: from image a to image b.

    The spherical path keeps the latent norm typical (a straight line shrinks it midway,
    which gives washed-out, low-temperature images); the ends decode back to a and b exactly.
    """
    za, zb = flow.encode(a[None]), flow.encode(b[None])
    t = torch.linspace(0, 1, steps, dtype=za.dtype, device=za.device).reshape(-1, *[1] * (za.dim() - 1))
    return flow.decode(torch.cos(t * math.pi / 2) * za + torch.sin(t * math.pi / 2) * zb)


@torch.no_grad()
def write_image_plots(folder: Path, flow: Flow, history: History, test: np.ndarray, levels: int, seed: int = 0,
                      per_row: int = 12) -> list[Path]:
    """training_curve.png, samples.png (rows of TEMPERATURES), reconstructions.png, interpolation.png."""
    from .. import viz  # matplotlib loads only when plots are drawn
    from ..viz.images import plot_interpolations, plot_reconstructions, plot_samples_by_temperature

    flow.eval()
    paths = [viz.plot_training_curve(np.add(history.step, 1), history.train_nll, folder / "training_curve.png",
                                     history.val_step, history.val_nll)]
    torch.manual_seed(seed)
    samples = {t: flow.sample(per_row, temperature=t).numpy() for t in TEMPERATURES}
    paths.append(plot_samples_by_temperature(samples, levels, folder / "samples.png"))
    x = torch.from_numpy(test[:per_row])
    paths.append(plot_reconstructions(x.numpy(), flow.decode(flow.encode(x)).numpy(), levels, folder / "reconstructions.png"))
    pairs = [(2 * i, 2 * i + 1) for i in range(min(3, len(test) // 2))]
    if pairs:  # a test split of one image has no pair to interpolate between
        strips = [interpolate(flow, x[i], x[j]).numpy() for i, j in pairs]
        paths.append(plot_interpolations(strips, levels, folder / "interpolation.png"))
    return paths

