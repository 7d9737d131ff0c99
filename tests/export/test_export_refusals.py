"""Models whose inverse is an iteration are refused up front: one named line, no folder written."""
from __future__ import annotations

import numpy as np
import pytest

import flowforge
from flowforge import FlowforgeError
from flowforge.cli import main
from flowforge.export import export_onnx

from ..helpers import one_line_error


@pytest.mark.parametrize("model", ["naf", "bnaf", "resflow"])
def test_iterative_models_are_refused_before_anything_is_written(model: str, tmp_path) -> None:
    flow = flowforge.build_model(model, features=2, layers=1, hidden=(8,))
    with pytest.raises(FlowforgeError, match=rf"export: '{model}' flows are not exported: its inverse is .*realnvp"):
        export_onnx(flow, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_the_command_refuses_before_reading_the_runs_data(tmp_path, capsys) -> None:
    rows = np.random.default_rng(0).normal(size=(60, 2))
    np.savetxt(tmp_path / "d.csv", rows, delimiter=",", header="a,b", comments="")
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--model", "bnaf", "--layers", "1", "--hidden", "8", "--steps", "5",
                 "--no-progress", "--threads", "1", "--out", str(run)]) == 0
    (tmp_path / "d.csv").unlink()  # the refusal must not depend on the data
    capsys.readouterr()
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 2
    assert "'bnaf' flows are not exported" in one_line_error(capsys) and not (tmp_path / "onnx").exists()
