"""`flowforge train --model cnf --objective ...`: run folders with the solver's NFE, resume, named errors."""
from __future__ import annotations

import json
import math

import pytest

import flowforge
from flowforge.cli import main
from flowforge.flows.continuous import ContinuousFlow

from ..helpers import one_line_error

pytest.importorskip("torchdiffeq")

TINY = ["--data", "8gaussians", "--n", "400", "--steps", "12", "--hidden", "8", "8", "--batch-size", "64", "--no-progress", "--threads", "1"]


@pytest.mark.parametrize("objective", ["flow-matching", "likelihood"])
def test_train_cnf_writes_nfe_and_a_loadable_model(tmp_path, objective):
    folder = tmp_path / "run"
    assert main(["train", *TINY, "--model", "cnf", "--objective", objective, "--out", str(folder)]) == 0
    metrics = json.loads((folder / "metrics.json").read_text())
    assert math.isfinite(metrics["test_nll"])
    assert metrics["sample_nfe"] >= 2 and metrics["log_prob_nfe"] >= 2  # dopri5: at least one step of evaluations
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["objective"] == objective
    assert config["model"]["model"] == "cnf" and config["model"]["kwargs"]["layers"] == 1  # one ODE block by default
    assert isinstance(flowforge.load(folder), ContinuousFlow)
    assert main(["train", "--resume", str(folder), "--steps", "16", "--no-progress", "--threads", "1"]) == 0
    assert json.loads((folder / "metrics.json").read_text())["steps_run"] <= 16


def test_flow_matching_needs_a_cnf(tmp_path, capsys):
    assert main(["train", *TINY, "--model", "realnvp", "--objective", "flow-matching", "--out", str(tmp_path / "r")]) == 2
    assert "--model cnf" in one_line_error(capsys)
    assert main(["train", *TINY, "--model", "cnf", "--coupling", "ot", "--out", str(tmp_path / "s")]) == 2
    assert "flow-matching" in one_line_error(capsys)


def test_ema_and_time_power_reach_fit_and_resume(tmp_path, capsys):
    folder = tmp_path / "run"
    args = ["train", *TINY, "--model", "cnf", "--objective", "flow-matching", "--ema", "0.9", "--time-power", "2"]
    assert main([*args, "--out", str(folder)]) == 0
    config = json.loads((folder / "config.json").read_text())["config"]
    assert config["ema"] == 0.9 and config["time_power"] == 2.0
    assert flowforge.load(folder).odes()[0].field is not None
    assert main(["train", "--resume", str(folder), "--steps", "16", "--no-progress", "--threads", "1"]) == 0
    assert main([*args[:-2], "--time-power", "0", "--out", str(tmp_path / "bad")]) == 2
    capsys.readouterr()
