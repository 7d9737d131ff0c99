"""Reliability (issue 6): bad input gets a named error, training faults lose nothing, checkpoints
survive kill -9 and never run code, SIGINT/SIGTERM stop cleanly and resuming is bit-exact."""
from __future__ import annotations

import json
import os
import pickle
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
from flowforge import Flow, FlowforgeError, StandardNormal
from flowforge.cli import main
from flowforge.train.checkpoint import FORMAT_VERSION, atomic_write_text, read_checkpoint, remove_stale_temporaries
from flowforge.train.config import TrainConfig
from flowforge.train.guard import RunCheckpoint, StopSignals
from flowforge.train.run import _metrics, fit_run
from flowforge.transforms import Compose
from flowforge.transforms.dequantize import Logit

from .helpers import Malicious, one_line_error

TINY = ["--data", "moons", "--n", "600", "--layers", "2", "--hidden", "16", "--batch-size", "64", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reliability") / "run"
    assert main(["train", *TINY, "--steps", "20", "--out", str(folder)]) == 0
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
    "nan_in_csv": (lambda f, r: ["train", "--data", str(f / "nan.csv")], "nan.csv: row 3, column 'b' is NaN/Inf"),
    "inf_in_npy": (lambda f, r: ["train", "--data", str(f / "inf.npy")], "inf.npy: entry [0, 1] is NaN/Inf"),
    "nan_scored": (lambda f, r: ["score", str(r), "--data", str(f / "nan.csv")], "row 3, column 'b' is NaN/Inf"),
    "non_numeric_cell": (lambda f, r: ["train", "--data", str(f / "word.csv")], "row 3, column 'b': 'x' is not a number"),
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
    "image_size": (lambda f, r: ["train", "--model", "glow", "--data", str(f / "images5.npy")], "height and width divisible by 4"),
    "too_few_rows": (lambda f, r: ["train", "--data", str(f / "three.csv"), "--n", "10"], "has 2 rows, fewer than n=10"),
    "unknown_dataset": (lambda f, r: ["train", "--data", "moonz"], "unknown dataset 'moonz'; choose from moons, circles"),
    "unknown_model": (lambda f, r: ["train", "--model", "realnpv"], "unknown model 'realnpv'; choose from glow, iaf"),
    "unknown_option": (lambda f, r: ["train", "--stepz", "5"], "did you mean --steps? (valid options: --batch-size"),
    "unknown_command": (lambda f, r: ["trian"], "invalid choice: 'trian' (choose from 'train', 'sample'"),
    "zero_steps": (lambda f, r: ["train", "--steps", "0"], "--steps: expected a positive integer, got '0'"),
    "negative_batch": (lambda f, r: ["train", "--batch-size", "-64"], "--batch-size: expected a positive integer, got '-64'"),
    "zero_lr": (lambda f, r: ["train", "--lr", "0"], "--lr: expected a positive number, got '0'"),
    "nan_lr": (lambda f, r: ["train", "--lr", "nan"], "--lr: expected a positive number, got 'nan'"),
    "zero_layers": (lambda f, r: ["train", "--layers", "0"], "--layers: expected a positive integer, got '0'"),
    "zero_width": (lambda f, r: ["train", "--hidden", "64", "0"], "--hidden: expected a positive integer, got '0'"),
    "one_row": (lambda f, r: ["train", "--n", "1"], "n must be an integer >= 2, got 1"),
    "whole_test_split": (lambda f, r: ["train", "--test-fraction", "1"], "--test-fraction: expected a fraction strictly between 0 and 1"),
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


def test_debug_shows_the_traceback_of_a_bad_input(files: Path) -> None:
    with pytest.raises(FlowforgeError, match="is not a number"):
        main(["--debug", "train", "--data", str(files / "word.csv")])


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
        (lambda: flowforge.RealNVP(2, layers=1, hidden=(8,)), torch.zeros(4, 2, dtype=torch.long), "expected a floating-point tensor"),
        (lambda: flowforge.RealNVP(2, layers=1, hidden=(8,)), torch.tensor([[0.0, float("nan")]]), "x contains NaN or Inf"),
        (lambda: flowforge.RealNVP(2, layers=1, hidden=(8,)), "text", "expected a tensor or an array of numbers"),
        (lambda: flowforge.ImageGlow((1, 8, 8), levels=2, steps_per_level=1, hidden_channels=8), torch.zeros(3, 1, 6, 6),
         r"expected shape \(batch, 1, 8, 8\), got \(3, 1, 6, 6\)"),
    ],
    ids=["1-D", "features", "integers", "nan", "string", "image_size"],
)
def test_bad_tensors_are_named(make, x, message: str) -> None:
    with pytest.raises(FlowforgeError, match=message):
        make().log_prob(x)


# -- training faults -----------------------------------------------------------------------------------------
def poison(flow: Flow, bad_calls: set[int]) -> Flow:
    """Make the flow's last layer return a NaN log-det on the chosen training calls (from 0)."""
    calls = [0]

    def hook(layer, inputs, output):
        if not layer.training:
            return output
        calls[0] += 1
        return (output[0], output[1] + float("nan")) if calls[0] - 1 in bad_calls else output

    flow.transform[-1].register_forward_hook(hook)
    return flow


def test_skipped_steps_reach_metrics_and_only_finite_weights_are_saved(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    flow = poison(flowforge.RealNVP(2, layers=2, hidden=(8,)), {3, 7, 8})
    config = TrainConfig(steps=20, batch_size=32, patience=None, progress=False, save_every=5, out=str(tmp_path))
    history, stopped_by = fit_run(flow, x[:250], config, tmp_path)
    assert stopped_by is None and _metrics(flow, history, x[:250], x[250:])["skipped_steps"] == 3
    state = read_checkpoint(tmp_path)["train_state"]
    assert state["step"] == 20 and state["history"]["skipped_steps"] == 3
    with pytest.raises(FlowforgeError, match=r"non-finite weights in the training state \(live_model\)"):
        RunCheckpoint(flowforge.RealNVP(2, layers=1, hidden=(8,)), tmp_path / "other.pt", {})(
            {**state, "live_model": {"w": torch.tensor([float("nan")])}})
    assert not (tmp_path / "other.pt").exists()


def test_python_fit_interrupted_and_resumed_is_bit_exact() -> None:
    x = torch.randn(400, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 0.3])

    def train(stop_at: int | None = None, resume: dict | None = None, weights: dict | None = None):
        torch.manual_seed(0)
        flow, saved, calls = flowforge.RealNVP(2, layers=2, hidden=(8,)), {}, [0]
        if weights is not None:
            flow.load_state_dict(weights)

        def should_stop() -> bool:
            calls[0] += 1
            return stop_at is not None and calls[0] > stop_at

        flowforge.fit(flow, x, steps=40, batch_size=64, eval_every=5, progress=False, resume=resume,
                      on_checkpoint=saved.update, should_stop=should_stop)
        return flow, dict(saved)

    whole, _ = train()
    half, state = train(stop_at=17)
    assert state["step"] == 17 and state["history"]["interrupted"]
    resumed, final = train(resume=state, weights=half.state_dict())
    assert "live_model" in final and not final["history"]["interrupted"]
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())


def test_stop_signals_ask_once_then_interrupt() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # Python runs handlers between bytecodes
        assert stop() and stop.received == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGTERM) is before


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
    assert main(["train", *TINY, *steps, "--out", str(tmp_path / "whole")]) == 0
    folder, model = tmp_path / "parts", tmp_path / "parts" / "model.pt"
    for signum, argv in ((signal.SIGINT, ["train", *TINY, *steps, "--save-every", "5", "--out", str(folder)]),
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
    assert main(["train", *TINY, *big, "--steps", "2", "--out", str(folder)]) == 0
    capsys.readouterr()
    rng, killed_mid_save, step = random.Random(0), 0, 2
    for round in range(3):
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
    assert main(["train", *TINY, "--data", str(data), "--steps", "4", "--out", str(tmp_path / "r")]) == 0
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
    assert main(["train", *TINY, "--steps", "4", "--out", str(folder)]) == 0
    resolved = json.loads((folder / "config.json").read_text())
    resolved["config"]["device"] = "cuda"  # as written by a run on a GPU machine
    (folder / "config.json").write_text(json.dumps(resolved))
    assert main(["train", "--resume", str(folder), "--steps", "8"]) == 2
    assert "no CUDA device" in one_line_error(capsys)
    assert main(["train", "--resume", str(folder), "--steps", "8", "--device", "cpu"]) == 0
    assert read_checkpoint(folder)["train_state"]["step"] == 8
    assert json.loads((folder / "metrics.json").read_text())["steps_run"] == 8
