"""Sampled cells are written with the decimals the column's values have, never as float32 artefacts."""
import numpy as np
import pandas as pd

from flowforge.tables import TableFlow
from flowforge.tables.support import decimals_of


def _places(value: float) -> int:
    text = repr(float(value))
    return 0 if "." not in text or "e" in text else len(text.split(".")[1].rstrip("0"))


def test_decimals_of_columns_with_many_places() -> None:
    rng = np.random.default_rng(0)
    assert decimals_of(rng.uniform(-119, -118, 50).round(8)) == 8
    assert decimals_of(np.array([1.5, 2.25, np.nan])) == 2
    assert decimals_of(rng.normal(0, 1, 50) * 100) == 5  # full float64 precision: 8 significant digits of the largest


def test_samples_of_coordinates_keep_their_decimals() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"lon": rng.uniform(-118.5, -118.2, 80).round(8), "lat": rng.uniform(33.7, 34.2, 80).round(7)})
    sample = TableFlow(seed=0, steps=10, layers=1, hidden=(8,)).fit(df).sample(50, seed=0)
    assert max(map(_places, sample["lon"])) <= 8 and max(map(_places, sample["lat"])) <= 7
