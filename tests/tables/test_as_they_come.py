"""Tables as a new user brings them: dates in other formats, unreadable dates, all-blank and
near-unique columns, identifiers in samples, tables that lose most rows to blank cells, and
notices in the table's own words."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from flowforge.errors import FlowforgeError
from flowforge.flows import build_model
from flowforge.tables import TableFlow, infer_schema
from flowforge.tables.infer import MAX_LEVELS
from flowforge.tables.small import keep_trained, start_state

from .frames import mixed

TINY = {"steps": 20, "layers": 1, "hidden": (8,)}


def us_dates(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    return pd.DataFrame({"day": day.strftime("%m/%d/%Y"), "amount": rng.lognormal(2, 0.5, n)})


def quiet_fit(df: pd.DataFrame, **options) -> TableFlow:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TableFlow(**{**TINY, **options}).fit(df)


def test_dates_in_us_and_day_first_formats_are_datetimes_read_one_way_per_column() -> None:
    df = us_dates()
    column = infer_schema(df)["day"]
    assert column.kind == "datetime" and column.format == "%m/%d/%Y" and column.resolution == 86400
    day_first = pd.DataFrame({"d": ["15/03/2021", "01/02/2021", "28/12/2020"]})
    assert infer_schema(day_first)["d"].format == "%d/%m/%Y"  # 15 cannot be a month: the whole column reads day-first
    ambiguous = pd.DataFrame({"d": ["03/04/2021", "05/06/2021", "07/08/2021"]})
    assert infer_schema(ambiguous)["d"].format == "%m/%d/%Y"  # month first where both read every cell
    mixed_formats = pd.DataFrame({"d": ["03/15/2021", "15/03/2021", "2021-03-15"] * 4})
    assert infer_schema(mixed_formats)["d"].kind == "categorical"  # no one format reads them all
    model = quiet_fit(df)
    sample = model.sample(50, seed=0)
    assert pd.api.types.is_datetime64_any_dtype(sample["day"])
    assert sample["day"].between(pd.Timestamp("2021-01-01"), pd.Timestamp("2022-01-01")).mean() > 0.9
    written = sample.assign(day=sample["day"].dt.strftime("%Y-%m-%d"))  # as write_table writes them (ISO)
    assert np.isfinite(model.log_prob(written)).all() and np.isfinite(model.log_prob(df)).all()


def test_unreadable_dates_when_scoring_get_minus_inf_and_a_warning_naming_column_and_rows() -> None:
    model = quiet_fit(us_dates())
    rows = us_dates(6, seed=1)
    rows.loc[2, "day"], rows.loc[4, "day"] = "soon", "13/45/2021"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        log_prob = model.log_prob(rows)
    assert np.isneginf(log_prob[[2, 4]]).all() and np.isfinite(np.delete(log_prob, [2, 4])).all()
    assert len(record) == 1  # ours alone: no pandas warning about guessing a format
    message = str(record[0].message)
    assert "rows [2, 4]" in message and "'day': 2 cells that are not dates as %m/%d/%Y (e.g. 'soon')" in message


def test_a_datetime_override_on_text_no_format_reads_is_a_named_error() -> None:
    df = pd.DataFrame({"d": ["2021-03-15", "soon", "2021-03-17"], "x": [1.5, 2.5, 3.5]})
    with pytest.raises(FlowforgeError, match="'d': datetime, but no one format reads every cell \\(e.g. 'soon'\\)"):
        infer_schema(df, overrides="d:datetime")


def test_near_unique_text_is_an_identifier_with_the_reason_and_can_be_declared_categorical() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"genus": [f"g{i}" for i in rng.integers(0, 70, 80)], "order": rng.choice(list("abcdef"), 80),
                       "x": rng.normal(size=80)})
    schema = infer_schema(df)
    assert schema["genus"].kind == "identifier" and schema["order"].kind == "categorical"
    assert "distinct values in 80 rows" in schema["genus"].note and "left out" in str(schema)
    assert infer_schema(df, overrides="genus:categorical")["genus"].kind == "categorical"
    many = pd.DataFrame({"name": [f"n{i % (MAX_LEVELS + 50)}" for i in range(2000)]})
    assert infer_schema(many)["name"].kind == "identifier"  # too many levels, though each repeats
    with pytest.warns(UserWarning, match=r"genus \(identifier: \d+ distinct values in 80 rows"):
        TableFlow(**TINY).fit(df)


def test_sampled_identifiers_count_on_from_the_training_max_and_text_ids_are_blank() -> None:
    df = mixed(40).assign(**{"Unnamed: 0": np.arange(100, 140), "code": [f"id-{i}" for i in range(40)]})
    model = quiet_fit(df)
    assert model.schema["code"].kind == "identifier"
    sample = model.sample(5, seed=0)
    assert sample["Unnamed: 0"].tolist() == [140, 141, 142, 143, 144] and sample["Unnamed: 0"].dtype == np.int64
    assert sample["code"].isna().all()


def test_few_valued_columns_are_named_and_fits_numeric_advice_does_not_leak() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"rating": rng.choice([0.5, 1.5, 2.5, 3.5], 200), "x": rng.normal(size=200)})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        # declared real: left to inference, four decimals seen 50 times each are read as levels
        TableFlow(**TINY, schema=infer_schema(df, overrides="rating:real")).fit(df)
    text = " ".join(str(w.message) for w in record)
    assert "'rating' (4 values) take few distinct values in" in text and "--columns NAME:categorical" in text
    assert "column 0" not in text and "dequantise" not in text


def test_dropping_most_rows_is_said_loudly_with_what_keeps_them() -> None:
    rng = np.random.default_rng(0)
    n = 80
    df = pd.DataFrame({"vore": rng.choice(["carni", "herbi"], n).astype(object), "cycle": rng.lognormal(size=n),
                       "total": rng.lognormal(size=n)})
    df.loc[df.index[:30], "vore"] = None
    df.loc[df.index[20:70], "cycle"] = np.nan
    with pytest.warns(UserWarning) as record:
        model = TableFlow(missing="drop", **TINY).fit(df)
    text = " ".join(str(w.message) for w in record)
    assert "MOST ROWS DROPPED: only 10 of 80 rows are complete" in text
    assert "blank cells per column: {'vore': 30, 'cycle': 50}" in text
    assert "--missing level) makes blank categories a level and keeps 30 rows" in text
    assert "leaving out 'cycle' (50 blank; --columns 'cycle:ignored') keeps 50" in text
    assert model.metrics["blank_cells"] == {"vore": 30, "cycle": 50} and model.metrics["rows_dropped"] == 70
    level = quiet_fit(df, missing="level")
    assert level.metrics["blank_cells"] == {"cycle": 50} and level.metrics["blank_levels"] == {"vore": 30}
    assert level.metrics["rows_dropped"] == 50
    ignored = quiet_fit(df, missing="drop", schema=infer_schema(df, overrides="cycle:ignored"))  # what the notice suggests
    assert ignored.metrics["rows_dropped"] == 30 and ignored.sample(4)["cycle"].isna().all()


def test_a_small_tables_flow_is_kept_only_when_clearly_better_than_its_gaussian_start() -> None:
    y = torch.randn(3 * 40, 2, generator=torch.Generator().manual_seed(0))  # 3 dequantised copies of 40 rows

    def shaken(flow) -> None:
        with torch.no_grad():
            for value in flow.parameters():
                value.add_(0.3 * torch.randn(value.shape, generator=torch.Generator().manual_seed(1)))

    flow = build_model("nsf", features=2, layers=2, hidden=(8,), seed=0)  # the identity: N(0, I) is the truth
    identity = start_state(flow)
    shaken(flow)  # a trained flow worse than its start
    result = keep_trained(flow, identity, y, None, 40)
    assert not result["kept"] and result["gain"] < 0
    assert all(torch.equal(value, identity[name]) for name, value in flow.named_parameters())  # reset to the start
    shaken(flow)
    worse = start_state(flow)
    with torch.no_grad():
        for name, value in flow.named_parameters():
            value.copy_(identity[name])
    result = keep_trained(flow, worse, y, None, 40)  # the trained flow is the truth, its start shaken
    assert result["kept"] and result["gain"] > 2 * result["gain_error"]
    assert all(torch.equal(value, identity[name]) for name, value in flow.named_parameters())


def test_a_tiny_table_says_plainly_when_it_kept_the_gaussian() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=30), "b": rng.lognormal(size=30)})  # Gaussian after the support maps
    flow = quiet_fit(df, steps=60).metrics["flow"]
    assert flow["stayed_at_gaussian"] and "Gaussian" in flow["why"]


def test_yearly_and_month_end_dates_are_sampled_as_such_dates() -> None:
    rng = np.random.default_rng(0)
    n = 80
    years = pd.to_datetime(pd.DataFrame({"year": rng.integers(1970, 1983, n), "month": 1, "day": 1}))
    ends = pd.date_range("1967-06-30", periods=n, freq="ME")
    df = pd.DataFrame({"Year": years.dt.strftime("%Y-%m-%d"), "date": ends, "mpg": rng.lognormal(3, 0.3, n)})
    schema = infer_schema(df)
    assert (schema["Year"].calendar, schema["date"].calendar) == ("year", "month-end")
    assert "yearly dates (1 January)" in str(schema) and "monthly dates (month ends)" in str(schema)
    model = quiet_fit(df)
    sample = model.sample(200, seed=0)
    assert ((sample["Year"].dt.month == 1) & (sample["Year"].dt.day == 1)).all()
    assert sample["date"].dt.is_month_end.all() and (sample["date"] == sample["date"].dt.normalize()).all()
    assert sample["Year"].dt.year.between(1950, 2005).mean() > 0.95
    assert np.isfinite(model.log_prob(sample)).all()
    odd = df.head(3).copy()
    odd.loc[1, "Year"] = "1975-06-01"  # not a 1 January: the model gives it no probability
    with pytest.warns(UserWarning, match=r"'Year': 1 dates that are not yearly dates \(1 January\) like the training dates"):
        log_prob = model.log_prob(odd)
    assert np.isneginf(log_prob[1]) and np.isfinite(log_prob[[0, 2]]).all()
