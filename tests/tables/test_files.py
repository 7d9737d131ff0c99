"""read_table / write_table: CSV and Parquet round trips, named errors."""
import pandas as pd
import pytest

from flowforge.errors import FlowforgeError
from flowforge.tables import TableFlow, infer_schema, read_table, write_table

from .frames import mixed


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_a_sample_written_and_read_back_keeps_its_schema(tmp_path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    df = mixed(60).drop(columns="Unnamed: 0")
    path = write_table(df, tmp_path / f"table{suffix}")
    back = read_table(path)
    assert list(back.columns) == list(df.columns)
    assert [c.kind for c in infer_schema(back).columns] == [c.kind for c in infer_schema(df).columns]


def test_blank_csv_cells_are_missing_and_whole_number_levels_stay_whole(tmp_path) -> None:
    (tmp_path / "t.csv").write_text("month,ozone\n5,41\n6,\n,12\n5,18\n6,28\n")
    schema = infer_schema(read_table(tmp_path / "t.csv"))
    assert schema["month"].levels == (5, 6) and schema["month"].missing == 1 and schema["ozone"].missing == 1


def test_named_errors(tmp_path) -> None:
    with pytest.raises(FlowforgeError, match="unknown table format '.xlsx'"):
        read_table(tmp_path / "t.xlsx")
    with pytest.raises(FlowforgeError, match="no such file"):
        read_table(tmp_path / "t.csv")
    pd.DataFrame({"a": [1, 2]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(FlowforgeError, match=r"no columns \['b'\]"):
        read_table(tmp_path / "t.csv", columns=["b"])


def test_sampled_dates_and_ints_survive_a_csv(tmp_path) -> None:
    model = TableFlow(steps=10, layers=1, hidden=(8,)).fit(mixed(60).drop(columns=["Unnamed: 0", "country"]))
    back = read_table(write_table(model.sample(30), tmp_path / "s.csv"))
    assert back["visits"].dtype.kind == "i" and back["day"].astype(str).str.match(r"^\d{4}-\d{2}-\d{2}$").all()
    logp = model.log_prob(back)
    assert logp.shape == (30,) and (logp > -float("inf")).all()
