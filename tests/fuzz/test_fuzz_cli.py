"""Fuzz the command line in-process: random arguments and random CSV files give exit status 0 with
a correct result, 1 (check past its tolerance) or 2 with one error line; no traceback, no half-written file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import flowforge
from flowforge.cli import main
from flowforge.tables import TableFlow

from .strategies import FUZZ, csv_texts, numbers

TINY = ["--n", "300", "--layers", "1", "--hidden", "8", "--batch-size", "32", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz_cli")
    assert main(["train", "--data", "moons", *TINY, "--steps", "3", "--out", str(folder / "run")]) == 0
    np.savetxt(folder / "good.csv", np.random.default_rng(0).normal(size=(5, 2)), delimiter=",")
    (folder / "bad.csv").write_text("a,b\n1,x\n")
    return folder


def _check_outcome(code: int, err: str) -> None:
    assert code in (0, 1, 2), code
    assert "Traceback" not in err
    if code == 2:  # one error line, last; only warnings (a schema notice, say) before it
        lines = err.splitlines()
        assert lines and lines[-1].startswith("flowforge: error: ") and err.endswith("\n"), err
        assert all(line.startswith("flowforge: warning: ") for line in lines[:-1]), err


def _no_temporaries(folder: Path) -> None:
    assert not [p.name for p in folder.rglob("*.tmp")], "a temporary file was left behind"


def _tokens(place: Path) -> st.SearchStrategy[str]:
    paths = [str(place / name) for name in ("run", "good.csv", "bad.csv", "missing.csv", "run/model.pt", "out.csv", "out.npy", "out.txt")]
    options = ["-n", "--data", "--out", "--seed", "--temperature", "--dtype", "--tolerance", "--logdet-tolerance", "--context",
               "--context-file", "--debugg", "--", "-x", "--help"]
    values = ["0", "1", "3", "-2", "0.5", "nan", "inf", "1e-9", "float64", "float16", "1,2", "", "é"]
    return st.one_of(st.sampled_from(paths), st.sampled_from(options), st.sampled_from(values), st.text(max_size=3))


@FUZZ
@given(data=st.data())
def test_random_arguments(place: Path, data, capsys) -> None:
    command = data.draw(st.sampled_from(["sample", "score", "check"]))
    argv = [command, *data.draw(st.lists(_tokens(place), max_size=6))]
    for name in ("out.csv", "out.npy"):
        (place / name).unlink(missing_ok=True)
    code = main(argv)
    captured = capsys.readouterr()
    _check_outcome(code, captured.err)
    _no_temporaries(place)
    if code == 0 and (place / "out.npy").exists():  # complete: it loads, and samples are finite
        x = np.load(place / "out.npy")
        assert x.ndim == 2 and (command == "score" or np.isfinite(x).all())
    if code == 0 and (place / "out.csv").exists():
        assert (place / "out.csv").read_text().splitlines()[0] in ("x0,x1", "log_prob")


@FUZZ
@given(text=csv_texts())
def test_score_and_check_random_csv(place: Path, text: str, capsys) -> None:
    path, out = place / "random.csv", place / "scores.csv"
    path.write_text(text)
    out.unlink(missing_ok=True)
    code = main(["score", str(place / "run"), "--data", str(path), "--out", str(out)])
    _check_outcome(code, capsys.readouterr().err)
    if code == 0:
        rows = len(flowforge.data.read_array(path))
        lines = out.read_text().splitlines()
        assert lines[0] == "log_prob" and len(lines) == rows + 1
        assert not any(line == "nan" for line in lines), "a score is never NaN"
    else:
        assert not out.exists()
    code = main(["check", str(place / "run"), "--data", str(path)])
    _check_outcome(code, capsys.readouterr().err)
    _no_temporaries(place)


tables = st.one_of(csv_texts(), hnp.arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 3)), elements=numbers).map(
    lambda x: "\n".join(",".join(repr(float(v)) for v in row) for row in x)))


@FUZZ.__class__(FUZZ, max_examples=12)
@given(text=tables)
def test_train_on_random_csv(place: Path, text: str, capsys) -> None:
    path, run = place / "train.csv", place / "trained"
    path.write_text(text)
    shutil.rmtree(run, ignore_errors=True)
    code = main(["train", "--data", str(path), *TINY[2:], "--steps", "2", "--out", str(run)])
    _check_outcome(code, capsys.readouterr().err)
    if code == 0 and json.loads((run / "config.json").read_text()).get("kind") == "table":  # text or blank cells
        assert TableFlow.load(run / "table").sample(3).shape[0] == 3
    elif code == 0:
        assert flowforge.load(run).event_shape == (flowforge.data.read_array(path).shape[1],)
        assert json.loads((run / "metrics.json").read_text())["steps_run"] == 2
    else:
        assert not run.exists() or not any(run.iterdir())
    _no_temporaries(place)
