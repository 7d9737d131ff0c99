"""ONNX export: onnxruntime against PyTorch on held-out rows, for RealNVP, MAF and NSF, and the command."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import flowforge
from flowforge import FlowforgeError
from flowforge.cli import main
from flowforge.export import export_onnx

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOLERANCE = 1e-4  # float32 log-densities of a few nats: rounding differs by ~1e-6 between the two runtimes


def _session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("model", ["realnvp", "maf", "nsf"])
def test_onnx_log_prob_and_sample_match_pytorch(model: str, tmp_path) -> None:
    x = torch.randn(1200, 3) * torch.tensor([2.0, 0.5, 1.0]) + torch.tensor([0.0, 3.0, -1.0])
    x[:, 2] += x[:, 0] ** 2 / 4  # a curved density: the layers move off their identity start
    train, test = x[:1000], x[1000:]
    flow = flowforge.build_model(model, features=3, layers=2, hidden=(16,))
    flowforge.fit(flow, train, steps=40, batch_size=128, progress=False)
    record = export_onnx(flow, tmp_path, check_rows=test)
    assert record["log_prob_max_abs_diff"] <= TOLERANCE
    # checked here too, through the public API and at a batch size other than the export's
    got = _session(tmp_path / "log_prob.onnx").run(None, {"x": test[:37].numpy()})[0]
    np.testing.assert_allclose(got, flow.log_prob(test[:37]).detach().numpy(), rtol=0, atol=TOLERANCE)
    noise, temperature = torch.randn(50, 3), 0.7
    x_onnx = _session(tmp_path / "sample.onnx").run(None, {"noise": noise.numpy(), "temperature": np.array(temperature, dtype=np.float32)})[0]
    np.testing.assert_allclose(x_onnx, flow.decode(temperature * noise).detach().numpy(), rtol=0, atol=1e-4 * (1 + np.abs(x_onnx).max()))
    assert json.loads((tmp_path / "export.json").read_text())["checked_rows"] == 200


def test_export_command_on_a_conditional_run(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    theta = rng.uniform(-2, 2, 1500)
    table = np.c_[theta, theta + 0.5 * rng.normal(size=1500), rng.normal(size=1500)]
    np.savetxt(tmp_path / "theta.csv", table, delimiter=",", header="theta,x,y", comments="")
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "theta.csv"), "--context-columns", "theta", "--model", "nsf", "--layers", "2",
                 "--hidden", "16", "--steps", "30", "--no-progress", "--out", str(run)]) == 0
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    printed = capsys.readouterr().out
    assert "300 held-out rows" in printed and "log_prob max abs diff" in printed
    record = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert record["context_features"] == 1 and record["log_prob_max_abs_diff"] <= TOLERANCE
    inputs = [i.name for i in _session(tmp_path / "onnx" / "sample.onnx").get_inputs()]
    assert inputs == ["noise", "temperature", "context"]


def test_image_flows_are_refused_with_the_reason(tmp_path) -> None:
    flow = flowforge.ImageGlow((1, 8, 8), levels=1, steps_per_level=1, hidden_channels=4)
    with pytest.raises(FlowforgeError, match="only vector flows"):
        export_onnx(flow, tmp_path)


def test_a_missing_onnx_package_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(FlowforgeError, match=r"onnxruntime: pip install 'flowforge\[onnx\]'"):
        export_onnx(flowforge.MAF(2, layers=1, hidden=(4,)), tmp_path)
