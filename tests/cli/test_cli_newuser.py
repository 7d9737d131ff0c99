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
    config = json.loads((folder / "config.json").read_text())["config"]
    trained = json.loads((folder / "metrics.json").read_text())["table"]["flow"]
    assert config["model"] == trained["model"]["model"] == "nsf"
    assert config["layers"] == trained["model"]["kwargs"]["layers"] and config["hidden"] == trained["model"]["kwargs"]["hidden"]
    assert config["lr"] == trained["lr"] and config["steps"] == 40
