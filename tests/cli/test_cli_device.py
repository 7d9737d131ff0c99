"""train --device / --precision: recorded in config.json; impossible devices get one named line."""
from __future__ import annotations

import json

import pytest
import torch

from flowforge.cli import main

TINY = ["--steps", "20", "--layers", "2", "--hidden", "16", "16", "--n", "600", "--no-progress", "--threads", "1"]


def test_bf16_cpu_run_records_its_placement(tmp_path) -> None:
    assert main(["train", "--data", "moons", *TINY, "--device", "cpu", "--precision", "bf16", "--out", str(tmp_path / "run")]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (config["device"], config["precision"], config["compile"]) == ("cpu", "bf16", False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_nll"] is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_named_error(tmp_path, capsys) -> None:
    assert main(["train", "--data", "moons", *TINY, "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0]


def test_unknown_precision_lists_the_choices(capsys) -> None:
    assert main(["train", "--precision", "int8"]) == 2
    assert "fp32" in capsys.readouterr().err
