"""DDP: a 2-process gloo run (launched by torchrun from the test) equals a single process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(out: Path, processes: int, *extra: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes == 1:
        command = [sys.executable, str(WORKER), str(out), *extra]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", str(WORKER), str(out), *extra]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def _assert_same_weights(a: Path, b: Path) -> None:
    left, right = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert left.keys() == right.keys()
    for name in left:
        torch.testing.assert_close(left[name], right[name], rtol=1e-9, atol=1e-9, msg=name)


def test_two_process_gloo_equals_single_process(tmp_path: Path) -> None:
    _run(tmp_path / "single.pt", 1)
    _run(tmp_path / "ddp.pt", 2)
    _assert_same_weights(tmp_path / "single.pt", tmp_path / "ddp.pt")
    # rank 0 alone wrote checkpoints
    assert (tmp_path / "ddp.pt.rank0.touched").exists()
    assert not (tmp_path / "ddp.pt.rank1.touched").exists()


def test_ddp_resume_after_interruption_matches(tmp_path: Path) -> None:
    _run(tmp_path / "single.pt", 1)
    _run(tmp_path / "ddp.pt", 2, "--stop-at", "25")
    assert (tmp_path / "ddp.state.pt").exists() and not (tmp_path / "ddp.pt").exists()
    _run(tmp_path / "ddp.pt", 2)
    _assert_same_weights(tmp_path / "single.pt", tmp_path / "ddp.pt")
