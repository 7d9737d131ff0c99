"""Empty and whitespace-only text cells are missing whichever format the table comes in."""
import pandas as pd
import pytest

from flowforge.tables import infer_schema, read_table


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_empty_text_cells_are_blank_in_csv_and_parquet(tmp_path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    df = pd.DataFrame({"notes": ["vip", "", "churn risk", "  ", "vip", ""], "x": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]})
    path = tmp_path / f"t{suffix}"
    df.to_parquet(path, index=False) if suffix == ".parquet" else df.to_csv(path, index=False)
    back = read_table(path)
    assert back["notes"].isna().sum() == 3
    assert infer_schema(back)["notes"].levels == ("churn risk", "vip")
