"""Fixes from a new user's trial: what a table run records and prints."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowforge.cli import main

from .test_mixed_run import QUICK, shop


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> tuple[Path, Path]:
    place = tmp_path_factory.mktemp("newuser")
    shop(120).to_csv(place / "shop.csv", index=False)
    folder = place / "run"
    assert main(["train", "--data", str(place / "shop.csv"), *QUICK, "--out", str(folder)]) == 0
    return place, folder


def test_config_json_records_the_model_a_table_run_trained(table_run) -> None:
    _, folder = table_run
    config = json.loads((folder / "config.json").read_text())["trained"]
    trained = json.loads((folder / "metrics.json").read_text())["table"]["flow"]
    assert config["model"] == trained["model"]["model"] == "nsf"
    assert config["layers"] == trained["model"]["kwargs"]["layers"] and config["hidden"] == trained["model"]["kwargs"]["hidden"]
    assert config["lr"] == trained["lr"] and config["steps"] == 40


def test_score_averages_the_possible_rows_and_counts_the_impossible_ones(table_run, capsys) -> None:
    place, folder = table_run
    rows = shop(4, seed=5)
    rows.loc[0, "price"] = -1500.0  # outside the positive support
    rows.loc[1, "cut"] = "Premium"  # an unseen level
    rows.to_csv(place / "odd.csv", index=False)
    capsys.readouterr()
    assert main(["score", str(folder), "--data", str(place / "odd.csv"), "--out", str(place / "odd.npy")]) == 0
    out, err = capsys.readouterr()
    assert "over the 2 of 4 rows that score finitely (2 scoring -inf left out)" in out and "mean NLL: inf" not in out
    assert "2 of 4 rows score -inf (the first is data row 1, from 1 without the header), impossible under the model" in err
