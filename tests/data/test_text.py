import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowforge.data import read_array, read_csv_with_header
from flowforge.errors import FlowforgeError


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error(path: Path) -> str:
    with pytest.raises(FlowforgeError) as e:
        read_array(path)
    return str(e.value)


EXPECTED = np.array([[1.0, 2.5], [-3.0, 4e-3]], dtype=np.float32)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("data.csv", "1,2.5\n-3,4e-3\n"),
        ("data.csv", "1;2.5\n-3;4e-3\n"),
        ("data.tsv", "1\t2.5\n-3\t4e-3\n"),
        ("data.txt", "1  2.5\n  -3 4e-3\n"),
        ("data.csv", "1, 2.5\r\n-3, 4e-3\r\n"),
        ("data.csv", "\n\n1,2.5\n-3,4e-3\n\n"),
    ],
)
def test_without_header(tmp_path: Path, name: str, text: str) -> None:
    x, names = read_csv_with_header(write(tmp_path, text, name))
    assert names is None and x.dtype == np.float32
    np.testing.assert_array_equal(x, EXPECTED)


@pytest.mark.parametrize(
    "text",
    ["x1,x2\n1,2.5\n-3,4e-3\n", "x1;x2\n1;2.5\n-3;4e-3\n", "x1\tx2\n1\t2.5\n-3\t4e-3\n", "x1 x2\n1 2.5\n-3 4e-3\n",
     '"x1","x2"\n"1","2.5"\n-3,4e-3\n', "\ufeffx1,x2\n1,2.5\n-3,4e-3\n"],
)
def test_with_header(tmp_path: Path, text: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    x, names = read_csv_with_header(path)
    assert names == ["x1", "x2"]
    np.testing.assert_array_equal(x, EXPECTED)


def test_savetxt_files_read_back(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.savetxt(tmp_path / "a.txt", x, header="written by numpy")  # the header is a '#' comment
    np.savetxt(tmp_path / "b.csv", x, delimiter=",")
    for name in ("a.txt", "b.csv"):
        y, names = read_csv_with_header(tmp_path / name)
        assert names is None
        np.testing.assert_array_equal(y, x)


def test_single_column_with_header(tmp_path: Path) -> None:
    x, names = read_csv_with_header(write(tmp_path, "value\n1\n2\n3\n"))
    assert names == ["value"] and x.shape == (3, 1)


def test_non_number_names_row_and_column(tmp_path: Path) -> None:
    text = "x1,x2\n" + "1,2\n" * 5 + "3,abc\n"
    assert error(write(tmp_path, text)).endswith("data.csv: row 7, column 'x2': 'abc' is not a number")


def test_non_number_without_header_gives_column_number(tmp_path: Path) -> None:
    assert "data.csv: row 2, column 3: '1.2.3' is not a number" in error(write(tmp_path, "1,2,3\n4,5,1.2.3\n"))


def test_mixed_first_row_is_data_not_a_silent_header(tmp_path: Path) -> None:
    assert "row 1, column 2: 'oops' is not a number" in error(write(tmp_path, "1,oops\n3,4\n"))


def test_rows_count_lines_in_the_file(tmp_path: Path) -> None:
    # leading blank lines and comments are skipped but still counted, so the row is the editor's line number
    text = "\n# comment\na,b\n1,2\n3,x\n# a footer\n"
    assert "row 5, column 'b': 'x' is not a number" in error(write(tmp_path, text))


def test_hash_lines_inside_the_table_are_reported_not_dropped(tmp_path: Path) -> None:
    """A spreadsheet's #N/A started a line that was skipped as a comment: score returned fewer rows."""
    assert "row 3, column 'a' is '#N/A' (a missing value)" in error(write(tmp_path, "a,b\n0.1,0.2\n#N/A,0.5\n0.7,0.8\n"))
    assert "row 3 starts with '#' inside the table" in error(write(tmp_path, "a,b\n1,2\n# note\n3,4\n"))


def test_a_first_row_of_missing_values_is_not_a_header(tmp_path: Path) -> None:
    assert "row 1, column 1 is 'NA' (a missing value)" in error(write(tmp_path, "NA,NA\n0.1,100\n0.7,101\n"))
    assert read_csv_with_header(write(tmp_path, ",a,b\n0,1,2\n"))[1] == ["", "a", "b"]  # pandas' index column: still a header


def test_ragged_rows(tmp_path: Path) -> None:
    assert "data.csv: row 3 has 3 values, expected 2 as in row 1" in error(write(tmp_path, "1,2\n3,4\n5,6,7\n"))
    assert "row 2 has 1 values, expected 2 as in row 1" in error(write(tmp_path, "a,b\n1\n"))


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-Infinity"])
def test_nan_and_inf_are_reported(tmp_path: Path, cell: str) -> None:
    text = "1,2,3\n" * 11 + f"1,2,{cell}\n"
    assert f"data.csv: row 12, column 3 is NaN/Inf ('{cell}')" in error(write(tmp_path, text))


def test_empty_cell_is_a_missing_value(tmp_path: Path) -> None:
    message = error(write(tmp_path, "a,b,c\n1,2,3\n4,,6\n"))
    assert "data.csv: row 3, column 'b' is empty (a missing value)" in message
    assert "row 2, column 3 is empty" in error(write(tmp_path, "1\t2\t3\n4\t5\t\n", "data.tsv"))


@pytest.mark.parametrize("text", ["x\n1\n\n3\n", "a,b\n1,2\n  \n3,4\n"])
def test_blank_line_inside_the_table(tmp_path: Path, text: str) -> None:
    # in a one-column file a blank line is a missing value: never drop it silently
    assert "data.csv: row 3 is blank (missing values)" in error(write(tmp_path, text))


def test_too_large_for_float32(tmp_path: Path) -> None:
    assert "row 2, column 1: 1e39 is too large for float32" in error(write(tmp_path, "1,2\n1e39,2\n"))


def test_header_without_rows(tmp_path: Path) -> None:
    assert "data.csv has a header row but no data rows" in error(write(tmp_path, "a,b\n"))


def test_only_comments_and_blank_lines(tmp_path: Path) -> None:
    assert "data.csv is empty" in error(write(tmp_path, "# nothing\n\n  \n"))


def test_binary_file_with_text_extension(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_bytes(b"\x80\x81\xff\x00")
    assert "data.csv is not UTF-8 text" in error(tmp_path / "data.csv")


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s.lower() not in {"nan", "inf", "infinity"})
tables = arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 5)), elements=st.floats(width=32, allow_nan=False, allow_infinity=False))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=tables, delimiter=st.sampled_from([",", ";", "\t", " "]), header=st.booleans(), data=st.data())
def test_random_tables_round_trip(tmp_path: Path, x: np.ndarray, delimiter: str, header: bool, data: st.DataObject) -> None:
    columns = data.draw(st.lists(names, min_size=x.shape[1], max_size=x.shape[1])) if header else None
    lines = [delimiter.join(columns)] if columns else []
    lines += [delimiter.join(repr(float(v)) for v in row) for row in x]
    path = write(tmp_path, "\n".join(lines) + "\n")
    y, read_names = read_csv_with_header(path)
    assert read_names == columns
    np.testing.assert_array_equal(y, x)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=tables.filter(lambda a: a.shape[0] > 1), data=st.data())
def test_a_bad_cell_anywhere_is_located(tmp_path: Path, x: np.ndarray, data: st.DataObject) -> None:
    i = data.draw(st.integers(1, x.shape[0] - 1))  # a first row of text alone would be a header
    j = data.draw(st.integers(0, x.shape[1] - 1))
    bad = data.draw(st.sampled_from(["abc", "", "nan", "1,5"]))
    cells = [[repr(float(v)) for v in row] for row in x]
    cells[i][j] = bad
    cells.append(["0"] * x.shape[1])  # a last blank line is layout, even in a one-column file
    path = write(tmp_path, "\n".join(";".join(row) for row in cells) + "\n")
    # in a one-column file an empty cell is a blank line, reported as such
    assert re.search(rf"row {i + 1}(, column {j + 1}\b| is blank)", error(path))


def test_every_bad_column_is_named_at_once(tmp_path) -> None:
    text = "a,b,c,d\n1,x,3,\n2,y,nope,4\n5,6,7,1e39\n"
    message = error(write(tmp_path, text))
    assert "data.csv: 3 columns hold cells that are not usable numbers (the first of each):" in message
    for problem in ("row 2, column 'b': 'x' is not a number", "row 3, column 'c': 'nope' is not a number",
                    "row 2, column 'd' is empty (a missing value)"):
        assert problem in message
