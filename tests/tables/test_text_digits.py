"""Numeric columns that arrive as text digits (Parquet, JSON, dtype=str reads) are read as numbers."""
import functools
import warnings

import numpy as np
import pytest

from flowforge.errors import FlowforgeError
from flowforge.tables import TableFlow

from .frames import mixed


@functools.cache
def fitted() -> TableFlow:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TableFlow(seed=0, steps=10, layers=1, hidden=(8,)).fit(mixed(60))


def test_text_digits_score_like_the_numbers() -> None:
    rows = mixed(60).iloc[:5]
    as_text = rows.astype({"height": str, "visits": str, "doors": str})
    np.testing.assert_allclose(fitted().log_prob(as_text), fitted().log_prob(rows), rtol=1e-6)


def test_text_that_is_not_a_number_is_still_a_named_error() -> None:
    rows = mixed(60).iloc[:5].astype({"visits": str})
    rows.loc[rows.index[2], "visits"] = "many"
    with pytest.raises(FlowforgeError, match=r"'visits': .* text here \(e.g. 'many'\)"):
        fitted().log_prob(rows)
