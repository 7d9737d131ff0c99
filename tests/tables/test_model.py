"""TableFlow: samples respect the data, bad input gets named errors or warnings, save/load."""
import functools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowforge.errors import FlowforgeError
from flowforge.tables import TableFlow, infer_schema
from flowforge.tables.encode import encode

from .frames import mixed, with_blanks

TINY = {"steps": 20, "layers": 1, "hidden": (8,)}


@functools.cache
def fitted() -> TableFlow:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TableFlow(seed=0, missing="drop", **TINY).fit(with_blanks(mixed()))


def test_fit_says_what_it_left_out_and_dropped() -> None:
    with pytest.warns(UserWarning) as record:
        model = TableFlow(missing="drop", **TINY).fit(with_blanks(mixed()))
    text = " ".join(str(w.message) for w in record)
    assert "Unnamed: 0 (identifier)" in text and "country (constant)" in text
    assert "5 of 120 rows" in text and "'height': 3" in text and "'colour': 2" in text
    assert model.metrics["rows_dropped"] == 5 and model.metrics["likelihood"] == "lower bound"
    assert model.metrics["dequantised"] == ["visits", "day"]


def check_sample(model: TableFlow, sample: pd.DataFrame) -> None:
    """Every cell of every sampled row is in its column's support and type."""
    assert list(sample.columns) == list(mixed().columns)
    assert (sample["price"] > 0).all() and ((sample["share"] > 0) & (sample["share"] < 1)).all()
    assert sample["visits"].dtype == np.int64 and (sample["visits"] >= 0).all()
    assert set(sample["colour"]) <= {"red", "green", "blue"} and set(sample["doors"]) <= {2, 4, 5}
    assert sample["doors"].dtype == np.int64 and sample["member"].dtype == bool
    assert pd.api.types.is_datetime64_any_dtype(sample["day"]) and (sample["day"] == sample["day"].dt.normalize()).all()
    assert (sample["country"] == "NL").all()
    encoded = encode(model.schema, sample)
    assert not encoded.outside.any() and not encoded.missing.any()
    assert np.isfinite(model.log_prob(sample)).all()


def test_samples_respect_the_data() -> None:
    check_sample(fitted(), fitted().sample(300, seed=1))


@settings(max_examples=15)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_sampled_rows_always_parse_back_under_the_schema(n: int, seed: int) -> None:
    sample = fitted().sample(n, seed=seed)
    assert len(sample) == n
    check_sample(fitted(), sample)


def test_sampling_is_reproducible() -> None:
    pd.testing.assert_frame_equal(fitted().sample(50, seed=3), fitted().sample(50, seed=3))


def test_unseen_levels_and_values_outside_the_support_get_minus_inf_with_a_warning() -> None:
    rows = mixed(6, seed=5).astype({"visits": float})
    rows.loc[1, "colour"], rows.loc[3, "price"], rows.loc[4, "visits"] = "purple", -2.0, 2.5
    with pytest.warns(UserWarning, match=r"3 rows .*-inf, e.g. rows \[1, 3, 4\]"):
        logp = fitted().log_prob(rows)
    assert logp.dtype == np.float64 and logp.shape == (6,)
    assert np.isneginf(logp[[1, 3, 4]]).all() and np.isfinite(logp[[0, 2, 5]]).all()


def test_blank_continuous_cells_give_nan_and_blank_categories_their_exact_marginal() -> None:
    rows = with_blanks(mixed(10))
    with pytest.warns(UserWarning) as record:
        logp = fitted().log_prob(rows)
    text = " ".join(str(w.message) for w in record)
    assert "3 rows with blank continuous cells get NaN, e.g. rows [0, 1, 2]" in text
    assert "2 rows with blank categorical cells get the exact marginal" in text
    assert np.isnan(logp[[0, 1, 2]]).all() and np.isfinite(np.delete(logp, [0, 1, 2])).all()
    filled = [fitted().log_prob(mixed(10).iloc[5:7].assign(colour=c)) for c in ("red", "green", "blue")]
    np.testing.assert_allclose(logp[5:7], np.logaddexp.reduce(filled, axis=0), rtol=1e-6)


def test_a_column_of_another_type_when_scoring_is_a_named_error() -> None:
    rows = mixed(10)
    rows["colour"], rows["height"] = 1.0, "tall"
    with pytest.raises(FlowforgeError) as error:
        fitted().log_prob(rows.drop(columns="price"))
    message = str(error.value)
    assert "'colour': categorical (text) in training, but numbers" in message
    assert "'height': positive in training, but text" in message and "'price': missing" in message


def test_all_missing_column_is_left_out_with_a_notice_and_a_single_level_column_a_constant() -> None:
    df = mixed(40)
    df["nothing"] = np.nan
    with pytest.warns(UserWarning, match=r"nothing \(ignored: all 40 cells are blank\)"):
        model = TableFlow(**TINY).fit(df)
    assert model.schema["nothing"].kind == "ignored" and model.sample(3)["nothing"].isna().all()
    assert np.isfinite(model.log_prob(df.head(5))).all()  # the ignored column does not blank out a row
    assert np.isfinite(model.log_prob(df.head(5).drop(columns="nothing"))).all()  # nor need be there
    for kind in ("identifier", "ignored"):  # overrides that leave it out are accepted
        assert infer_schema(df, overrides=f"nothing:{kind}")["nothing"].kind == kind
    with pytest.raises(FlowforgeError, match="'nothing': all 40 cells are missing: .* leave the override out"):
        infer_schema(df, overrides="nothing:real")
    df = df.drop(columns="nothing").assign(one="only")
    assert infer_schema(df)["one"].kind == "constant"
    with pytest.warns(UserWarning, match="one \\(constant\\)"):
        TableFlow(**TINY).fit(df)


def test_save_load_gives_identical_log_prob_and_samples(tmp_path) -> None:
    model = fitted()
    model.save(tmp_path / "model")
    loaded = TableFlow.load(tmp_path / "model")
    rows = mixed(30, seed=7)
    np.testing.assert_array_equal(loaded.log_prob(rows), model.log_prob(rows))
    pd.testing.assert_frame_equal(loaded.sample(20, seed=2), model.sample(20, seed=2))
    assert loaded.schema == model.schema and loaded.metrics == model.metrics


def test_loading_a_folder_without_a_model_is_a_named_error(tmp_path) -> None:
    with pytest.raises(FlowforgeError, match="no table.json"):
        TableFlow.load(tmp_path)


def test_unfitted_model_is_a_named_error() -> None:
    with pytest.raises(FlowforgeError, match="not fitted"):
        TableFlow().sample(3)


def test_a_rows_score_does_not_depend_on_the_rows_scored_with_it() -> None:
    # The flow runs in float32, and a batch of 20 and one of 3 may round differently (another BLAS
    # blocking: 6e-12 apart under ATEN_CPU_CAPABILITY=avx2), up to ~layers * 1e-7 relative. What this
    # guards against, noise drawn per batch, moves a score by more than 1e-2.
    rows = mixed(20, seed=9)
    np.testing.assert_allclose(fitted().log_prob(rows)[5:8], fitted().log_prob(rows.iloc[5:8]), rtol=1e-5)


def test_too_few_complete_rows_is_a_named_error_and_staying_at_the_gaussian_is_said() -> None:
    with pytest.raises(FlowforgeError, match="only 4 complete rows"), pytest.warns(UserWarning, match="1 of 5 rows"):
        TableFlow(**TINY).fit(pd.DataFrame({"a": [1.5, 2.5, 3.1, 0.2, np.nan], "c": ["x", "y", "x", "y", "x"]}))
    model = TableFlow(steps=5, layers=1, hidden=(8,), lr=1e-9).fit(pd.DataFrame({"a": np.random.default_rng(0).normal(size=40)}))
    assert model.metrics["flow"]["stayed_at_gaussian"] and "full-covariance Gaussian" in model.metrics["flow"]["why"]


def test_missing_level_models_blank_categories_as_a_level_of_their_own() -> None:
    df = with_blanks(mixed(200)).drop(columns=["Unnamed: 0", "country"])
    df.loc[df.index[10:60], "colour"] = None  # a quarter of the colours blank: the samples show it
    with pytest.warns(UserWarning, match=r"missing='level': 3 of 200 rows .*\{'height': 3\}"):
        model = TableFlow(missing="level", **TINY).fit(df)
    assert model.schema["colour"].levels == ("blue", "green", "red", None)
    sample = model.sample(400, seed=0)
    assert 0 < sample["colour"].isna().sum() < 400 and set(sample["colour"].dropna()) <= {"red", "green", "blue"}
    logp = model.log_prob(df.iloc[10:13])
    assert np.isfinite(logp).all()
    with pytest.raises(FlowforgeError, match="missing='impute'"):
        TableFlow(missing="impute").fit(df)


def test_a_column_of_exact_zeros_and_amounts_samples_both_and_scores_zeros_as_a_probability() -> None:
    """Rain: 60% dry days (exactly 0), otherwise a positive amount. Samples are never negative and
    hit 0 about as often; a dry day scores finitely (a probability for the rain, a density for temp)."""
    rng = np.random.default_rng(0)
    rain = np.where(rng.random(600) < 0.6, 0.0, rng.lognormal(1, 0.8, 600).round(1) + 0.1)
    df = pd.DataFrame({"rain": rain, "temp": rng.normal(15, 5, 600) + 2 * (rain == 0)})
    model = TableFlow(steps=150, seed=0).fit(df)
    assert model.schema["rain"].kind == "nonnegative" and model.metrics["likelihood"] == "lower bound"
    sample = model.sample(2000, seed=1)["rain"]
    assert (sample >= 0).all() and abs(float((sample == 0).mean()) - 0.6) < 0.1
    dry = model.log_prob(pd.DataFrame({"rain": [0.0], "temp": [15.0]}))
    assert np.isfinite(dry).all()


def test_a_type_error_quotes_a_cell_that_is_text() -> None:
    rows = mixed(10)
    rows["height"] = rows["height"].astype(object)
    rows.loc[rows.index[4], "height"] = "tall"
    with pytest.raises(FlowforgeError, match=r"'height': positive in training, but text here \(e.g. 'tall'\)"):
        fitted().log_prob(rows)
