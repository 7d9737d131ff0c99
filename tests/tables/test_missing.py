"""missing="model": the blank-pattern model, rows with blank numbers scored by importance sampling,
samples with blank cells, save/load, and the command line."""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from flowforge.cli import main
from flowforge.errors import FlowforgeError
from flowforge.tables import TableFlow, infer_schema
from flowforge.tables.encode import encode
from flowforge.tables.scoring import joint_log_prob, pattern_shift

TINY = {"steps": 20, "layers": 1, "hidden": (8,)}
RATES = {"city": 0.4, "farm": 0.05}  # share of blank 'ozone' cells per site


def stations(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Two real columns and a site; 'ozone' is blank far more often in the city, 'wind' never."""
    rng = np.random.default_rng(seed)
    site = rng.choice(list(RATES), n)
    wind = rng.normal(10, 3, n)
    ozone = 40 - 2 * wind + rng.normal(0, 4, n)
    blank = rng.random(n) < np.vectorize(RATES.get)(site)
    return pd.DataFrame({"site": site, "wind": wind, "ozone": np.where(blank, np.nan, ozone)})


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


@functools.cache
def fitted() -> TableFlow:
    schema = infer_schema(stations(), overrides="wind:real,ozone:real")  # identity maps: the density is the flow's own
    return quiet(TableFlow(schema=schema, seed=0, **TINY).fit, stations())


def test_sampled_blank_cells_follow_the_training_rate_in_each_category() -> None:
    model, train = fitted(), stations()
    sample = model.sample(4000, seed=1)
    assert model.missing == "model" and not sample["wind"].isna().any()  # never blank in training, never sampled blank
    for site in RATES:
        seen, drawn = train["ozone"][train["site"] == site].isna(), sample["ozone"][sample["site"] == site].isna()
        p = seen.mean()
        tolerance = 4 * math.sqrt(p * (1 - p) * (1 / len(seen) + 1 / len(drawn))) + 0.01  # + the prior's pull on 200 rows
        assert abs(drawn.mean() - p) < tolerance, (site, drawn.mean(), p)


def test_pattern_probabilities_sum_to_one_and_complete_rows_score_as_complete_rows() -> None:
    model = fitted()
    assert model.patterns.columns == ("ozone",)
    assert math.isclose(float(torch.logsumexp(model.pattern_model.log_marginal, 0)), 0.0, abs_tol=1e-6)  # P(c) is float32
    rows = stations(6, seed=3).assign(ozone=[1.0, np.nan, 2.0, np.nan, 3.0, 4.0], wind=[5.0, 6.0, np.nan, 7, 8, 9])
    pattern = model.log_prob_pattern(rows)
    blank_ozone, complete = float(model.pattern_model.log_marginal[1]), float(model.pattern_model.log_marginal[0])
    np.testing.assert_allclose(pattern[[0, 4, 5]], complete)
    np.testing.assert_allclose(pattern[[1, 3]], blank_ozone)
    assert np.isneginf(pattern[2])  # a blank wind: never blank in training, probability 0


def test_a_row_with_a_blank_number_gets_an_importance_sampling_estimate_that_matches_quadrature() -> None:
    model = fitted()
    rows = stations(3, seed=7).assign(ozone=np.nan)
    with pytest.warns(UserWarning, match="3 rows with blank continuous cells get an importance-sampling estimate"):
        details = model.log_prob_details(rows)
    assert details["estimated"].all() and (details["standard_error"] < 0.05).all()
    # the exact marginal by quadrature over the blank latent (identity map: y = x), given the pattern
    encoded = encode(model.schema, rows)
    grid = torch.linspace(-200, 250, 20001, dtype=torch.float64)
    for i in range(len(rows)):
        codes = torch.from_numpy(encoded.codes[i : i + 1]).repeat(len(grid), 1)
        y = torch.stack([torch.full_like(grid, encoded.continuous[i, 0]), grid], 1)  # continuous order: wind, ozone
        with torch.no_grad():
            log_f = joint_log_prob(model, codes, y)
            exact = float(torch.logsumexp(log_f, 0) + math.log(float(grid[1] - grid[0])))
            exact += float(pattern_shift(model, codes[:1], 1)[0])
        error = details["standard_error"].iloc[i]
        assert abs(details["log_prob"].iloc[i] - exact) < 5 * error + 1e-3, (details["log_prob"].iloc[i], exact, error)


def test_without_blank_numbers_model_is_drop() -> None:
    df = stations(200).dropna()
    schema = infer_schema(df, overrides="wind:real,ozone:real")
    model, drop = (quiet(TableFlow(schema=schema, missing=m, **TINY).fit, df) for m in ("model", "drop"))
    assert model.pattern_model is None
    np.testing.assert_array_equal(model.log_prob(df.head(20)), drop.log_prob(df.head(20)))
    np.testing.assert_array_equal(model.log_prob_pattern(df.head(20)), 0.0)
    pd.testing.assert_frame_equal(model.sample(30, seed=2), drop.sample(30, seed=2))


def test_save_and_load_keep_the_pattern_model(tmp_path) -> None:
    model = fitted()
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "pattern.pt").is_file()
    torch.load(tmp_path / "m" / "pattern.pt", weights_only=True)  # tensors only, no pickle
    again = TableFlow.load(tmp_path / "m")
    rows = stations(8, seed=4)
    pd.testing.assert_frame_equal(quiet(again.log_prob_details, rows), quiet(model.log_prob_details, rows))
    pd.testing.assert_frame_equal(again.sample(50, seed=5), model.sample(50, seed=5))


def test_bad_missing_options_are_named_errors(capsys) -> None:
    with pytest.raises(FlowforgeError, match="missing='impute': choose from drop, level, model"):
        TableFlow(missing="impute").fit(stations(40))
    drop = quiet(TableFlow(missing="drop", **TINY).fit, stations(60))
    with pytest.raises(FlowforgeError, match="only missing='model' models which cells are blank"):
        drop.log_prob_pattern(stations(5))
    assert main(["train", "--data", "x.csv", "--missing", "impute"]) == 2
    assert "invalid choice: 'impute'" in capsys.readouterr().err


def test_cli_samples_write_blank_cells_and_metrics_say_what_was_estimated(tmp_path, capsys) -> None:
    stations(300).to_csv(tmp_path / "air.csv", index=False)
    run = tmp_path / "run"
    quiet(main, ["train", "--data", str(tmp_path / "air.csv"), "--steps", "20", "--no-progress", "--threads", "1", "--out", str(run)])
    assert "for which are blank" in capsys.readouterr().out
    assert main(["sample", str(run), "-n", "400", "--seed", "0", "--out", str(tmp_path / "s.csv")]) == 0
    text = (tmp_path / "s.csv").read_text().splitlines()
    assert text[0] == "site,wind,ozone" and any(line.endswith(",") for line in text[1:])  # a blank ozone cell
    sample = pd.read_csv(tmp_path / "s.csv")
    assert 0 < sample["ozone"].isna().mean() < 0.5 and not sample["wind"].isna().any()
    metrics = pd.read_json(run / "metrics.json", typ="series")
    assert metrics["n_test_estimated"] > 0 and metrics["blank_rows_likelihood"].startswith("importance-sampling estimate")
    assert math.isclose(metrics["test_nll_with_pattern"], metrics["test_nll_observed"] + metrics["test_nll_pattern"], rel_tol=1e-9)
