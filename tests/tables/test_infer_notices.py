"""infer_schema's notices on columns a user would not expect: a typo among numbers, a duplicated override."""
import warnings

import numpy as np
import pandas as pd
import pytest

from flowforge.errors import FlowforgeError
from flowforge.tables import infer_schema


def test_one_junk_cell_among_numbers_is_named_with_its_row() -> None:
    hwy = pd.Series(np.random.default_rng(0).integers(12, 45, 60)).astype(object)
    hwy[3] = "NA?"
    with pytest.warns(UserWarning, match=r"'hwy' is numeric except 1 cell: 'NA\?' \(row 3\); it is modelled as categorical"):
        schema = infer_schema(pd.DataFrame({"hwy": hwy}))
    assert schema["hwy"].kind == "categorical"


def test_text_categories_and_coded_numbers_get_no_notice() -> None:
    df = pd.DataFrame({"size": ["1", "2", "3", "L"] * 15, "colour": ["red", "blue"] * 30})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer_schema(df)


def test_a_column_named_twice_in_overrides_is_an_error() -> None:
    df = pd.DataFrame({"displ": np.linspace(1.5, 6.5, 30)})
    with pytest.raises(FlowforgeError, match=r"'displ' named more than once"):
        infer_schema(df, overrides="displ:real,displ:positive")
