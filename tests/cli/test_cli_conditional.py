"""The command line with the autoregressive and spline models, and conditional runs (--context-columns)."""
import json
import math
import shlex
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
from flowforge.errors import FlowforgeError

from ..helpers import one_line_error

TINY = ["--steps", "20", "--layers", "2", "--hidden", "16", "16", "--batch-size", "64", "--patience", "0", "--no-progress"]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """x ~ N(theta, 0.5^2) and an independent y, with theta ~ U(-2, 2) in the middle column."""
    rng = np.random.default_rng(0)
    theta = rng.uniform(-2, 2, 300)
    rows = np.c_[theta + 0.5 * rng.normal(size=300), theta, rng.normal(size=300)]
    path = tmp_path_factory.mktemp("table") / "table.csv"
    np.savetxt(path, rows, fmt="%.6f", delimiter=",", header="x,theta,y", comments="")
    return path


@pytest.fixture(scope="module")
def run(table: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cond") / "run"
    assert main(["train", "--data", str(table), "--model", "maf", "--context-columns", "theta", *TINY, "--out", str(folder)]) == 0
    return folder


@pytest.mark.parametrize("model", ["maf", "iaf", "nsf", "nsf-ar"])
def test_train_each_model(model: str, tmp_path) -> None:
    folder = tmp_path / model
    assert main(["train", "--data", "moons", "--n", "200", "--model", model, *TINY, "--out", str(folder)]) == 0
    metrics = json.loads((folder / "metrics.json").read_text())
    assert math.isfinite(metrics["test_nll"]) and metrics["steps_run"] == 20
    assert json.loads((folder / "config.json").read_text())["model"]["model"] == model
    assert flowforge.load(folder).spec["model"] == model and (folder / "plots" / "density.png").is_file()


def test_conditional_run_records_its_context(run: Path, table: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    assert config["context"] == {"columns": [1], "names": ["theta"]} and config["features"] == 2
    assert config["config"]["context_columns"] == "theta"
    assert TrainConfig.from_dict(config["config"]).context_columns == "theta"
    flow = flowforge.load(run)
    assert flow.context_features == 1 and flow.event_shape == (2,)
    assert {p.name for p in (run / "plots").iterdir()} == {"training_curve.png", "samples.png"}  # no density: conditional


def test_conditional_test_nll_uses_the_context(run: Path, table: Path) -> None:
    _, test = data.split(data.read_array(table), test_fraction=0.2, seed=0)
    x, context = torch.from_numpy(test[:, [0, 2]]), torch.from_numpy(test[:, [1]])
    metrics = json.loads((run / "metrics.json").read_text())
    assert flowforge.mean_nll(flowforge.load(run), x, context) == pytest.approx(metrics["test_nll"], rel=1e-5)


def test_context_columns_by_index(table: Path, tmp_path) -> None:
    assert main(["train", "--data", str(table), "--model", "nsf-ar", "--context-columns", "1,2", *TINY, "--out", str(tmp_path / "r")]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["context"] == {"columns": [1, 2], "names": ["theta", "y"]} and config["features"] == 1


def test_sample_broadcasts_one_context(run: Path, tmp_path) -> None:
    assert main(["sample", str(run), "-n", "6", "--seed", "2", "--context", "1.5", "--out", str(tmp_path / "s.npy")]) == 0
    flow = flowforge.load(run)  # building the model draws random numbers: seed after
    torch.manual_seed(2)
    expected = flow.sample(6, context=torch.tensor([1.5]))
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), expected.numpy(), rtol=1e-6)
    assert main(["sample", str(run), "-n", "6", "--seed", "2", "--context=-1", "--out", str(tmp_path / "t.npy")]) == 0
    assert not np.allclose(np.load(tmp_path / "t.npy"), expected.numpy())


def test_sample_with_a_context_file(run: Path, table: Path, tmp_path) -> None:
    np.savetxt(tmp_path / "c.csv", [[-1.0], [1.5]], header="c", comments="")
    assert main(["sample", str(run), "-n", "4", "--context-file", str(tmp_path / "c.csv"), "--out", str(tmp_path / "s.npy")]) == 0
    flow = flowforge.load(run)
    torch.manual_seed(0)
    expected = flow.sample(8, context=torch.tensor([[-1.0]] * 4 + [[1.5]] * 4))
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), expected.numpy(), rtol=1e-6)
    # the training table itself: its 'theta' column is found by name, one context per row
    assert main(["sample", str(run), "-n", "1", "--context-file", str(table), "--out", str(tmp_path / "t.npy")]) == 0
    assert np.load(tmp_path / "t.npy").shape == (300, 2)


def test_score_reads_the_context_columns(run: Path, table: Path, tmp_path, capsys) -> None:
    rows = data.read_array(table)
    flow = flowforge.load(run)
    expected = flow.log_prob(torch.from_numpy(rows[:, [0, 2]]), torch.from_numpy(rows[:, [1]])).detach().numpy()
    reordered = tmp_path / "reordered.csv"  # by header name, wherever the column is
    np.savetxt(reordered, rows[:, [1, 2, 0]], fmt="%.6f", delimiter=",", header="theta,y,x", comments="")
    np.save(tmp_path / "rows.npy", rows)  # no header: at the recorded index
    for path in (table, tmp_path / "rows.npy"):
        assert main(["score", str(run), "--data", str(path), "--out", str(tmp_path / "s.npy")]) == 0
        np.testing.assert_allclose(np.load(tmp_path / "s.npy")[:, 0], expected, rtol=1e-5, atol=1e-5)
    assert main(["score", str(run), "--data", str(reordered), "--out", str(tmp_path / "s.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "s.npy")[:, 0], expected, rtol=1e-5, atol=1e-5)  # x's columns by name too
    renamed = tmp_path / "renamed.csv"
    np.savetxt(renamed, rows, fmt="%.6f", delimiter=",", header="x,theta,q", comments="")
    assert main(["score", str(run), "--data", str(renamed)]) == 2
    assert "renamed.csv has no column named 'y'; the model's columns are x, y" in one_line_error(capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "{run}", "-n", "3"], "conditional model: give its 1 context value(s)"),
        (["sample", "{run}", "-n", "3", "--context", "1,2"], "takes 1 context value(s), got 2"),
        (["sample", "{run}", "-n", "3", "--context", "-1,2"], "--context=-1,2"),
        (["sample", "{run}", "-n", "3", "--context", "a"], "comma-separated numbers"),
        (["score", "{run}", "--data", "{other}"], "no column named 'theta'"),
        (["train", "--data", "{table}", "--context-columns", "phi"], "no column named 'phi'; its columns are x, theta, y"),
        (["train", "--data", "{table}", "--context-columns", "3"], "column index 3 is out of range"),
        (["train", "--data", "{table}", "--context-columns", "x,theta,y"], "none left for x"),
        (["train", "--data", "{table}", "--context-columns", "theta,1"], "named twice"),
    ],
)
def test_errors_are_one_line(argv: list[str], message: str, run: Path, table: Path, tmp_path, capsys) -> None:
    np.savetxt(tmp_path / "other.csv", np.zeros((2, 3)), delimiter=",", header="a,b,c", comments="")
    argv = [a.format(run=run, table=table, other=tmp_path / "other.csv") for a in argv]
    assert main(argv + (["--out", str(tmp_path / "r")] if argv[0] == "train" else [])) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "r").exists()


def test_an_unconditional_run_takes_no_context(tmp_path, capsys) -> None:
    flowforge.save(flowforge.MAF(2, layers=1, hidden=(8,)), tmp_path / "model.pt")
    assert main(["sample", str(tmp_path / "model.pt"), "-n", "3", "--context", "1"]) == 2
    assert "unconditional model: it takes no context" in one_line_error(capsys)


def test_find_columns() -> None:
    assert data.find_columns("b, 0", ["a", "b", "c"], 3, "t.csv") == [1, 0]
    assert data.find_columns("2", None, 3, "t.npy") == [2]
    with pytest.raises(FlowforgeError, match="no header row"):
        data.find_columns("b", None, 3, "t.npy")
    with pytest.raises(FlowforgeError, match="empty name"):
        data.find_columns("a,,b", ["a", "b", "c"], 3, "t.csv")


def test_repeated_header_names_are_never_guessed() -> None:
    names = ["t", "x", "t"]
    with pytest.raises(FlowforgeError, match="2 columns named 't'"):
        data.find_columns("t", names, 3, "dup.csv")
    assert data.find_columns("2", names, 3, "dup.csv") == [2]
    assert data.recorded_columns([2], ["t"], names, 3, "dup.csv") == [2]  # the training file scores as trained
    with pytest.raises(FlowforgeError, match="2 columns named 't', a context column"):
        data.recorded_columns([0], ["t"], ["x", "t", "t"], 3, "other.csv")


@pytest.mark.parametrize("entry", ['{"names": ["t"]}', "5", '{"columns": []}', '{"columns": [0], "names": ["a", "b"]}'])
def test_a_config_with_a_malformed_context_entry_is_named(entry: str, run: Path, table: Path, tmp_path, capsys) -> None:
    broken = tmp_path / "run"
    broken.mkdir()
    (broken / "model.pt").write_bytes((run / "model.pt").read_bytes())
    (broken / "config.json").write_text('{"context": ' + entry + "}")
    assert main(["score", str(broken), "--data", str(table)]) == 2
    assert "is not a flowforge run config (its context entry is" in one_line_error(capsys)


def test_readme_conditional_commands_run(tmp_path, monkeypatch, capsys) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("### Conditional flows", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    for line in block.strip().splitlines():
        argv = shlex.split(line, comments=True)
        if argv[0] == "python":
            subprocess.run([sys.executable, *argv[1:]], check=True, timeout=120)
        else:
            assert argv[0] == "flowforge"
            assert main(argv[1:] + (TINY if argv[1] == "train" else [])) == 0, capsys.readouterr().err  # a shorter run
    assert data.read_array(tmp_path / "x_at_1.5.csv").shape == (1000, 1)
    assert data.read_array(tmp_path / "scores.csv").shape == (5000, 1)
