"""Reliability (issue 6): bad input gets a named error, from the command line and from log_prob,
encode and decode, and a checkpoint that would run code is refused without running it.
Training faults and stop signals: test_reliability_faults.py; kill -9 and resuming: test_reliability_resume.py."""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import flowforge
from flowforge import Flow, FlowforgeError, StandardNormal
from flowforge.cli import main
from flowforge.train.checkpoint import FORMAT_VERSION, read_checkpoint
from flowforge.transforms import Compose
from flowforge.transforms.dequantize import Logit

from .helpers import TINY_TRAIN, Malicious, one_line_error


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reliability") / "run"
    assert main(["train", *TINY_TRAIN, "--steps", "20", "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    texts = {"nan.csv": "a,b\n1,2\n3,nan\n", "word.csv": "a,b\n1,2\n3,x\n", "ragged.csv": "a,b\n1,2\n3\n", "empty.csv": "",
             "header.csv": "a,b\n", "three.csv": "1,2,3\n4,5,6\n"}
    for name, text in texts.items():
        (folder / name).write_text(text)
    np.save(folder / "inf.npy", np.array([[1.0, np.inf], [2, 3]]))
    np.save(folder / "oned.npy", np.arange(10.0))
    np.save(folder / "words.npy", np.array([["a", "b"]]))
    np.save(folder / "complex.npy", np.ones((3, 2), complex))
    np.save(folder / "objects.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    np.save(folder / "images5.npy", np.zeros((4, 1, 5, 5), np.uint8))
    return folder


def _damaged(run: Path, tmp: Path, kind: str) -> Path:
    good = (run / "model.pt").read_bytes()
    path = tmp / f"{kind}.pt"
    if kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "tampered":  # one byte of the last weight tensor's data
        payload = read_checkpoint(run)
        data = payload["state_dict"][next(reversed(payload["state_dict"]))].numpy().tobytes()
        at = good.index(data) + 1
        path.write_bytes(good[:at] + bytes([good[at] ^ 0x40]) + good[at + 1 :])
    else:
        torch.save({**read_checkpoint(run), "format_version": FORMAT_VERSION + 1}, path)
    return path


# every bad input of issue 6, item 1, through the command line: (argv, a fragment of the one-line message)
BAD_INPUTS: dict[str, tuple[Callable[[Path, Path], list[str]], str]] = {
    # train models a file with text or blank cells as a mixed table (tests/cli/test_mixed_run.py); a numeric run's score refuses them
    "nan_in_csv": (lambda f, r: ["score", str(r), "--data", str(f / "nan.csv")], "nan.csv: row 3, column 'b' is NaN/Inf"),
    "inf_in_npy": (lambda f, r: ["train", "--data", str(f / "inf.npy")], "inf.npy: entry [0, 1] is NaN/Inf"),
    "nan_scored": (lambda f, r: ["score", str(r), "--data", str(f / "nan.csv")], "row 3, column 'b' is NaN/Inf"),
    "non_numeric_cell": (lambda f, r: ["score", str(r), "--data", str(f / "word.csv")], "row 3, column 'b': 'x' is not a number"),
    "ragged_row": (lambda f, r: ["train", "--data", str(f / "ragged.csv")], "row 3 has 1 values, expected 2"),
    "empty_file": (lambda f, r: ["train", "--data", str(f / "empty.csv")], "empty.csv is empty"),
    "header_only": (lambda f, r: ["score", str(r), "--data", str(f / "header.csv")], "has a header row but no data rows"),
    "missing_file": (lambda f, r: ["train", "--data", str(f / "missing.csv")], "no such file"),
    "one_d_array": (lambda f, r: ["train", "--data", str(f / "oned.npy")], "expected a 2-D (rows, features) array, got shape (10,)"),
    "string_dtype": (lambda f, r: ["train", "--data", str(f / "words.npy")], "expected real numbers, got dtype <U1"),
    "complex_dtype": (lambda f, r: ["score", str(r), "--data", str(f / "complex.npy")], "expected real numbers, got dtype complex128"),
    "pickled_array": (lambda f, r: ["train", "--data", str(f / "objects.npy")], "holds pickled Python objects"),
    "features_score": (lambda f, r: ["score", str(r), "--data", str(f / "three.csv")], "expects 2 features per row, got 3 features"),
    "features_check": (lambda f, r: ["check", str(r), "--data", str(f / "three.csv")], "expects 2 features per row, got 3 features"),
    "images_to_vector": (lambda f, r: ["score", str(r), "--data", str(f / "images5.npy")], "got shape (4, 1, 5, 5)"),
    "image_size": (lambda f, r: ["train", "--model", "glow", "--data", str(f / "images5.npy")], "1 level needs height and width divisible by 2; got 5x5"),
    "too_few_rows": (lambda f, r: ["train", "--data", str(f / "three.csv"), "--n", "10"], "has 2 rows, fewer than n=10"),
    "unknown_dataset": (lambda f, r: ["train", "--data", "moonz"], "unknown dataset 'moonz'; choose from moons, circles"),
    "unknown_model": (lambda f, r: ["train", "--model", "realnpv"], "unknown model 'realnpv'; choose from "),  # the list grows with the zoo
    "unknown_option": (lambda f, r: ["train", "--stepz", "5"], "did you mean --steps? (valid options: --batch-size"),
    "unknown_command": (lambda f, r: ["trian"], "invalid choice: 'trian' (choose from 'train', 'sample'"),
    "zero_steps": (lambda f, r: ["train", "--steps", "0"], "--steps: expected a positive integer, got '0'"),
    "negative_batch": (lambda f, r: ["train", "--batch-size", "-64"], "--batch-size: expected a positive integer, got '-64'"),
    "zero_lr": (lambda f, r: ["train", "--lr", "0"], "--lr: expected a positive number, got '0'"),
    "nan_lr": (lambda f, r: ["train", "--lr", "nan"], "--lr: expected a positive number, got 'nan'"),
    "zero_layers": (lambda f, r: ["train", "--layers", "0"], "--layers: expected a positive integer, got '0'"),
    "zero_width": (lambda f, r: ["train", "--hidden", "64", "0"], "--hidden: expected a positive integer, got '0'"),
    "one_row": (lambda f, r: ["train", "--n", "1"], "n must be an integer >= 2, got 1"),
    "whole_test_split": (lambda f, r: ["train", "--test-fraction", "1"], "--test-fraction: expected a fraction in [0, 1)"),
    "zero_save_every": (lambda f, r: ["train", "--save-every", "0"], "--save-every: expected a positive integer, got '0'"),
    "zero_samples": (lambda f, r: ["sample", str(r), "-n", "0"], "-n: expected a positive integer, got '0'"),
    "zero_temperature": (lambda f, r: ["sample", str(r), "-n", "3", "--temperature", "0"], "--temperature: expected a positive number"),
    "zero_tolerance": (lambda f, r: ["check", str(r), "--tolerance", "0"], "--tolerance: expected a positive number, got '0'"),
    "unknown_dtype": (lambda f, r: ["check", str(r), "--dtype", "float16"], "invalid choice: 'float16' (choose from 'float32', 'float64')"),
    "resume_changing_options": (lambda f, r: ["train", "--resume", str(r), "--lr", "0.1"], "drop --lr (with --resume only --steps"),
    "resume_not_a_run": (lambda f, r: ["train", "--resume", str(f)], "not a run folder written by flowforge train"),
    "resume_finished": (lambda f, r: ["train", "--resume", str(r)], "has already trained 20 of 20 steps; pass a larger --steps"),
    "missing_checkpoint": (lambda f, r: ["sample", str(f / "nothing"), "-n", "3"], "no checkpoint at"),
    "truncated_checkpoint": (lambda f, r: ["sample", str(_damaged(r, f, "truncated")), "-n", "3"], "is not a readable flowforge checkpoint"),
    "tampered_checkpoint": (lambda f, r: ["sample", str(_damaged(r, f, "tampered")), "-n", "3"], "checksum mismatch"),
    "newer_checkpoint": (lambda f, r: ["sample", str(_damaged(r, f, "newer")), "-n", "3"], "checkpoint format 2 is not supported"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gets_one_named_line_and_status_2(case: str, run: Path, files: Path, tmp_path: Path, capsys) -> None:
    argv, message = BAD_INPUTS[case]
    argv = argv(files, run)
    out = ["--out", str(tmp_path / "out")] if argv[0] == "train" and "--resume" not in argv else []
    assert main([*argv, *out]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "out").exists(), "a failed start writes nothing"


def test_debug_shows_the_traceback_of_a_bad_input(files: Path, run: Path) -> None:
    with pytest.raises(FlowforgeError, match="is not a number"):
        main(["--debug", "score", str(run), "--data", str(files / "word.csv")])


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(run: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "evil"
    evil.mkdir()
    with open(evil / "model.pt", "wb") as handle:
        pickle.dump({**read_checkpoint(run), "extra": Malicious(marker)}, handle)
    for argv in (["sample", str(evil), "-n", "3"], ["score", str(evil), "--data", str(run / "config.json")], ["check", str(evil)]):
        assert main(argv) == 2
        assert "is not a readable flowforge checkpoint" in one_line_error(capsys)
    assert not marker.exists()


# -- log_prob, encode, decode: outside a layer's support, overflow, bad shapes --------------------------------
def test_log_prob_outside_a_layer_support_is_minus_inf_and_encode_raises() -> None:
    flow = Flow(Compose([Logit()]), StandardNormal(2))
    x = torch.tensor([[0.5, 0.5], [1.5, 0.2], [-0.1, 0.3], [0.0, 1.0]])
    log_prob = flow.log_prob(x)
    assert torch.isfinite(log_prob[[0, 3]]).all() and torch.equal(log_prob[1:3], torch.full((2,), -torch.inf))
    with pytest.raises(FlowforgeError, match=r"encode: x row 1 maps to NaN or Inf: it lies outside a layer's support"):
        flow.encode(x)
    assert torch.isfinite(flow.encode(x[[0, 3]])).all()


def test_overflow_is_named_never_nan() -> None:
    flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
    with pytest.raises(FlowforgeError, match="x: values too large for this flow's float32"):
        flow.log_prob(torch.tensor([[1e300, 0.0]], dtype=torch.float64))
    assert flow.log_prob(torch.tensor([[3e38, 0.0]])).item() == -torch.inf
    with pytest.raises(FlowforgeError, match="decode: z row 0 maps to NaN or Inf"):
        flowforge.Glow(2, layers=1, hidden=(8,)).decode(torch.tensor([[3e38, -3e38]]))


@pytest.mark.parametrize(
    "make, x, message",
    [
        (lambda: flowforge.RealNVP(2, layers=1, hidden=(8,)), torch.zeros(4), r"expected shape \(batch, 2\), got \(4,\)"),
        (lambda: flowforge.RealNVP(2, layers=1, hidden=(8,)), torch.zeros(4, 3), r"expected shape \(batch, 2\), got \(4, 3\)"),
        (lambda: flowforge.RealNVP(2, layers=1, hidden=(8,)), torch.zeros(4, 2, dtype=torch.bool), "expected a floating-point tensor"),
        (lambda: flowforge.RealNVP(2, layers=1, hidden=(8,)), torch.tensor([[0.0, float("nan")]]), "x contains NaN or Inf"),
        (lambda: flowforge.RealNVP(2, layers=1, hidden=(8,)), "text", "expected a tensor or an array of numbers"),
        (lambda: flowforge.ImageGlow((1, 8, 8), levels=2, steps_per_level=1, hidden_channels=8), torch.zeros(3, 1, 6, 6),
         r"expected shape \(batch, 1, 8, 8\), got \(3, 1, 6, 6\)"),
    ],
    ids=["1-D", "features", "booleans", "nan", "string", "image_size"],
)
def test_bad_tensors_are_named(make, x, message: str) -> None:
    with pytest.raises(FlowforgeError, match=message):
        make().log_prob(x)

