"""The zoo's models on the command line: train, check and sample; --circular; the VI families' refusal."""
import json
import math

import numpy as np
import pytest

from flowforge.cli import main

from ..helpers import one_line_error

TINY = ["--data", "moons", "--n", "300", "--steps", "8", "--layers", "1", "--hidden", "8", "--batch-size", "64", "--no-progress"]


@pytest.mark.parametrize("model", ["naf", "unaf", "bnaf", "resflow"])
def test_train_check_and_sample_each_zoo_model(model: str, tmp_path) -> None:
    run = tmp_path / model
    assert main(["train", *TINY, "--model", model, "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["model"] == model
    assert math.isfinite(json.loads((run / "metrics.json").read_text())["test_nll"])
    assert main(["check", str(run)]) == 0
    assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "s.csv")]) == 0
    assert len((tmp_path / "s.csv").read_text().strip().splitlines()) >= 5


@pytest.mark.parametrize("model", ["planar", "radial", "sylvester"])
def test_vi_families_refuse_training_on_data_by_name(model: str, tmp_path, capsys) -> None:
    assert main(["train", *TINY, "--model", model, "--out", str(tmp_path / "r")]) != 0
    assert "no analytic inverse" in one_line_error(capsys)


def test_circular_columns_train_and_sample_in_range(tmp_path) -> None:
    rng = np.random.default_rng(0)
    angles = np.remainder(rng.vonmises(3.0, 4.0, size=(400, 2)) + np.pi, 2 * np.pi) - np.pi
    table = tmp_path / "angles.npy"
    np.save(table, np.column_stack([angles, rng.normal(size=400)]))
    run = tmp_path / "run"
    assert main(["train", "--data", str(table), "--model", "nsf", "--circular", "0,1", "--steps", "8", "--layers", "2",
                 "--hidden", "8", "--batch-size", "64", "--no-progress", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["kwargs"]["circular"] == [0, 1]
    out = tmp_path / "s.npy"
    assert main(["sample", str(run), "-n", "300", "--out", str(out)]) == 0
    samples = np.load(out)
    assert ((samples[:, :2] >= -np.pi) & (samples[:, :2] < np.pi)).all()


@pytest.mark.parametrize(("spec", "message"), [("0,7", "neither a column name nor an index"), ("1,1", "named twice")])
def test_circular_errors_are_one_line(spec: str, message: str, tmp_path, capsys) -> None:
    np.save(tmp_path / "t.npy", np.zeros((50, 3)) + np.arange(50)[:, None] * 0.01)
    assert main(["train", "--data", str(tmp_path / "t.npy"), "--model", "nsf", "--circular", spec, "--steps", "2",
                 "--no-progress", "--out", str(tmp_path / "r")]) != 0
    assert message in one_line_error(capsys)


def test_circular_needs_a_spline_model(tmp_path, capsys) -> None:
    assert main(["train", *TINY, "--model", "maf", "--circular", "0", "--out", str(tmp_path / "r")]) != 0
    assert "--circular is for nsf and nsf-ar" in one_line_error(capsys)
