"""The command line end to end, in-process (fast) with two subprocess checks of the entry points."""
import json
import math
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import flowforge
from flowforge import data
from flowforge.cli import main
from flowforge.cli.config import TrainConfig
from flowforge.cli.run_folder import default_folder

from ..helpers import one_line_error

TINY = ["--data", "moons", "--n", "500", "--steps", "30", "--layers", "2", "--hidden", "16", "16", "--batch-size", "128", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(folder)]) == 0
    return folder


def test_train_writes_the_run_folder(run: Path) -> None:
    for name in ["config.json", "model.pt", "metrics.json", "metrics.jsonl", "plots/training_curve.png", "plots/samples.png", "plots/density.png"]:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ["test_nll", "train_nll", "best_val_nll", "best_step", "steps_run", "stopped_early", "skipped_steps",
                "train_seconds", "n_train", "n_test", "features", "parameters"]:
        assert key in metrics, key
    assert math.isfinite(metrics["test_nll"]) and (metrics["steps_run"] == 30 or metrics["stopped_early"])
    assert (metrics["n_train"], metrics["n_test"], metrics["features"]) == (400, 100, 2)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == metrics["steps_run"] and set(rows[-1]) == {"step", "train_nll", "val_nll", "lr"}
    config = json.loads((run / "config.json").read_text())
    assert config["features"] == 2 and config["data"]["spec"] == "moons" and config["config"]["hidden"] == [16, 16]
    assert TrainConfig.from_dict(config["config"]).steps == 30


def test_test_nll_is_the_held_out_nll_on_the_original_scale(run: Path) -> None:
    flow = flowforge.load(run)
    _, test = data.split(data.load_dataset("moons", n=500, seed=0), test_fraction=0.2, seed=0)
    metrics = json.loads((run / "metrics.json").read_text())
    assert flowforge.mean_nll(flow, torch.from_numpy(test)) == pytest.approx(metrics["test_nll"], rel=1e-5)


def test_train_prints_folder_and_test_nll(tmp_path, capsys) -> None:
    assert main(["train", *TINY, "--steps", "5", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"run folder: {tmp_path / 'r'}" in out and "test_nll:" in out


def test_train_refuses_a_non_empty_run_folder(run: Path, capsys) -> None:
    assert main(["train", *TINY, "--out", str(run)]) == 2
    assert "already exists" in one_line_error(capsys)


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_sample_to_file(run: Path, tmp_path, suffix: str) -> None:
    out = tmp_path / f"x{suffix}"
    assert main(["sample", str(run), "-n", "7", "--seed", "3", "--out", str(out)]) == 0
    x = np.load(out) if suffix == ".npy" else data.read_array(out)
    assert x.shape == (7, 2) and np.isfinite(x).all()


def test_sample_to_stdout_is_csv_and_seeded(run: Path, capsys) -> None:
    main(["sample", str(run), "-n", "5", "--temperature", "0.5"])
    first = capsys.readouterr().out
    main(["sample", str(run), "-n", "5", "--temperature", "0.5"])
    lines = first.splitlines()
    assert lines[0] == "x0,x1" and len(lines) == 6 and capsys.readouterr().out == first


def test_sample_rejects_an_unknown_extension(run: Path, tmp_path, capsys) -> None:
    assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "x.txt")]) == 2
    assert ".txt" in one_line_error(capsys)


def test_score_writes_per_row_log_prob(run: Path, tmp_path, capsys) -> None:
    x = np.random.default_rng(0).normal(size=(9, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["score", str(run), "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "s.csv")]) == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "log_prob" and len(lines) == 10
    expected = flowforge.load(run).log_prob(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose([float(v) for v in lines[1:]], expected, rtol=1e-5, atol=1e-5)
    assert f"mean NLL: {-expected.mean():.4f}" in capsys.readouterr().out


def test_rows_that_score_minus_infinity_are_named(run: Path, tmp_path, capsys) -> None:
    np.save(tmp_path / "far.npy", np.array([[0.0, 0.0], [1e30, 0.0], [1e20, 0.0]], np.float32))
    assert main(["score", str(run), "--data", str(tmp_path / "far.npy")]) == 0
    err = capsys.readouterr().err
    assert "2 of 3 rows score -inf (the first is data row 2" in err
    assert "over the 1 of 3 rows that score finitely (2 scoring -inf left out)" in err and "mean NLL: inf" not in err


def test_a_text_file_named_npy_and_running_out_of_memory_are_one_line(run: Path, tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "t.npy").write_text("a,b\n1,2\n")
    assert main(["score", str(run), "--data", str(tmp_path / "t.npy")]) == 2
    assert "t.npy is not a NumPy file (no .npy header)" in one_line_error(capsys)  # not numpy's allow_pickle advice

    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 800000000 bytes")

    monkeypatch.setattr(flowforge.Flow, "sample", exhausted)
    assert main(["sample", str(run), "-n", "100000000"]) == 1
    assert "out of memory (DefaultCPUAllocator" in one_line_error(capsys)


def test_score_to_stdout(run: Path, tmp_path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    assert main(["score", str(run), "--data", str(tmp_path / "x.npy")]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "log_prob" and len(captured.out.splitlines()) == 4
    assert "mean NLL" in captured.err


def test_score_finds_the_columns_by_header_name(tmp_path, capsys) -> None:
    """Columns swapped in the scored file were scored by position: NLL 4246 instead of 5.1."""
    rows = np.c_[np.random.default_rng(3).normal(size=200), 100 + 10 * np.random.default_rng(4).normal(size=200)]
    np.savetxt(tmp_path / "ab.csv", rows, delimiter=",", header="a,b", comments="")
    assert main(["train", "--data", str(tmp_path / "ab.csv"), "--steps", "5", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    variants = {"ba.csv": ("b,a", rows[:, ::-1]), "id.csv": ("id,a,b", np.c_[np.arange(200), rows]), "plain.csv": (None, rows)}
    scores = []
    for name, (header, values) in variants.items():
        np.savetxt(tmp_path / name, values, delimiter=",", **({"header": header, "comments": ""} if header else {}))
        assert main(["score", str(tmp_path / "run"), "--data", str(tmp_path / name), "--out", str(tmp_path / "s.npy")]) == 0
        scores.append(np.load(tmp_path / "s.npy"))
    for other in scores[1:]:
        np.testing.assert_array_equal(other, scores[0])
    np.savetxt(tmp_path / "aq.csv", rows, delimiter=",", header="a,q", comments="")
    assert main(["score", str(tmp_path / "run"), "--data", str(tmp_path / "aq.csv")]) == 2
    assert "aq.csv has no column named 'b'" in one_line_error(capsys)
    # the README's flow: samples are written under the training file's names, and score reads them back
    assert main(["sample", str(tmp_path / "run"), "-n", "4", "--out", str(tmp_path / "s.csv")]) == 0
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "a,b"
    assert main(["score", str(tmp_path / "run"), "--data", str(tmp_path / "s.csv")]) == 0
    np.savetxt(tmp_path / "old.csv", rows, delimiter=",", header="x0,x1", comments="")  # an older sample's header: by position
    assert main(["score", str(tmp_path / "run"), "--data", str(tmp_path / "old.csv"), "--out", str(tmp_path / "s.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), scores[0])


def test_score_names_a_wrong_feature_count(run: Path, tmp_path, capsys) -> None:
    np.save(tmp_path / "x3.npy", np.zeros((4, 3), np.float32))
    assert main(["score", str(run), "--data", str(tmp_path / "x3.npy")]) == 2
    err = one_line_error(capsys)
    assert "expects 2 features" in err and "got 3" in err


def test_demo_with_a_short_budget(tmp_path, capsys) -> None:
    assert main(["demo", "--steps", "20", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "density.png" in out and "test_nll:" in out
    assert {p.name for p in (tmp_path / "demo" / "plots").iterdir()} == {"training_curve.png", "samples.png", "density.png"}
    assert flowforge.load(tmp_path / "demo").event_shape == (2,)


@pytest.mark.parametrize("command", [[], ["train"], ["sample"], ["score"], ["demo"]])
def test_help(command: list[str], capsys) -> None:
    assert main([*command, "--help"]) == 0
    assert "usage: flowforge" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "nosuch", "--steps", "5"], "unknown model 'nosuch'"),
        (["train", "--data", "nosuch", "--steps", "5"], "unknown dataset 'nosuch'"),
        (["train", "--data", "missing.csv", "--steps", "5"], "missing.csv"),
        (["train", "--steps", "0"], "--steps"),
        (["train", "--hidden"], "--hidden"),
        (["train", "--memory", "none", "--steps", "5"], "--memory"),
        (["sample", "no/such/run", "-n", "3"], "no checkpoint"),
        (["score", "no/such/run", "--data", "x.csv"], "no checkpoint"),
        (["sample"], "required"),
        (["nosuch"], "invalid choice"),
        (["train", "--seed", "99999999999999999999", "--steps", "5"], "--seed: expected an integer from 0 to 2**32 - 1"),
        (["sample", "no/such/run", "-n", "2", "--seed", str(2**32)], "--seed: expected an integer from 0 to 2**32 - 1"),
    ],
)
def test_errors_are_one_line_with_status_2(argv: list[str], message: str, tmp_path, capsys) -> None:
    assert main([*argv, "--out", str(tmp_path / "r")] if argv[0] == "train" else argv) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "r").exists()  # nothing written for a failed start


def test_debug_shows_the_traceback() -> None:
    with pytest.raises(flowforge.FlowforgeError, match="no checkpoint"):
        main(["--debug", "sample", "no/such/run", "-n", "3"])
    with pytest.raises(flowforge.FlowforgeError):
        main(["sample", "no/such/run", "-n", "3", "--debug"])


def test_config_rejects_unknown_options_and_bad_values() -> None:
    with pytest.raises(flowforge.FlowforgeError, match="stepz"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(flowforge.FlowforgeError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(flowforge.FlowforgeError, match="unknown model"):
        TrainConfig(model="nosuch")
    with pytest.raises(flowforge.FlowforgeError, match="unknown memory 'none'"):
        TrainConfig(memory="none")
    assert TrainConfig.from_dict(TrainConfig(hidden=[8]).to_dict()) == TrainConfig(hidden=(8,))


@pytest.mark.parametrize("model", ["realnvp", "nsf"])
def test_train_with_memory_invertible_saves_an_invertible_flow(model: str, run: Path, tmp_path) -> None:
    from flowforge.transforms.recompute import InvertibleCompose

    folder = tmp_path / "inv"
    assert main(["train", *TINY, "--model", model, "--memory", "invertible", "--out", str(folder)]) == 0
    flow = flowforge.load(folder)
    assert isinstance(flow.transform, InvertibleCompose)
    assert json.loads((folder / "config.json").read_text())["config"]["memory"] == "invertible"
    if model == "realnvp":  # the same seed, data and steps train the same weights as the standard run
        standard = flowforge.load(run)
        for (name, a), b in zip(flow.state_dict().items(), standard.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_image_train_with_memory_invertible_saves_an_invertible_flow(tmp_path) -> None:
    from flowforge.transforms.recompute import InvertibleCompose

    folder = tmp_path / "digits"
    tiny = ["--steps", "4", "--layers", "1", "--hidden", "8", "--batch-size", "32", "--no-progress"]
    assert main(["train", "--data", "digits", "--model", "glow", *tiny, "--memory", "invertible", "--out", str(folder)]) == 0
    flow = flowforge.load(folder)
    assert flow.spec["model"] == "image-glow" and flow.spec["kwargs"]["memory"] == "invertible"
    assert isinstance(flow.transform[-1], InvertibleCompose)  # the multi-scale body, after Dequantize
    assert json.loads((folder / "config.json").read_text())["config"]["memory"] == "invertible"


def test_default_folder_never_reuses_a_folder(tmp_path) -> None:
    first = default_folder("moons-realnvp", root=tmp_path)
    first.mkdir()
    second = default_folder("moons-realnvp", root=tmp_path)
    assert second != first and second.name.startswith("moons-realnvp-")


def test_python_m_flowforge_help() -> None:
    done = subprocess.run([sys.executable, "-m", "flowforge", "--help"], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout and "demo" in done.stdout


def test_console_script_error_is_one_line() -> None:
    script = Path(sys.executable).with_name("flowforge")
    if not script.exists():
        pytest.skip("the flowforge console script is not installed next to this python")
    done = subprocess.run([str(script), "train", "--model", "nosuch"], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2 and done.stderr.startswith("flowforge: error: unknown model") and done.stderr.count("\n") == 1


def test_readme_python_quickstart_runs(tmp_path, monkeypatch) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 10 and "steps=1000" in code
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart.py").write_text(code.replace("steps=1000", "steps=20"))  # the same code, a shorter run
    runpy.run_path(str(tmp_path / "quickstart.py"))
    assert flowforge.load(tmp_path / "moons.pt").event_shape == (2,)


def test_test_fraction_0_trains_on_every_row(tmp_path, capsys) -> None:
    """A user with a test file of their own keeps every row for training."""
    assert main(["train", *TINY, "--test-fraction", "0", "--out", str(tmp_path / "run")]) == 0
    assert "test_nll: n/a (0 held-out rows" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_test"] == 0 and metrics["n_train"] == 500 and metrics["test_nll"] is None
    assert (tmp_path / "run" / "plots" / "samples.png").is_file()
