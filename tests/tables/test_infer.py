"""infer_schema: every kind from hand-made frames, overrides, and every bad column in one error."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowforge.errors import FlowforgeError
from flowforge.tables import Schema, infer_schema
from flowforge.tables.encode import encode
from flowforge.tables.infer import parse_overrides

from .frames import mixed, with_blanks


def test_every_kind_is_inferred() -> None:
    schema = infer_schema(mixed())
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {"Unnamed: 0": "identifier", "height": "positive", "price": "positive", "share": "bounded",
                     "visits": "integer", "colour": "categorical", "doors": "categorical", "member": "categorical",
                     "day": "datetime", "country": "constant"}
    assert infer_schema(pd.DataFrame({"t": [-1.5, 0.2, 3.1, 0.0]})).columns[0].kind == "real"  # a sign change
    zeros = infer_schema(pd.DataFrame({"t": [0.0, 0.2, 3.1, 4.5]})).columns[0]
    assert zeros.kind == "nonnegative" and zeros.resolution == 0.1  # an atom at 0, dequantised below half the smallest value
    assert schema["colour"].levels == ("blue", "green", "red")
    assert schema["doors"].levels == (2, 4, 5)
    assert (schema["share"].low, schema["share"].high) == (0.0, 1.0)
    assert schema["visits"].low == 0 and schema["day"].resolution == 86400


def test_text_dates_and_unique_text_ids() -> None:
    df = pd.DataFrame({"when": [f"2024-03-{d:02d}" for d in range(1, 21)], "name": [f"car {i}" for i in range(20)]})
    schema = infer_schema(df)
    assert schema["when"].kind == "datetime" and schema["name"].kind == "identifier"


def test_missing_cells_are_counted_and_printed() -> None:
    schema = infer_schema(with_blanks(mixed()))
    assert schema["height"].missing == 3 and schema["colour"].missing == 2
    text = str(schema)
    assert "3 missing" in text and text.splitlines()[0].split() == ["column", "kind", "details"]


def test_overrides_as_text_or_dict_and_json_round_trip() -> None:
    df = mixed()
    assert parse_overrides("price:positive, height:bounded(100, 250),colour:categorical") == {
        "price": "positive", "height": "bounded(100, 250)", "colour": "categorical"}
    schema = infer_schema(df, overrides="height:bounded(100,250),visits:categorical")
    assert (schema["height"].kind, schema["height"].low, schema["height"].high) == ("bounded", 100.0, 250.0)
    assert schema["visits"].kind == "categorical"
    assert infer_schema(df, overrides={"height": "bounded(100,250)", "visits": "categorical"}) == schema
    assert Schema.from_json(schema.to_json()) == schema


def test_every_bad_column_is_named_in_one_error() -> None:
    df = mixed()
    df["empty"] = np.nan
    with pytest.raises(FlowforgeError) as error:
        infer_schema(df, overrides="visits:bounded(0,5),share:bounded(0.5,1),colour:real,nope:real,price:wobbly,empty:real")
    message = str(error.value)
    for name in ("'empty'", "'visits'", "'share'", "'colour'", "'nope'", "'price'"):
        assert name in message
    assert "all 120 cells are missing: there is nothing to learn a real column from" in message
    assert "unknown kind 'wobbly'" in message


def test_a_table_that_is_not_a_dataframe_is_refused() -> None:
    with pytest.raises(FlowforgeError, match="DataFrame"):
        infer_schema(np.zeros((3, 2)))


COLUMN_VALUES = {
    "real": st.floats(-1e6, 1e6, allow_nan=False),
    "whole": st.integers(-1000, 1000),
    "text": st.sampled_from(["a", "b", "c", "d"]),
    "flag": st.booleans(),
    "positive": st.floats(1e-6, 1e6),
}


@settings(max_examples=30)
@given(data=st.data(), rows=st.integers(5, 30), kinds=st.lists(st.sampled_from(sorted(COLUMN_VALUES)), min_size=1, max_size=5))
def test_an_inferred_schema_accepts_the_table_it_came_from(data, rows: int, kinds: list[str]) -> None:
    df = pd.DataFrame({f"c{i}": data.draw(st.lists(COLUMN_VALUES[k], min_size=rows, max_size=rows)) for i, k in enumerate(kinds)})
    schema = infer_schema(df)
    encoded = encode(schema, df)
    assert not encoded.outside.any() and not encoded.missing.any()
    assert Schema.from_json(schema.to_json()) == schema


def test_overrides_name_a_column_with_a_colon_and_refuse_dates_made_of_numbers() -> None:
    df = pd.DataFrame({"Unnamed: 0": [1.5, 2.5, 3.5, 4.5], "x": [0.1, 0.2, 0.3, 0.4]})
    assert infer_schema(df, overrides="Unnamed: 0:real")["Unnamed: 0"].kind == "real"
    with pytest.raises(FlowforgeError, match="'x': datetime needs dates"):
        infer_schema(df, overrides="x:datetime")
