"""`flowforge train --data file.npy` streams a large .npy file from disk, with the results of reading it whole."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import flowforge
from flowforge import data
from flowforge.cli import main
from flowforge.cli import table_run as run_module
from flowforge.cli.config import TrainConfig
from flowforge.errors import FlowforgeError
from flowforge.train.rows import NpyRows

from ..helpers import launch, write_normal_npy

TINY = ["--steps", "12", "--layers", "2", "--hidden", "8", "--batch-size", "64", "--threads", "1", "--no-progress"]

# Trains from the CLI in a fresh process and reports its peak RSS (VmHWM) over a baseline taken once
# the libraries a run loads are loaded: torch, Adam's first use (it imports torch._dynamo: ~70 MB) and matplotlib.
WORKER = """
import json, sys
import matplotlib.pyplot, torch
import flowforge.viz
from flowforge.cli import main

def mb(field):
    with open("/proc/self/status") as handle:
        return int(next(line for line in handle if line.startswith(field)).split()[1]) / 1024

torch.optim.Adam([torch.zeros(1, requires_grad=True)])
baseline = mb("VmRSS:")
code = main(["train", "--data", sys.argv[1], "--out", sys.argv[2], "--steps", "30", "--layers", "2", "--hidden", "32",
             "--batch-size", "256", "--threads", "1", "--no-progress"])
print(json.dumps({"code": code, "baseline_mb": baseline, "peak_mb": mb("VmHWM:")}))
"""


@pytest.fixture
def table(tmp_path: Path) -> Path:
    x = np.random.default_rng(0).normal(size=(700, 4)).astype(np.float32)
    x[:, 3] = x[:, 0] + 0.1 * x[:, 3]  # a context column the data depends on
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy"


def _train(args: list[str], out: Path, streamed: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict, flowforge.Flow]:
    monkeypatch.setattr(run_module, "STREAM_NPY_BYTES", 0 if streamed else 2**62)
    assert main(["train", *args, *TINY, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    return config, json.loads((out / "metrics.json").read_text()), flowforge.load(out)


@pytest.mark.parametrize("options", [[], ["--n", "500", "--context-columns", "3"]])
def test_streamed_npy_trains_as_the_file_read_whole(table: Path, tmp_path: Path, options: list[str], monkeypatch) -> None:
    args = ["--data", str(table), *options]
    whole_config, whole_metrics, whole = _train(args, tmp_path / "whole", False, monkeypatch)
    streamed_config, streamed_metrics, streamed = _train(args, tmp_path / "streamed", True, monkeypatch)
    for key in ("data", "features", "context", "model"):
        assert streamed_config[key] == whole_config[key], key
    assert streamed_metrics.pop("train_seconds") > 0 and whole_metrics.pop("train_seconds") > 0
    assert streamed_metrics == whole_metrics
    for a, b in zip(whole.state_dict().values(), streamed.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "streamed" / "plots" / "samples.png").is_file()


def test_large_npy_files_take_the_streaming_path(table: Path, monkeypatch) -> None:
    config = TrainConfig(data=str(table), n=300, context_columns="3")
    assert isinstance(run_module.load_split(config).train, np.ndarray)
    monkeypatch.setattr(run_module, "STREAM_NPY_BYTES", table.stat().st_size)
    split = run_module.load_split(config)
    assert all(isinstance(part, NpyRows) for part in (split.rows, split.train, split.train_context, split.test, split.test_context))
    assert (len(split.rows), split.train.shape, split.test_context.shape) == (300, (240, 3), (60, 1))
    train, test = data.split(data.load_dataset(str(table), n=300, seed=0), test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(split.train[:].numpy(), train[:, :3])
    np.testing.assert_array_equal(split.test_context[:].numpy(), test[:, 3:])


def test_streamed_npy_resumes_and_names_bad_rows(table: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(run_module, "STREAM_NPY_BYTES", 0)
    assert main(["train", "--data", str(table), *TINY, "--out", str(tmp_path / "run")]) == 0
    assert main(["train", "--resume", str(tmp_path / "run"), "--steps", "20", "--no-progress"]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps_run"] == 20
    bad = np.load(table)
    bad[5, 1] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(FlowforgeError, match=r"contains NaN or Inf \(first in row 5\)"):
        run_module.load_split(TrainConfig(data=str(tmp_path / "bad.npy")))
    np.save(tmp_path / "cube.npy", np.zeros((4, 2, 2), dtype=np.float32))
    with pytest.raises(FlowforgeError, match="expected a 2-D"):
        run_module.load_split(TrainConfig(data=str(tmp_path / "cube.npy")))



def test_check_reads_a_sample_of_a_streamed_held_out_split(table: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from flowforge.cli import check as check_module

    monkeypatch.setattr(run_module, "STREAM_NPY_BYTES", 0)
    assert main(["train", "--data", str(table), *TINY, "--context-columns", "3", "--out", str(tmp_path / "run")]) == 0
    monkeypatch.setattr(check_module, "STREAMED_CHECK_ROWS", 50)
    assert main(["check", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "check.json").read_text())
    assert record["passed"] and record["data"].endswith("(the first 50 of its 140 rows)")

def test_streamed_npy_trains_under_torchrun(table: Path, tmp_path: Path) -> None:
    """Two ranks, each reading its own batches from the file, end where one process does."""
    launcher = tmp_path / "streamed.py"
    launcher.write_text("import sys\nimport flowforge.cli.table_run as run\nfrom flowforge.cli import main\n"
                        "run.STREAM_NPY_BYTES = 0\nsys.exit(main(sys.argv[1:]))\n")
    for processes in (1, 2):
        launch([str(launcher), "train", "--data", str(table), *TINY, "--out", str(tmp_path / str(processes))], processes)
    one, two = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("1", "2"))
    assert one["n_test"] == two["n_test"] == 140 and abs(one["test_nll"] - two["test_nll"]) < 1e-4


def test_cli_trains_a_large_npy_file_with_memory_well_below_its_size(tmp_path: Path) -> None:
    rows, features = 1_310_720, 64  # 320 MiB of float32, above STREAM_NPY_BYTES
    path = tmp_path / "big.npy"
    size_mb = write_normal_npy(path, rows, features)
    assert path.stat().st_size >= run_module.STREAM_NPY_BYTES
    try:
        done = subprocess.run([sys.executable, "-c", WORKER, str(path), str(tmp_path / "run")], check=False,
                              capture_output=True, text=True, timeout=600)
    finally:
        path.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert report["code"] == 0 and np.isfinite(metrics["test_nll"]) and metrics["n_test"] == round(0.2 * rows)
    # measured: 70-163 MB for 256-320 MiB files (chunk buffers, index arrays, mapped pages the kernel reads
    # ahead, which vary with the machine's load); read whole, 1,090 MB for 256 MiB: a whole read costs at
    # least the file's size for the array alone, so 3/4 of it separates the two with room on both sides
    assert report["peak_mb"] - report["baseline_mb"] < 0.75 * size_mb, (report, size_mb)
