"""Experiment tracking, read back through the trackers' own readers: TensorBoard's event files and an MLflow file store."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import flowforge
from flowforge import FlowforgeError
from flowforge.cli import main
from flowforge.tracking import MLflowTracker, TensorBoardTracker

STEPS, EVAL_EVERY, BATCH = 60, 20, 64


def _fit(tracker: object) -> flowforge.History:
    x = torch.randn(600, 2) * torch.tensor([1.0, 0.3])
    flow = flowforge.MAF(2, layers=1, hidden=(8,))
    return flowforge.fit(flow, x, steps=STEPS, eval_every=EVAL_EVERY, batch_size=BATCH, progress=False, callback=tracker)


def _plot(path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(1, 1))
    figure.savefig(path)
    plt.close(figure)


def test_tensorboard_events_hold_each_evaluation_and_the_final_record(tmp_path) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    _plot(tmp_path / "curve.png")
    with TensorBoardTracker(tmp_path / "tb", batch_size=BATCH) as tracker:
        history = _fit(tracker)
        tracker.finish({"test_nll": 1.25, "note": "text is left out"}, {"model": "maf", "hidden": [8]}, [tmp_path / "curve.png"])
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"), size_guidance={event_accumulator.IMAGES: 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/nll", "val/nll", "train/lr", "train/grad_norm", "train/grad_norm_max", "speed/rows_per_second",
            "final/test_nll"} <= set(tags["scalars"])
    val = events.Scalars("val/nll")
    assert [e.step for e in val] == [20, 40, 60]
    np.testing.assert_allclose([e.value for e in val], history.val_nll[-3:], rtol=1e-6)  # the first is the starting weights'
    first_norm = events.Scalars("train/grad_norm")[0].value
    assert len(history.grad_norm) == STEPS and first_norm == pytest.approx(np.mean(history.grad_norm[:EVAL_EVERY]), rel=1e-6)
    assert events.Scalars("final/test_nll")[0].value == pytest.approx(1.25)
    assert "plots/curve" in tags["images"]
    assert '"model": "maf"' in events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()


def test_mlflow_run_is_read_back_from_a_local_file_store(tmp_path, monkeypatch) -> None:
    tracking = pytest.importorskip("mlflow.tracking")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for a database, but reads and writes file stores
    uri = (tmp_path / "mlruns").as_uri()
    _plot(tmp_path / "samples.png")
    tracker = MLflowTracker(uri, experiment="tests", run_name="maf-run", batch_size=BATCH)
    history = _fit(tracker)
    tracker.finish({"test_nll": 1.5}, {"model": "maf", "fit": {"lr": 0.001}}, [tmp_path / "samples.png"])
    client = tracking.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.run_name == "maf-run" and run.info.status == "FINISHED"
    val = client.get_metric_history(run.info.run_id, "val_nll")
    assert [m.step for m in val] == [20, 40, 60]
    np.testing.assert_allclose([m.value for m in val], history.val_nll[-3:], rtol=1e-6)
    assert {"train_nll", "lr", "grad_norm", "rows_per_second", "final_test_nll"} <= set(run.data.metrics)
    assert run.data.params == {"model": "maf", "fit.lr": "0.001"}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"config.json", "plots/samples.png"} <= artifacts


def test_train_log_writes_tensorboard_and_mlflow(tmp_path, monkeypatch) -> None:
    tracking = pytest.importorskip("mlflow.tracking")
    pytest.importorskip("tensorboard")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    for log in ("tensorboard", "mlflow"):
        assert main(["train", "--data", "moons", "--n", "1000", "--steps", "40", "--layers", "2", "--hidden", "16", "--no-progress",
                     "--log", log, "--out", str(tmp_path / log)]) == 0
    assert list((tmp_path / "tensorboard" / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "mlflow" / "config.json").read_text())["config"]["log"] == "mlflow"
    client = tracking.MlflowClient((tmp_path / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("flowforge").experiment_id])
    metrics = json.loads((tmp_path / "mlflow" / "metrics.json").read_text())
    assert run.info.run_name == "mlflow" and run.data.metrics["final_test_nll"] == pytest.approx(metrics["test_nll"])
    assert run.data.params["model"] == "realnvp"
    assert {"plots/density.png", "plots/samples.png", "plots/training_curve.png"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "plots")}


@pytest.mark.parametrize(("module", "make"), [("torch.utils.tensorboard", lambda path: TensorBoardTracker(path)),
                                              ("mlflow.tracking", lambda path: MLflowTracker(path.as_uri()))])
def test_a_missing_tracker_names_the_extra(module, make, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    with pytest.raises(FlowforgeError, match=r"pip install 'flowforge\[tracking\]'"):
        make(tmp_path)
