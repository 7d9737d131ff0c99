"""Out-of-core data: a .npy file trains while the process holds far less than the file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import flowforge
from flowforge.train.rows import NpyRows

from ..helpers import write_normal_npy

WORKER = Path(__file__).with_name("oocore_worker.py")


def test_npy_file_trains_with_memory_well_below_its_size(tmp_path: Path) -> None:
    rows, features = 1_600_000, 64  # 400 MiB of float32
    path = tmp_path / "big.npy"
    size_mb = write_normal_npy(path, rows, features, chunk=200_000)
    done = subprocess.run([sys.executable, str(WORKER), str(path), str(features)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["fitted"] and np.isfinite(report["val_nll"])
    assert report["growth_mb"] < size_mb / 2, (report, size_mb)  # measured: ~140 MB for 400 MB


def test_npy_rows_match_in_memory_training(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(600, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    flows = []
    for data in (x, str(tmp_path / "x.npy"), np.load(tmp_path / "x.npy", mmap_mode="r")):
        torch.manual_seed(0)
        flow = flowforge.RealNVP(3, layers=2, hidden=(8,))
        flowforge.fit(flow, data, steps=20, batch_size=64, progress=False)
        flows.append(flow)
    for other in flows[1:]:
        for a, b in zip(flows[0].state_dict().values(), other.state_dict().values()):
            assert torch.equal(a, b)


def test_npy_rows_errors_are_named(tmp_path: Path) -> None:
    bad = np.ones((10, 2), dtype=np.float32)
    bad[7, 1] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(flowforge.FlowforgeError, match="row 7"):
        flowforge.fit(flowforge.RealNVP(2, layers=1, hidden=(4,)), str(tmp_path / "bad.npy"), steps=1, progress=False)
    with pytest.raises(flowforge.FlowforgeError, match="no such file"):
        NpyRows(tmp_path / "missing.npy")
    np.save(tmp_path / "flat.npy", np.ones(5))
    with pytest.raises(flowforge.FlowforgeError, match="2-D"):
        NpyRows(tmp_path / "flat.npy")
