"""Models whose inverse is an iteration are refused up front: one named line, no folder written."""
from __future__ import annotations

import pytest

import flowforge
from flowforge import FlowforgeError
from flowforge.export import export_onnx


@pytest.mark.parametrize("model", ["naf", "bnaf", "resflow"])
def test_iterative_models_are_refused_before_anything_is_written(model: str, tmp_path) -> None:
    flow = flowforge.build_model(model, features=2, layers=1, hidden=(8,))
    with pytest.raises(FlowforgeError, match=rf"export: '{model}' flows are not exported: its inverse is .*realnvp"):
        export_onnx(flow, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()
