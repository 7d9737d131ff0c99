"""The command line when things go wrong: a closed pipe, a run that diverges before its first
checkpoint, an output path that is a folder, a resume that asks for too few steps."""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from flowforge.cli import main

from ..helpers import TINY_TRAIN, one_line_error


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("failures") / "run"
    assert main(["train", *TINY_TRAIN, "--steps", "20", "--out", str(folder)]) == 0
    return folder


def test_a_reader_that_closes_the_pipe_stops_sample_quietly(run: Path) -> None:
    """`flowforge sample RUN | head -1` used to print an error and exit 2."""
    command = f"{shlex.quote(sys.executable)} -m flowforge sample {shlex.quote(str(run))} -n 200000 | head -1; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300, check=False)
    assert done.stdout == "x0,x1\n"
    assert done.returncode == 141 and done.stderr == "", done.stderr  # 128 + SIGPIPE, like other Unix tools


def test_a_run_that_diverges_before_its_first_checkpoint_can_be_started_again(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "diverged"
    assert main(["train", *TINY_TRAIN, "--steps", "30", "--lr", "1e30", "--out", str(folder)]) == 2
    assert "training diverged" in one_line_error(capsys)  # 30 steps once ended "test_nll: n/a", status 0
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.jsonl"]
    assert main(["train", "--resume", str(folder)]) == 2
    assert "stopped before its first checkpoint" in one_line_error(capsys)
    assert main(["train", *TINY_TRAIN, "--steps", "10", "--out", str(folder)]) == 0  # the same --out works
    assert (folder / "model.pt").is_file()


def test_a_folder_holding_anything_else_is_still_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "notes.txt").write_text("my notes")
    assert main(["train", *TINY_TRAIN, "--steps", "5", "--out", str(folder)]) == 2
    assert "already exists and is not empty" in one_line_error(capsys)
    assert (folder / "notes.txt").read_text() == "my notes"


def test_an_output_that_is_a_folder_is_named_not_its_temporary(run: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "samples.csv"
    target.mkdir()
    assert main(["sample", str(run), "-n", "3", "--out", str(target)]) == 2
    assert one_line_error(capsys) == f"flowforge: error: {target}: Is a directory\n"
    assert list(tmp_path.iterdir()) == [target]  # no temporary left behind


def test_resume_with_too_few_steps_names_the_steps_asked_for(run: Path, capsys) -> None:
    assert main(["train", "--resume", str(run), "--steps", "10"]) == 2
    assert "has already trained 20 steps, not fewer than --steps 10" in one_line_error(capsys)


def test_one_feature_left_for_a_coupling_model_suggests_another(tmp_path: Path, capsys) -> None:
    table = tmp_path / "theta.csv"
    table.write_text("theta,x\n" + "".join(f"{i % 7},{i % 5}\n" for i in range(60)))
    assert main(["train", "--data", str(table), "--context-columns", "theta", "--steps", "3", "--out", str(tmp_path / "r")]) == 2
    assert "realnvp needs features >= 2" in one_line_error(capsys)


def test_warnings_print_as_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    import flowforge.cli.table_run as run_module

    def broken_plots(*args, **kwargs) -> None:
        raise ValueError("Axis limits cannot be NaN or Inf")

    monkeypatch.setattr(run_module, "write_plots", broken_plots)
    assert main(["train", *TINY_TRAIN, "--steps", "5", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert err == f"flowforge: warning: {tmp_path / 'r' / 'plots'}: plots not drawn (ValueError: Axis limits cannot be NaN or Inf)\n"


def test_a_few_hundred_rows_get_a_smaller_default_model(tmp_path: Path) -> None:
    """8 couplings of 256x256 overfit a few hundred rows within the first checks (iris: 7.4 nats
    against 2.9 for 4 couplings of 64x64); sizes given on the command line are kept."""
    import json

    import numpy as np

    table = tmp_path / "small.csv"
    np.savetxt(table, np.random.default_rng(0).normal(size=(300, 3)), delimiter=",")
    for extra, expected in (([], (4, [64, 64])), (["--layers", "8"], (8, [256, 256]))):
        out = tmp_path / f"run{len(extra)}"
        assert main(["train", "--data", str(table), "--steps", "5", "--threads", "1", "--no-progress", *extra, "--out", str(out)]) == 0
        config = json.loads((out / "config.json").read_text())["config"]
        assert (config["layers"], config["hidden"]) == expected


def test_a_rank_whose_peer_failed_prints_one_line(monkeypatch, capsys) -> None:
    """Under torchrun a collective raises RuntimeError when another rank died: one line, exit 1."""
    from flowforge.cli import train as train_command
    from flowforge.train import distributed

    def peer_gone(args) -> int:
        raise RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:13186\nmore detail")

    monkeypatch.setattr(train_command, "train", peer_gone)
    monkeypatch.setattr(distributed, "made_group", lambda: True)
    assert main(["train", *TINY_TRAIN]) == 1
    err = one_line_error(capsys)
    assert "another process of this torchrun run failed" in err and "Connection closed by peer" in err
    monkeypatch.setattr(distributed, "made_group", lambda: False)  # outside torchrun it is a bug: a traceback
    with pytest.raises(RuntimeError, match="Connection closed"):
        main(["train", *TINY_TRAIN])


def test_an_image_run_whose_plots_fail_still_finishes(tmp_path: Path, monkeypatch, capsys) -> None:
    from flowforge.cli import image_run

    def broken(*args, **kwargs) -> None:
        raise FileExistsError(17, "File exists", str(tmp_path / "run" / "plots"))

    monkeypatch.setattr(image_run, "write_image_plots", broken)
    flags = ["--data", "digits", "--model", "glow", "--n", "200", "--steps", "2", "--layers", "1", "--hidden", "8",
             "--threads", "1", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(["train", *flags]) == 0
    assert (tmp_path / "run" / "metrics.json").is_file() and "plots not drawn (FileExistsError" in capsys.readouterr().err


def test_torch_deprecation_notices_are_left_out_of_the_cli_warnings(capsys) -> None:
    from flowforge.cli.app import _show_warning

    _show_warning("`torch._prims_common.check` is deprecated", FutureWarning, "/x/site-packages/torch/_prims_common/__init__.py", 1)
    _show_warning("old option", FutureWarning, "/x/site-packages/flowforge/train/run.py", 1)
    _show_warning("plots not drawn", RuntimeWarning, "/x/site-packages/torch/foo.py", 1)
    assert capsys.readouterr().err == "flowforge: warning: old option\nflowforge: warning: plots not drawn\n"
