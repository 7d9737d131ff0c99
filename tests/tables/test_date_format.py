"""A date column's format, declared: `datetime(%d/%m/%Y)` in --columns or overrides, "format" in a
schema file; a cell the format does not read is an error naming its row and column."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from flowforge.cli import main
from flowforge.errors import FlowforgeError
from flowforge.tables import Schema, TableFlow, infer_schema
from flowforge.tables.infer import declared_dates, parse_dates

# every day <= 12: month-first and day-first both read every cell, and inference reads month-first
AMBIGUOUS = ["01/02/2021", "03/01/2021", "12/11/2021", "05/06/2021", "07/08/2021", "09/10/2021"] * 5


def _table(days: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"when": days, "amount": [float(i % 7 + 1) * 1.5 + i / 100 for i in range(len(days))]})


def test_a_declared_format_reads_an_ambiguous_column_day_first() -> None:
    df = _table(AMBIGUOUS)
    assert infer_schema(df)["when"].format == "%m/%d/%Y"
    column = infer_schema(df, overrides="when:datetime(%d/%m/%Y), amount:positive")["when"]
    assert column.kind == "datetime" and column.format == "%d/%m/%Y" and "read as %d/%m/%Y" in column.details
    first = parse_dates(df["when"], column.format).min()
    assert first == pd.Timestamp("2021-01-03") and column.low == first.value // 10**9 // 86400
    also = infer_schema(df, overrides={"when": "datetime(%d/%m/%Y)"})["when"]
    assert also == column


def test_cells_the_declared_format_does_not_read_are_named_by_row_and_column() -> None:
    df = _table(AMBIGUOUS[:4] + ["2021-03-15", "31/12/2021"])
    with pytest.raises(FlowforgeError, match=r"'when': datetime\(%d/%m/%Y\) does not read 1 of 6 cells \(row 4: '2021-03-15'\)"):
        infer_schema(df, overrides="when:datetime(%d/%m/%Y)")
    with pytest.raises(FlowforgeError, match=r"'when': datetime\(%Q\): not a date format"):
        infer_schema(df, overrides="when:datetime(%Q)")
    with pytest.raises(FlowforgeError, match=r"'amount': .*needs dates"):
        infer_schema(df, overrides="amount:datetime(%d/%m/%Y)")


def test_a_schema_files_format_is_read_from_the_data() -> None:
    df = _table(AMBIGUOUS)
    schema = infer_schema(df)
    edited = json.loads(json.dumps(schema.to_json()))
    next(c for c in edited["columns"] if c["name"] == "when")["format"] = "%d/%m/%Y"
    redone = declared_dates(Schema.from_json(edited), df)
    assert redone["when"] == infer_schema(df, overrides="when:datetime(%d/%m/%Y)")["when"]
    next(c for c in edited["columns"] if c["name"] == "when")["format"] = "%Y.%m.%d"
    with pytest.raises(FlowforgeError, match=r"'when': datetime\(%Y.%m.%d\) does not read 30 of 30 cells \(row 0: '01/02/2021'"):
        declared_dates(Schema.from_json(edited), df)


def test_samples_of_a_declared_day_first_column_are_dates_in_its_range() -> None:
    df = _table(AMBIGUOUS)
    schema = infer_schema(df, overrides="when:datetime(%d/%m/%Y)")
    model = TableFlow(schema=schema, steps=5, layers=1, hidden=(8,)).fit(df)
    days = pd.to_datetime(model.sample(200, seed=0)["when"])
    assert days.notna().all() and days.min() >= pd.Timestamp("2020-06-01") and days.max() <= pd.Timestamp("2022-06-01")
    assert (model.log_prob(df) > -float("inf")).all()


def test_the_command_line_names_the_row_and_column_of_an_unread_cell(tmp_path, capsys) -> None:
    _table(AMBIGUOUS[:5] + ["2021-13-45"]).to_csv(tmp_path / "t.csv", index=False)
    assert main(["train", "--data", str(tmp_path / "t.csv"), "--columns", "when:datetime(%d/%m/%Y)", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "'when': datetime(%d/%m/%Y) does not read 1 of 6 cells (row 5: '2021-13-45')" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
