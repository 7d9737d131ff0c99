"""`flowforge train/sample/score` on a table of mixed columns, as pandas writes it (index column included)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowforge.cli import main

from ..helpers import one_line_error

QUICK = ["--steps", "40", "--no-progress", "--threads", "1"]


def shop(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Text categories, a positive heavy-tailed price, a proportion, a count and a date, with blank cells."""
    rng = np.random.default_rng(seed)
    cut = rng.choice(["Fair", "Good", "Ideal"], rows, p=[0.2, 0.3, 0.5])
    price = np.round(np.exp(rng.normal(6 + (cut == "Ideal"), 0.5)), 2)
    share = rng.beta(2, 5, rows).round(4)
    items = rng.poisson(3, rows)
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D")
    df = pd.DataFrame({"cut": cut, "price": price, "share": share, "items": items, "day": day})
    if rows > 17:
        df.loc[[3, 17], "price"] = np.nan
    return df


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> tuple[Path, Path]:
    place = tmp_path_factory.mktemp("mixed")
    shop().to_csv(place / "shop.csv")  # with pandas' index column, its header cell empty
    folder = place / "run"
    assert main(["train", "--data", str(place / "shop.csv"), "--columns", "share:bounded(0,1)", *QUICK, "--out", str(folder)]) == 0
    return place, folder


def test_train_on_a_mixed_table_writes_its_schema_and_a_likelihood(table_run, capsys) -> None:
    _, folder = table_run
    record = json.loads((folder / "config.json").read_text())
    kinds = {c["name"]: c["kind"] for c in record["schema"]["columns"]}
    assert record["kind"] == "table"
    assert kinds["cut"] == "categorical" and kinds["share"] == "bounded" and kinds["day"] == "datetime"
    assert kinds["Unnamed: 0"] == "identifier"  # the index column is left out, not trained on
    metrics = json.loads((folder / "metrics.json").read_text())
    assert math.isfinite(metrics["test_nll"]) and metrics["n_test"] == 48
    # --missing model (the default): no row dropped; held-out rows with a blank price get estimates, outside test_nll
    assert metrics["rows_dropped_for_missing"] == 0 and metrics["n_test"] - metrics["n_test_scored"] == metrics["n_test_estimated"]
    assert metrics["table"]["flow_rows"] + 2 - metrics["n_test_estimated"] == metrics["n_train"]
    assert metrics["n_test_with_pattern"] == 48 and math.isfinite(metrics["test_nll_with_pattern"])
    assert metrics["missing_cells"] == {"price": 2}
    assert metrics["likelihood"] == "lower bound" and "day" in metrics["dequantised"]


def test_samples_keep_the_columns_types_and_supports_and_score_back(table_run, capsys) -> None:
    place, folder = table_run
    assert main(["sample", str(folder), "-n", "300", "--seed", "1", "--out", str(place / "s.csv")]) == 0
    samples = pd.read_csv(place / "s.csv")
    assert list(samples.columns) == list(pd.read_csv(place / "shop.csv").columns)
    assert set(samples["cut"]) <= {"Fair", "Good", "Ideal"}
    assert (samples["price"].dropna() > 0).all() and samples["share"].between(0, 1).all()  # price has blank cells, as in training
    assert (samples["items"] == samples["items"].round()).all() and (samples["items"] >= 0).all()
    assert pd.to_datetime(samples["day"]).notna().all()
    assert main(["score", str(folder), "--data", str(place / "s.csv"), "--out", str(place / "scores.npy")]) == 0
    scores = np.load(place / "scores.npy")
    assert scores.shape == (300, 1) and np.isfinite(scores).all()


def test_score_names_an_impossible_row_instead_of_crashing(table_run, capsys) -> None:
    place, folder = table_run
    rows = shop(4, seed=5)
    rows.loc[0, "price"] = -1500.0  # a negative price: outside the positive support
    rows.loc[1, "cut"] = "Premium"  # a category never seen in training
    rows.to_csv(place / "odd.csv")
    assert main(["score", str(folder), "--data", str(place / "odd.csv"), "--out", str(place / "odd.npy")]) == 0
    assert "2 of 4 rows score -inf" in capsys.readouterr().err
    scores = np.load(place / "odd.npy")[:, 0]
    assert np.isneginf(scores[:2]).all() and np.isfinite(scores[2:]).all()


def test_a_table_run_refuses_what_it_cannot_do(table_run, capsys) -> None:
    place, folder = table_run
    assert main(["sample", str(folder), "-n", "3", "--out", str(place / "s.npy")]) == 2
    assert "a table run writes" in one_line_error(capsys)
    assert main(["train", "--resume", str(folder)]) == 2
    assert "already trained 40 of 40 steps" in one_line_error(capsys)


def test_a_schema_file_and_no_test_rows(table_run, tmp_path, capsys) -> None:
    place, folder = table_run
    schema = json.loads((folder / "config.json").read_text())["schema"]
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    assert main(["train", "--data", str(place / "shop.csv"), "--schema", str(tmp_path / "schema.json"), "--test-fraction", "0",
                 *QUICK, "--out", str(tmp_path / "run")]) == 0
    assert "test_nll: n/a" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_test"] == 0 and metrics["test_nll"] is None


def test_columns_on_a_numeric_file_is_named(tmp_path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(50, 2)))
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--columns", "x0:positive", *QUICK]) == 2
    assert "--columns and --schema are for tables" in one_line_error(capsys)


def test_blank_cell_counts_agree_between_the_warning_the_summary_and_metrics(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"vore": rng.choice(["carni", "herbi", "omni"], n).astype(object), "rem": rng.lognormal(size=n),
                       "total": rng.lognormal(size=n)})
    df.loc[df.index[::4], "vore"] = None
    df.loc[df.index[::5], "rem"] = np.nan
    df.to_csv(tmp_path / "sleep.csv")
    assert main(["train", "--data", str(tmp_path / "sleep.csv"), "--missing", "level", *QUICK, "--out", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    dropping, train_rows = metrics["blank_cells_dropping_rows"], metrics["n_train"]
    assert list(dropping) == ["rem"] and list(metrics["blank_cells_as_level"]) == ["vore"]  # a blank category is a level, not missing
    assert f"of {train_rows} rows have blank cells" in err and f"(blank cells per column: {dropping})" in err
    assert f"{metrics['rows_dropped_for_missing']} of {train_rows} training rows" in out and str(dropping) in out
    assert metrics["missing_cells"] == {"vore": 30, "rem": 24}  # the whole table's, every column


def test_check_measures_a_table_runs_flow_on_its_held_out_rows(table_run, capsys) -> None:
    place, folder = table_run
    assert main(["check", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("held-out split of") and "complete rows, continuous columns after their support maps" in out
    assert "check passed" in out and "flow, max / column std" in out
    record = json.loads((folder / "check.json").read_text())
    assert record["passed"] and record["rows"] == json.loads((folder / "metrics.json").read_text())["n_test_scored"]
    assert main(["check", str(folder), "--data", str(place / "shop.csv"), "--dtype", "float64"]) == 0
    assert json.loads((folder / "check.json").read_text())["round_trip_scaled_max"] < 1e-9


def test_train_parses_a_numeric_csv_once(tmp_path, monkeypatch, capsys) -> None:
    from flowforge.data import files

    calls = []
    parse = files.parse_table
    monkeypatch.setattr(files, "parse_table", lambda text, name: calls.append(name) or parse(text, name))
    np.savetxt(tmp_path / "x.csv", np.random.default_rng(3).normal(size=(60, 2)), delimiter=",", header="a,b", comments="")
    assert main(["train", "--data", str(tmp_path / "x.csv"), *QUICK, "--layers", "1", "--hidden", "8", "--out", str(tmp_path / "r")]) == 0
    assert len(calls) == 1  # deciding it is numeric and loading its split share one parse
    (tmp_path / "x.csv").write_text("a,b\n1,2\n3,4\n5,6\n")  # other text: parsed again
    assert files.read_csv_with_header(tmp_path / "x.csv")[0].shape == (3, 2) and len(calls) == 2
