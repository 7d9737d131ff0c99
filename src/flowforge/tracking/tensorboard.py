"""TensorBoardTracker: a fit callback writing TensorBoard event files (needs the `tracking` extra)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import FlowforgeError
from .tracker import Tracker


class TensorBoardTracker(Tracker):
    """Scalars `train/nll`, `val/nll`, `train/lr`, `train/grad_norm`, `train/grad_norm_max`,
    `speed/steps_per_second`, `speed/rows_per_second` at each evaluation; at the end `final/<metric>`,
    the config as text (`config`) and hyperparameters, and each plot as an image `plots/<name>`.

    Example:
        >>> import tempfile, torch, flowforge
        >>> from flowforge.tracking import TensorBoardTracker
        >>> with TensorBoardTracker(tempfile.mkdtemp()) as tracker:  # doctest: +SKIP
        ...     flowforge.fit(flowforge.MAF(2, layers=1, hidden=(8,)), torch.randn(256, 2), steps=20, callback=tracker)
    """

    def __init__(self, log_dir: str | os.PathLike, batch_size: int | None = None, every: int = 50) -> None:
        super().__init__(batch_size, every)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise FlowforgeError("--log tensorboard needs the tensorboard package: pip install 'flowforge[tracking]'") from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(_TAGS.get(name, name), value, step)
        self.writer.flush()

    def _finish(self, metrics: dict[str, float] | None, config: dict[str, Any] | None, plots: list[Path]) -> None:
        for name, value in (metrics or {}).items():
            self.writer.add_scalar(f"final/{name}", value)
        if config:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")
        for path in plots:
            import matplotlib.image

            image = matplotlib.image.imread(str(path))
            self.writer.add_image(f"plots/{path.stem}", image[..., :3], dataformats="HWC")
        self.writer.close()


_TAGS = {"train_nll": "train/nll", "val_nll": "val/nll", "lr": "train/lr", "grad_norm": "train/grad_norm",
         "grad_norm_max": "train/grad_norm_max", "steps_per_second": "speed/steps_per_second", "rows_per_second": "speed/rows_per_second"}

