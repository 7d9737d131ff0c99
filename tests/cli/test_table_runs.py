"""A table run's folder has the numeric run's guarantees: `train --resume` continues an interrupted
run to the result of one never interrupted, and plots name the table's columns."""
from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from flowforge.cli import main, mixed_run
from flowforge.train.checkpoint import read_checkpoint

from ..helpers import one_line_error
from .test_mixed_run import shop

if TYPE_CHECKING:
    from typing_extensions import Self

STEPS = 30
QUICK = ["--steps", str(STEPS), "--no-progress", "--threads", "1", "--patience", "0", "--columns", "share:bounded(0,1)"]
# the same float32 operations on one machine; room for a few units in the last place per Adam step
RTOL = 50 * float(np.finfo(np.float32).eps) * STEPS


class StopAfter:
    """StopSignals as if SIGINT came during the `steps`-th step."""

    def __init__(self, steps: int) -> None:
        self.steps, self.calls, self.received = steps, 0, None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(self) -> bool:
        self.calls += 1
        if self.calls >= self.steps:
            self.received = int(signal.SIGINT)
        return self.received is not None


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("table-runs") / "shop.csv"
    shop(200, seed=4).to_csv(path)
    return path


@pytest.fixture(scope="module")
def straight(data) -> Path:
    folder = data.parent / "straight"
    assert main(["train", "--data", str(data), *QUICK, "--out", str(folder)]) == 0
    return folder


def test_an_interrupted_table_run_resumes_to_the_uninterrupted_result(data, straight, tmp_path, monkeypatch, capsys) -> None:
    folder = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(mixed_run, "StopSignals", lambda: StopAfter(12))
        assert main(["train", "--data", str(data), *QUICK, "--save-every", "5", "--out", str(folder)]) == 128 + signal.SIGINT
    assert "interrupted by SIGINT after 12 steps" in capsys.readouterr().err
    assert read_checkpoint(folder / "checkpoint.pt")["train_state"]["step"] == 12 and not (folder / "metrics.json").exists()
    assert main(["train", "--resume", str(folder)]) == 0
    whole, parts = (read_checkpoint(f / "checkpoint.pt") for f in (straight, folder))
    assert parts["train_state"]["history"]["step"] == whole["train_state"]["history"]["step"]
    for name, tensor in whole["state_dict"].items():
        torch.testing.assert_close(parts["state_dict"][name], tensor, rtol=RTOL, atol=RTOL)
    metrics = [json.loads((f / "metrics.json").read_text()) for f in (straight, folder)]
    assert metrics[1]["test_nll"] == pytest.approx(metrics[0]["test_nll"], rel=RTOL, abs=RTOL)
    assert metrics[1]["best_step"] == metrics[0]["best_step"]


def test_resume_refuses_a_finished_run_a_changed_file_and_other_options(data, straight, tmp_path, capsys) -> None:
    assert main(["train", "--resume", str(straight)]) == 2
    assert f"already trained {STEPS} of {STEPS} steps" in one_line_error(capsys)
    assert main(["train", "--resume", str(straight), "--lr", "0.1"]) == 2
    assert "drop --lr" in one_line_error(capsys)
    copy = tmp_path / "shop.csv"
    copy.write_bytes(data.read_bytes())
    folder = tmp_path / "run"
    assert main(["train", "--data", str(copy), *QUICK, "--out", str(folder)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(folder), "--steps", str(2 * STEPS)]) == 0  # a finished run trains on
    assert read_checkpoint(folder / "checkpoint.pt")["train_state"]["step"] == 2 * STEPS
    assert json.loads((folder / "config.json").read_text())["config"]["steps"] == 2 * STEPS
    copy.write_text(copy.read_text().replace("Ideal", "Premium", 1))
    capsys.readouterr()
    assert main(["train", "--resume", str(folder), "--steps", str(3 * STEPS)]) == 2
    assert "changed since it started" in one_line_error(capsys)


def test_a_table_runs_plots_name_its_columns(straight) -> None:
    plots = straight / "plots"
    assert {p.name for p in plots.glob("*.png")} == {"marginals.png", "pairs.png", "training_curve.png"}
    assert all(p.stat().st_size > 10_000 for p in plots.glob("*.png"))
