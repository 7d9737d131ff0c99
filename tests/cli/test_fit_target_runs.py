"""`check` and `export` on a fit-target run: checked on the flow's own samples (it has no data)."""
import json
from pathlib import Path

import numpy as np
import pytest

from flowforge.cli import main

from .test_fit_target import TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("target-runs") / "banana"
    assert main(["fit-target", "--target", "banana", *TINY, "--out", str(folder)]) == 0
    return folder


def test_check_a_fit_target_run_on_its_own_samples(run: Path, capsys) -> None:
    assert main(["check", str(run)]) == 0
    record = json.loads((run / "check.json").read_text())
    assert record["passed"] and record["data"].startswith("1,000 rows sampled from the flow")


def test_export_a_fit_target_run(run: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    assert "rows sampled from the flow" in capsys.readouterr().out
    assert json.loads((tmp_path / "onnx" / "export.json").read_text())["log_prob_max_abs_diff"] < 1e-3


def test_weighted_samples_replace_the_draws_where_the_target_fails(tmp_path: Path, capsys) -> None:
    (tmp_path / "half.py").write_text(
        "import torch\n"
        "def log_density(x):\n"
        "    lp = -0.5 * (x ** 2).sum(-1)\n"
        "    return torch.where(x[:, 0] > 0.5, torch.full_like(lp, float('nan')), lp)\n")
    run = tmp_path / "half"
    assert main(["fit-target", "--target", f"{tmp_path / 'half.py'}:log_density", "--features", "2", *TINY, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "300", "--weighted", "--out", str(tmp_path / "w.csv")]) == 0
    rows = np.loadtxt(tmp_path / "w.csv", delimiter=",", skiprows=1)
    assert rows.shape == (300, 3) and (rows[:, 0] <= 0.5).all() and np.isfinite(rows[:, 2]).all()
    assert "were replaced by further draws" in capsys.readouterr().out
