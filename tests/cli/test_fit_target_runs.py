"""`check` and `export` on a fit-target run: checked on the flow's own samples (it has no data)."""
import json
from pathlib import Path

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
