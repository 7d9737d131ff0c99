"""MLflowTracker: a fit callback logging to an MLflow tracking store (needs the `tracking` extra)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ..errors import FlowforgeError
from .tracker import Tracker, flat

MAX_PARAM_LENGTH = 500  # MLflow refuses longer parameter values (6000 on new servers, 500 on old ones)


class MLflowTracker(Tracker):
    """One MLflow run: metrics `train_nll`, `val_nll`, `lr`, `grad_norm`, `grad_norm_max`,
    `steps_per_second`, `rows_per_second` per evaluation step; at the end `final_<metric>`, the config
    as parameters and as the artifact `config.json`, and the plots as artifacts under `plots/`.

    Args:
        tracking_uri: where runs go, e.g. "file:/path/mlruns" or "http://host:5000" (None: MLflow's
            own default, which honours MLFLOW_TRACKING_URI).
        experiment: the experiment's name (made if missing).
        run_name: the run's name (None: MLflow picks one).
        batch_size, every: as `Tracker`.
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = "flowforge", run_name: str | None = None,
                 batch_size: int | None = None, every: int = 50) -> None:
        super().__init__(batch_size, every)
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise FlowforgeError("--log mlflow needs the mlflow package: pip install 'flowforge[tracking]'") from None
        try:
            self.client = MlflowClient(tracking_uri=tracking_uri)
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
            self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        except Exception as error:  # noqa: BLE001 -- MLflow raises many kinds, with pages of advice
            from mlflow import get_tracking_uri

            first = (str(error).strip().splitlines() or [""])[0][:300]
            raise FlowforgeError(f"mlflow could not open the tracking store {tracking_uri or get_tracking_uri()} "
                                 f"({type(error).__name__}: {first}); set MLFLOW_TRACKING_URI to a server (http://HOST:5000), "
                                 "sqlite:///mlflow.db (with the full mlflow package), or file:./mlruns with "
                                 "MLFLOW_ALLOW_FILE_STORE=true") from None

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.client.log_metric(self.run_id, name, value, step=step)

    def _finish(self, metrics: dict[str, float] | None, config: dict[str, Any] | None, plots: list[Path]) -> None:
        for name, value in (metrics or {}).items():
            self.client.log_metric(self.run_id, f"final_{name}", value)
        if config:
            for name, value in flat(config).items():
                self.client.log_param(self.run_id, name, value[:MAX_PARAM_LENGTH])
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "config.json"
                path.write_text(json.dumps(config, indent=2, default=str) + "\n")
                self.client.log_artifact(self.run_id, str(path))
        for path in plots:
            self.client.log_artifact(self.run_id, str(path), artifact_path="plots")
        self.client.set_terminated(self.run_id, status="FINISHED" if metrics is not None else "KILLED")
