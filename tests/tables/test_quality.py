"""What the tables benchmark's quality rests on: the baseline mixture's worst-row bound, samples at
the data's precision (inside the support), coded levels read as categories."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from flowforge.tables import TableFlow, infer_schema
from flowforge.tables.baseline import TAIL_WEIGHT
from flowforge.tables.schema import Column
from flowforge.tables.support import at_precision, decimals_of

TINY = {"steps": 20, "layers": 1, "hidden": (8,)}


def fit(df: pd.DataFrame, **options) -> TableFlow:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TableFlow(**{**TINY, **options}).fit(df)


def table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"depth": np.round(rng.normal(61, 1.5, n), 1), "price": np.round(rng.lognormal(3, 1, n), 2),
                         "share": np.round(rng.beta(2, 5, n), 3), "cut": rng.choice(["fair", "good", "ideal"], n)})


def test_no_row_scores_more_than_log_weight_below_the_baseline() -> None:
    model = fit(table())
    far = pd.DataFrame({"depth": [61.0, 95.0, 20.0], "price": [20.0, 1e6, 1e-4], "share": [0.3, 0.999, 1e-5],
                        "cut": ["good", "fair", "ideal"]})
    mixed, baseline = model.log_prob(far), model.baseline.log_prob(far)
    # nothing is dequantised here, so both are exact densities: the mixture's bound holds row by row
    assert np.all(mixed >= baseline + math.log(TAIL_WEIGHT) - 1e-6 * np.abs(baseline))
    assert np.all(np.isfinite(mixed))


def test_saved_model_keeps_the_baseline_and_the_precision(tmp_path) -> None:
    model = fit(table())
    model.save(tmp_path / "m")
    again = TableFlow.load(tmp_path / "m")
    rows = table(20, seed=1)
    np.testing.assert_allclose(again.log_prob(rows), model.log_prob(rows), rtol=1e-6, atol=1e-6)
    assert again.decimals == model.decimals == {"depth": 1, "price": 2, "share": 3}
    pd.testing.assert_frame_equal(again.sample(50, seed=3), model.sample(50, seed=3))


def test_samples_are_written_at_the_training_precision_inside_the_support() -> None:
    model = fit(table())
    sample = model.sample(2000, seed=0)
    for name, places in model.decimals.items():
        values = sample[name].to_numpy()
        assert decimals_of(values) is not None and decimals_of(values) <= places
    assert (sample["price"] > 0).all() and ((sample["share"] > 0) & (sample["share"] < 1)).all()
    assert np.isfinite(model.log_prob(sample)).all()


def test_some_samples_come_from_the_baseline_at_its_weight() -> None:
    model = fit(table())
    calls = []
    original = model.baseline.sample_parts
    model.baseline.sample_parts = lambda n, generator: calls.append(n) or original(n, generator)
    model.sample(20000, seed=0)
    assert abs(calls[0] - 20000 * TAIL_WEIGHT) < 5 * math.sqrt(20000 * TAIL_WEIGHT)


@pytest.mark.parametrize(("values", "places"), [([1.0, 2.0, 3.0], 0), ([0.25, 1.5], 2), ([61.1, 59.9, 62.3], 1),
                                                  ([math.pi, 1.0], 7), ([1e6 + 0.5, 3.25], 2)])
def test_decimals_of(values, places) -> None:
    assert decimals_of(np.array(values)) == places


def test_rounding_never_leaves_the_support() -> None:
    x = np.array([0.0004, 0.3, 0.9996, 1e-9])
    assert (at_precision(Column("p", "positive"), x, 2) > 0).all()
    bounded = at_precision(Column("s", "bounded", low=0.0, high=1.0), x, 2)
    assert ((bounded > 0) & (bounded < 1)).all()
    np.testing.assert_allclose(bounded, [0.01, 0.3, 0.99, 0.01])
    assert at_precision(Column("n", "nonnegative", resolution=0.1), np.array([0.004]), 2)[0] == 0.0
    assert (at_precision(Column("w", "bounded", low=0.0, high=0.001), np.array([0.0005]), 2) == 0.0005).all()


def test_few_distinct_numbers_are_coded_levels() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"age": rng.choice([17.5, 22.0, 27.0, 32.0], 100), "rate": rng.lognormal(0, 1, 100),
                       "tiny": [0.5, 1.5, 2.5, 0.5, 1.5, 2.5] + [np.nan] * 94})
    schema = infer_schema(df)
    assert schema["age"].kind == "categorical" and schema["age"].levels == (17.5, 22.0, 27.0, 32.0)
    assert schema["rate"].kind == "positive"
    assert schema["tiny"].kind == "positive"  # 3 values in 6 rows: too few rows a level to call them codes
    sample = fit(df[["age", "rate"]]).sample(100, seed=0)
    assert set(sample["age"]) <= {17.5, 22.0, 27.0, 32.0}


def test_baseline_draws_follow_its_gaussian() -> None:
    model = fit(table())
    y, codes = model.baseline.sample_parts(20000, torch.Generator().manual_seed(0))
    assert torch.allclose(y.mean(0), model.baseline.mean, atol=0.05 * float(model.baseline.cov.diagonal().sqrt().max()))
    assert codes.shape == (20000, 1) and set(codes[:, 0].tolist()) <= {0, 1, 2}
