"""examples/density_csv.py, anomaly_scoring.py and image_generation.py run end to end on a tiny budget (as CI runs them)."""
from __future__ import annotations

import importlib.util
import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest

import flowforge
from flowforge.cli import main as cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALL = ["--steps", "30", "--layers", "2", "--hidden", "16", "--batch-size", "64"]
CLI_TINY = ["--steps", "20", "--layers", "2", "--hidden", "16", "16", "--batch-size", "64", "--patience", "0", "--no-progress"]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_density_csv_example_and_its_cli_commands(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the docstring's commands use the script's default run folder
    example = load_example("density_csv")
    summary = example.main([*SMALL, "--rows", "1000"])
    out = tmp_path / "runs" / "density_csv"
    assert {p.name for p in out.iterdir()} >= {"demo.csv", "model.pt", "samples.png", "training_curve.png", "summary.json"}
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["columns"] == example.COLUMNS and summary["rows"] == {"train": 800, "test": 200}
    assert 0 < summary["steps_run"] <= 30 and math.isfinite(summary["test_nll"]) and 0 < summary["gaussian_test_nll"] < 10
    assert flowforge.load(out / "model.pt").event_shape == (4,)

    commands = [line.strip() for line in example.__doc__.splitlines() if line.strip().startswith("flowforge ")]
    assert [c.split()[1] for c in commands] == ["train", "score", "sample"]
    for command in commands:
        argv = shlex.split(command)[1:]
        assert cli(argv + (CLI_TINY if argv[0] == "train" else [])) == 0, capsys.readouterr().err  # a shorter run
    assert flowforge.data.read_array(out / "scores.csv").shape == (1000, 1)
    assert flowforge.data.read_array(out / "samples.csv").shape == (1000, 4)


def test_roc_auc_counts_ordered_pairs_and_ties_half() -> None:
    roc_auc = load_example("anomaly_scoring").roc_auc
    assert roc_auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert roc_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert roc_auc(np.array([1.0]), np.array([1.0])) == 0.5
    rng = np.random.default_rng(0)
    normal, anomalous = rng.integers(0, 5, 40).astype(float), rng.integers(1, 6, 30).astype(float)
    pairs = (anomalous[:, None] > normal[None]) + 0.5 * (anomalous[:, None] == normal[None])
    assert roc_auc(normal, anomalous) == pytest.approx(pairs.mean())


def test_anomaly_scoring_example(tmp_path) -> None:
    summary = load_example("anomaly_scoring").main([*SMALL, "--n", "1000", "--out", str(tmp_path)])
    assert (tmp_path / "scores.png").is_file() and json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["rows"] == {"train": 600, "calibration": 200, "test": 200, "anomalies": 10}
    for scorer in ("flow", "gaussian"):
        result = summary[scorer]
        assert math.isfinite(result["threshold"])
        assert all(0 <= result[k] <= 1 for k in ("precision", "recall", "false_alarm_rate"))
        assert result["roc_auc"] > 0.6  # uniform outliers around the moons: most are unlikely even under a Gaussian


def test_image_generation_example(tmp_path) -> None:
    summary = load_example("image_generation").main(["--steps", "20", "--steps-per-level", "1", "--hidden-channels", "8",
                                                     "--dequantize", "uniform", "--per-row", "4", "--out", str(tmp_path)])
    assert (tmp_path / "samples.png").is_file() and json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["images"] == {"train": 1500, "test": 297, "shape": [1, 8, 8], "levels": 17}
    assert summary["uniform_bpd"] == pytest.approx(math.log2(17))
    assert 0 < summary["independent_pixels_bpd"] < summary["uniform_bpd"]
    assert 0 < summary["test_bpd"] < 8  # barely trained: near the uniform model's 4.09
    assert flowforge.load(tmp_path / "model.pt").event_shape == (1, 8, 8)


def test_readme_and_docs_list_the_examples_as_they_run() -> None:
    root = EXAMPLES.parent
    block = (root / "README.md").read_text().split("## Examples", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.strip().splitlines()]
    assert sorted(commands) == [["python", f"examples/{p.name}"] for p in sorted(EXAMPLES.glob("*.py"))]  # each, no options
    page = (root / "docs" / "examples.md").read_text()
    assert all(f"`{p.name}`" in page for p in EXAMPLES.glob("*.py"))
    docstring = load_example("density_csv").__doc__
    cli_lines = [line.strip() for line in page.splitlines() if line.startswith("flowforge ")]
    assert cli_lines[:3] == [line.strip() for line in docstring.splitlines() if line.strip().startswith("flowforge ")]
