"""Reliability (issue 6): runs interrupted by SIGINT/SIGTERM resume bit-exact, checkpoints survive
kill -9, resuming refuses changed data and moves a GPU run to the CPU, checkpoint files are written
atomically with the right mode."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import flowforge
from flowforge.cli import main
from flowforge.train.checkpoint import atomic_write_text, read_checkpoint, remove_stale_temporaries

from .helpers import TINY_TRAIN, one_line_error


def _spawn(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "flowforge", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"exited early ({process.returncode}): {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _signature(path: Path) -> tuple[int, int]:
    """Changes whenever the file is replaced (a new inode) or rewritten."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_ino, stat.st_mtime_ns)


def test_interrupted_twice_and_resumed_ends_bit_exact(tmp_path: Path, capsys) -> None:
    """SIGINT a fresh run, SIGTERM its resumption, resume again: the weights equal an uninterrupted run's."""
    steps = ["--steps", "400"]
    assert main(["train", *TINY_TRAIN, *steps, "--out", str(tmp_path / "whole")]) == 0
    folder, model = tmp_path / "parts", tmp_path / "parts" / "model.pt"
    for signum, argv in ((signal.SIGINT, ["train", *TINY_TRAIN, *steps, "--save-every", "5", "--out", str(folder)]),
                         (signal.SIGTERM, ["train", "--resume", str(folder), "--no-progress"])):
        before = _signature(model)
        process = _spawn(*argv)
        _wait_for(lambda before=before: _signature(model) != before, process)  # inside fit: a checkpoint was written
        process.send_signal(signum)
        _, err = process.communicate(timeout=180)
        assert process.returncode == 128 + signum, err
        assert f"interrupted by {signal.Signals(signum).name}" in err and "--resume" in err
        assert 0 < read_checkpoint(folder)["train_state"]["step"] < 400
        assert flowforge.load(folder).log_prob(torch.zeros(2, 2)).isfinite().all()
    assert main(["train", "--resume", str(folder)]) == 0
    whole, parts = read_checkpoint(tmp_path / "whole"), read_checkpoint(folder)
    for key in ("state_dict", "live_model"):
        a, b = (whole, parts) if key == "state_dict" else (whole["train_state"], parts["train_state"])
        assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert parts["train_state"]["step"] == 400 and parts["train_state"]["history"]["step"] == whole["train_state"]["history"]["step"]
    metrics = [json.loads((f / "metrics.json").read_text()) for f in (tmp_path / "whole", folder)]
    assert metrics[0]["test_nll"] == metrics[1]["test_nll"] and metrics[0]["best_step"] == metrics[1]["best_step"]
    logged = [[json.loads(line)["step"] for line in (f / "metrics.jsonl").read_text().splitlines()] for f in (tmp_path / "whole", folder)]
    assert logged[0] == logged[1], "no step logged twice or lost"


def test_kill_9_mid_save_leaves_the_previous_checkpoint(tmp_path: Path, capsys) -> None:
    """`train --resume RUN --steps 100000 --save-every 1` killed with SIGKILL (at random moments, and
    while a temporary checkpoint is being written): `sample RUN` works after every kill."""
    folder, model = tmp_path / "run", tmp_path / "run" / "model.pt"
    big = ["--layers", "4", "--hidden", "256", "256"]  # a ~9 MB checkpoint: saving is most of each step
    assert main(["train", *TINY_TRAIN, *big, "--steps", "2", "--out", str(folder)]) == 0
    capsys.readouterr()
    rng, killed_mid_save, step, round = random.Random(0), 0, 2, 0
    # at least 3 kills; a kill aimed at a write can miss it on a fast disk (the rename wins the race), so aim again
    while round < 3 or (not killed_mid_save and round < 9):
        round += 1
        before = _signature(model)
        process = _spawn("train", "--resume", str(folder), "--steps", "100000", "--save-every", "1", "--no-progress")
        _wait_for(lambda before=before: _signature(model) != before, process)
        if round % 2:
            _wait_for(lambda: any(folder.glob(".model.pt.*.tmp")), process)
        else:
            time.sleep(rng.uniform(0, 0.3))
        process.kill()
        process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL
        killed_mid_save += any(folder.glob(".model.pt.*.tmp"))
        assert main(["sample", str(folder), "-n", "5"]) == 0, capsys.readouterr().err
        assert len(capsys.readouterr().out.splitlines()) == 6
        now = read_checkpoint(folder)["train_state"]["step"]
        assert now > step, "each resumption saved progress"
        step = now
    assert killed_mid_save >= 1, "no kill landed while a checkpoint was being written"
    assert main(["train", "--resume", str(folder), "--steps", str(step + 1)]) == 0
    assert not list(folder.glob(".*.tmp")), "resuming clears the temporaries of killed writers"


def test_resume_refuses_a_changed_data_file(tmp_path: Path, capsys) -> None:
    data = tmp_path / "x.csv"
    np.savetxt(data, np.random.default_rng(0).normal(size=(700, 2)), delimiter=",")
    assert main(["train", *TINY_TRAIN, "--data", str(data), "--steps", "4", "--out", str(tmp_path / "r")]) == 0
    np.savetxt(data, np.random.default_rng(1).normal(size=(700, 2)), delimiter=",")
    assert main(["train", "--resume", str(tmp_path / "r"), "--steps", "8"]) == 2
    assert "its data changed since it started" in one_line_error(capsys)


def test_atomic_writes_take_the_umask_and_keep_an_existing_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o640
    (tmp_path / "new.txt").chmod(0o604)
    atomic_write_text(tmp_path / "new.txt", "y")
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o604


def test_stale_temporaries_are_removed_only_for_their_file(tmp_path: Path) -> None:
    for name in (".model.pt.abc.tmp", ".model.pt.def.tmp", ".config.json.x.tmp", "model.pt"):
        (tmp_path / name).write_text("")
    removed = remove_stale_temporaries(tmp_path / "model.pt")
    assert [p.name for p in removed] == [".model.pt.abc.tmp", ".model.pt.def.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".config.json.x.tmp", "model.pt"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resume_moves_a_gpu_run_to_the_cpu_with_device(tmp_path: Path, capsys) -> None:
    """A run started with --device cuda (its config.json says so) continues here with --device cpu."""
    folder = tmp_path / "r"
    assert main(["train", *TINY_TRAIN, "--steps", "4", "--out", str(folder)]) == 0
    resolved = json.loads((folder / "config.json").read_text())
    resolved["config"]["device"] = "cuda"  # as written by a run on a GPU machine
    (folder / "config.json").write_text(json.dumps(resolved))
    assert main(["train", "--resume", str(folder), "--steps", "8"]) == 2
    assert "no CUDA device" in one_line_error(capsys)
    assert main(["train", "--resume", str(folder), "--steps", "8", "--device", "cpu"]) == 0
    assert read_checkpoint(folder)["train_state"]["step"] == 8
    assert json.loads((folder / "metrics.json").read_text())["steps_run"] == 8
