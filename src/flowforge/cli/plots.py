"""A finished table run's plots: training curve, samples against the test split, 2-D density."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..flows import Flow
from ..train.history import History


def write_plots(folder: Path, flow: Flow, history: History, test: np.ndarray, seed: int = 0, context: np.ndarray | None = None,
                names: list[str] | None = None) -> list[Path]:
    """training_curve.png, samples.png (model samples vs the test split) and, for unconditional 2-D data, density.png,
    with axes named by the table's column `names` where it has a header.

    A conditional model draws one sample at the context of each plotted test row (`context`, one per row of `test`).
    """
    from .. import viz  # matplotlib loads only when plots are drawn

    paths = [viz.plot_training_curve(np.add(history.step, 1), history.train_nll, folder / "training_curve.png",
                                     history.val_step, history.val_nll)]
    torch.manual_seed(seed)
    m = min(len(test), 2000)
    samples = flow.sample(m, context=torch.from_numpy(context[:m]) if context is not None else None).numpy()
    samples = samples[np.isfinite(samples).all(1)]
    paths.append(viz.plot_samples(test if context is None else test[:m], samples, folder / "samples.png", seed=seed,
                                   names=names))
    if test.shape[1] == 2 and context is None:
        xs, ys, log_prob = density_grid(flow, test)
        paths.append(viz.plot_density(xs, ys, log_prob, folder / "density.png", names=tuple(names) if names and len(names) == 2 else ("x0", "x1")))
    return paths


@torch.no_grad()
def density_grid(flow: Flow, x: np.ndarray, size: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log p on a size x size grid covering the data (0.5-99.5% range, padded 15%): xs, ys, (H, W)."""
    low, high = np.quantile(x.astype(np.float64), [0.005, 0.995], axis=0)  # float64: padding huge values overflows float32
    pad = 0.15 * (high - low)
    top = float(np.finfo(np.float32).max)
    xs, ys = (np.linspace(*np.clip([low[i] - pad[i], high[i] + pad[i]], -top, top), size) for i in range(2))
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    log_prob = torch.cat([flow.log_prob(part) for part in torch.from_numpy(grid).float().split(8192)])
    return xs, ys, log_prob.reshape(size, size).numpy()
