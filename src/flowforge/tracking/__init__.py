"""Experiment tracking: fit callbacks for TensorBoard and MLflow (the `tracking` extra), and `make_tracker`."""
from __future__ import annotations

from pathlib import Path

from ..errors import FlowforgeError
from .mlflow_tracker import MLflowTracker
from .tensorboard import TensorBoardTracker
from .tracker import Tracker

TRACKERS = ("tensorboard", "mlflow")


def make_tracker(kind: str, run_folder: str | Path, batch_size: int | None = None, every: int = 50) -> Tracker:
    """The command line's tracker: TensorBoard events in RUN/tensorboard/, or an MLflow run named
    after the run folder, in experiment "flowforge" of MLflow's default store (MLFLOW_TRACKING_URI)."""
    if kind == "tensorboard":
        return TensorBoardTracker(Path(run_folder) / "tensorboard", batch_size=batch_size, every=every)
    if kind == "mlflow":
        return MLflowTracker(run_name=Path(run_folder).name, batch_size=batch_size, every=every)
    raise FlowforgeError(f"unknown tracker {kind!r}; choose from {', '.join(TRACKERS)}")


__all__ = ["TRACKERS", "MLflowTracker", "TensorBoardTracker", "Tracker", "make_tracker"]
