"""DDP: a 2-process gloo run (launched by torchrun from the test) equals a single process."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ..helpers import launch

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(out: Path, processes: int, *extra: str) -> None:
    launch([str(WORKER), str(out), *extra], processes)


def _cli(flags: list[str], out: Path, processes: int) -> str:
    """`flowforge <flags> --out out` in one process or under torchrun; returns its stdout."""
    return launch(["-m", "flowforge", *flags, "--out", str(out)], processes).stdout


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


@pytest.mark.parametrize("stop_rank", [[], ["--stop-rank", "1"]], ids=["every-rank", "rank-1-only"])
def test_ddp_resume_after_interruption_matches(stop_rank: list[str], tmp_path: Path) -> None:
    """A stop asked on one rank only (a signal that reached it first) stops every rank on the same step."""
    _run(tmp_path / "single.pt", 1)
    _run(tmp_path / "ddp.pt", 2, "--stop-at", "25", *stop_rank)
    assert (tmp_path / "ddp.state.pt").exists() and not (tmp_path / "ddp.pt").exists()
    _run(tmp_path / "ddp.pt", 2)
    _assert_same_weights(tmp_path / "single.pt", tmp_path / "ddp.pt")


def test_torchrun_cli_train_matches_single_process(tmp_path: Path) -> None:
    """`torchrun -m flowforge train` (2 ranks) writes one run folder equal to a 1-process run's."""
    flags = ["train", "--data", "moons", "--steps", "30", "--layers", "2", "--hidden", "16", "16", "--threads", "1", "--no-progress"]
    _cli(flags, tmp_path / "one", processes=1)
    assert _cli(flags, tmp_path / "two", processes=2).count("test_nll") == 1  # rank 0 alone reports
    one, two = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two"))
    assert abs(one["test_nll"] - two["test_nll"]) < 1e-4
    assert abs(one["train_nll"] - two["train_nll"]) < 1e-4  # the global batch's NLL, not rank 0's half
    lines = [[json.loads(row)["train_nll"] for row in (tmp_path / name / "metrics.jsonl").read_text().splitlines()] for name in ("one", "two")]
    assert len(lines[0]) == len(lines[1]) and max(abs(a - b) for a, b in zip(*lines)) < 1e-4
    assert sorted(p.name for p in (tmp_path / "two").rglob("*")) == sorted(p.name for p in (tmp_path / "one").rglob("*"))
    left, right = (torch.load(tmp_path / name / "model.pt", weights_only=True)["state_dict"] for name in ("one", "two"))
    for key in left:
        torch.testing.assert_close(left[key], right[key], rtol=1e-3, atol=1e-4, msg=key)


def test_torchrun_image_run_trains_on_both_ranks_and_writes_one_folder(tmp_path: Path) -> None:
    """An image model under `torchrun -m flowforge train`: DDP on the shards of each batch, one folder."""
    flags = ["train", "--data", "digits", "--model", "glow", "--steps", "12", "--layers", "1", "--hidden", "8",
             "--rows", "200", "--threads", "1", "--no-progress"]
    _cli(flags, tmp_path / "one", processes=1)
    assert _cli(flags, tmp_path / "two", processes=2).count("test_bpd") == 1  # rank 0 alone reports
    assert sorted(p.name for p in (tmp_path / "two").rglob("*")) == sorted(p.name for p in (tmp_path / "one").rglob("*"))
    one, two = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two"))
    assert two["steps_run"] == 12 and two["n_train"] == one["n_train"]
    # the same global batches; only the dequantisation noise differs (each rank draws its own shard's)
    assert abs(one["test_bpd"] - two["test_bpd"]) < 0.05 * one["test_bpd"]


def test_torchrun_demo_reports_once_after_the_plots(tmp_path: Path) -> None:
    out = launch(["-m", "flowforge", "demo", "--steps", "5", "--out", str(tmp_path / "demo")], 2).stdout
    assert out.count("run folder:") == 1 and out.count("plots:") == 1
    assert len(out.split("plots:")[1].split(",")) == 3  # every plot was drawn before rank 0 listed them
