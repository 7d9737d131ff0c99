"""log_prob is a likelihood on the original scale: it sums (integrates) to one over the support."""
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import torch

from flowforge.tables import GaussianBaseline, TableFlow, infer_schema
from flowforge.tables.discrete import CategoricalAR

TINY = {"steps": 30, "layers": 1, "hidden": (8,)}


def fit(df: pd.DataFrame, **options) -> TableFlow:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TableFlow(**{**TINY, **options}).fit(df)


def test_categorical_model_sums_to_one_over_every_combination() -> None:
    model = CategoricalAR([3, 2, 4])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        every = torch.tensor(list(itertools.product(range(3), range(2), range(4))))
        assert math.isclose(float(model.log_prob(every).exp().sum()), 1.0, rel_tol=1e-5)


def test_density_of_a_bounded_column_integrates_to_one_on_the_original_scale() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"depth": 40 + 40 * rng.beta(2, 3, 300), "kind": rng.choice(["a", "b"], 300)})
    model = fit(df, schema=infer_schema(df, overrides="depth:bounded(40,80)"))
    grid = np.linspace(40, 80, 40001)[1:-1]
    marginal = sum(np.trapezoid(np.exp(model.log_prob(pd.DataFrame({"depth": grid, "kind": k}))), grid) for k in "ab")
    assert math.isclose(marginal, 1.0, rel_tol=2e-3)


def test_probabilities_of_counts_sum_to_one() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"visits": rng.poisson(12, 400)})
    model = fit(df, samples=64)
    assert model.metrics["likelihood"] == "lower bound"
    total = np.exp(model.log_prob(pd.DataFrame({"visits": np.arange(0, 200)}))).sum()
    # each P(k) is estimated without bias by 64 draws of u (its log is what falls short, by Jensen)
    assert abs(total - 1.0) < 0.02


def test_tables_without_whole_numbers_have_an_exact_likelihood() -> None:
    rng = np.random.default_rng(2)
    model = fit(pd.DataFrame({"x": rng.normal(size=100), "y": rng.lognormal(size=100), "c": rng.choice(["u", "v"], 100)}))
    assert model.metrics["likelihood"] == "exact" and model.metrics["dequantised"] == []


def test_baseline_is_the_lognormal_density_for_a_positive_column() -> None:
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"price": rng.lognormal(1.0, 0.5, 500), "colour": rng.choice(["r", "g"], 500, p=[0.7, 0.3])})
    baseline = GaussianBaseline(infer_schema(df, overrides="price:positive")).fit(df)
    logs = np.log(df["price"].to_numpy())
    mu, sigma = logs.mean(), logs.std()
    counts = df["colour"].value_counts()
    frequency = df["colour"].map(lambda c: (counts[c] + 0.5) / (500 + 1.0))
    expected = -0.5 * ((logs - mu) / sigma) ** 2 - np.log(sigma * math.sqrt(2 * math.pi)) - logs + np.log(frequency)
    np.testing.assert_allclose(baseline.log_prob(df), expected, rtol=1e-5)


def test_a_fitted_flow_beats_the_gaussian_baseline_on_held_out_rows() -> None:
    rng = np.random.default_rng(4)
    n = 1200
    colour = rng.choice(["r", "g"], n)
    angle = rng.uniform(0, 2 * np.pi, n)
    df = pd.DataFrame({"x": np.cos(angle) + 0.1 * rng.normal(size=n), "y": np.sin(angle) + 0.1 * rng.normal(size=n) + 3 * (colour == "r"),
                       "colour": colour})
    train, test = df.iloc[:1000], df.iloc[1000:]
    model = fit(train, steps=300, layers=2, hidden=(32,))
    assert -model.log_prob(test).mean() < -GaussianBaseline().fit(train).log_prob(test).mean() - 0.2
