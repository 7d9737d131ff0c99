"""`flowforge fit-target` and `flowforge sample RUN --weighted`."""
import json
from pathlib import Path

import numpy as np
import pytest

from flowforge.cli import main

from ..helpers import one_line_error


def error_of(argv: list[str], capsys) -> str:
    assert main(argv) != 0
    return one_line_error(capsys)

TINY = ["--layers", "2", "--hidden", "16", "--steps", "40", "--batch-size", "64", "--eval-samples", "500", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("target") / "banana"
    assert main(["fit-target", "--target", "banana", *TINY, "--out", str(folder)]) == 0
    return folder


def test_fit_target_writes_the_run_folder_with_importance_sampling_metrics(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["ess"] <= 1 and metrics["eval_samples"] == 500
    assert np.isfinite(metrics["log_z"]) and metrics["log_z_stderr"] > 0
    assert metrics["true_log_z"] == pytest.approx(np.log(4 * np.pi))
    assert metrics["target_evaluations"] >= 40 * 64
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines and {"step", "ess", "log_z", "log_z_stderr"} <= set(lines[-1])
    assert (run / "plots" / "importance.png").is_file() and (run / "plots" / "samples.png").is_file()
    assert json.loads((run / "config.json").read_text())["kind"] == "target"


def test_sample_weighted_writes_log_weights(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "weighted.csv"
    assert main(["sample", str(run), "-n", "50", "--weighted", "--out", str(out)]) == 0
    header = out.read_text().splitlines()[0]
    assert header == "x0,x1,log_weight"
    values = np.loadtxt(out, delimiter=",", skiprows=1)
    assert values.shape == (50, 3) and np.isfinite(values).all()
    assert main(["sample", str(run), "-n", "5"]) == 0  # a target run's model samples like any other


def test_a_target_from_a_file_needs_features_and_the_right_shape(tmp_path: Path, capsys) -> None:
    file = tmp_path / "my_target.py"
    file.write_text("def log_density(x):\n    return -0.5 * (x ** 2).sum(1)\n\ndef wrong(x):\n    return x\n")
    assert main(["fit-target", "--target", f"{file}:log_density", "--features", "3", *TINY, "--out", str(tmp_path / "r")]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["ess"] > 0.5 and "true_log_z" not in metrics
    assert "--features" in error_of(["fit-target", "--target", f"{file}:log_density", *TINY], capsys)
    assert "no function 'missing'" in error_of(["fit-target", "--target", f"{file}:missing", "--features", "2", *TINY], capsys)
    message = error_of(["fit-target", "--target", f"{file}:wrong", "--features", "2", *TINY, "--out", str(tmp_path / "w")], capsys)
    assert "must return shape (64,)" in message


def test_weighted_is_for_target_runs(tmp_path: Path, capsys) -> None:
    assert "unknown target 'nope'" in error_of(["fit-target", "--target", "nope", *TINY], capsys)
    assert "takes -n, --seed and --out only" in error_of(["sample", "x", "-n", "3", "--weighted", "--temperature", "0.5"], capsys)


def test_ema_and_path_gradient_are_options_recorded_in_the_config(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "run"
    assert main(["fit-target", "--target", "banana", *TINY, "--ema", "0.9", "--no-path-gradient", "--out", str(folder)]) == 0
    options = json.loads((folder / "config.json").read_text())["options"]
    assert options["ema"] == 0.9 and options["path_gradient"] is False
    assert "expected a fraction in [0, 1)" in error_of(["fit-target", "--target", "banana", "--ema", "1"], capsys)
