"""A table run's plots: each column drawn its own way, axes named by the columns, the pairs plot's
columns chosen by how strongly they depend on another."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flowforge.viz.tables as viz_tables
from flowforge.cli.table_plots import how_to_draw, most_informative, values_of
from flowforge.tables import Column


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The figures viz.tables saves, instead of files."""
    figures: list = []
    monkeypatch.setattr(viz_tables, "save", lambda figure, path: figures.append(figure) or path)
    return figures


def test_each_kind_is_drawn_on_the_datas_own_scale() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"price": rng.lognormal(6, 2, 300), "height": rng.normal(170, 10, 300), "visits": rng.poisson(30, 300),
                       "narrow": rng.uniform(5, 10, 300), "day": [f"2024-01-{i % 28 + 1:02d}" for i in range(300)],
                       "cut": rng.choice(["Fair", "Ideal"], 300)})
    kinds = {"price": "positive", "height": "real", "visits": "integer", "narrow": "positive", "day": "datetime", "cut": "categorical"}
    hows = {name: how_to_draw(Column(name, kind, format="ISO8601" if kind == "datetime" else None), df) for name, kind in kinds.items()}
    assert hows == {"price": "log", "height": "real", "visits": "integer", "narrow": "real", "day": "date", "cut": "categorical"}
    assert values_of(df, Column("day", "datetime", format="ISO8601")).dtype == np.dtype("datetime64[ns]")
    assert list(values_of(pd.DataFrame({"n": [2.0, None, 4.0]}), Column("n", "categorical", levels=(2, 4)))) == ["2", "(blank)", "4"]


def test_marginals_and_pairs_name_every_axis_by_its_column(drawn) -> None:
    rng = np.random.default_rng(1)
    x = rng.lognormal(3, 1.5, 200)
    days = np.datetime64("2024-01-01") + rng.integers(0, 365, 200).astype("timedelta64[D]")
    columns = [("price", "log", x, x * 1.1), ("visits", "integer", rng.poisson(4, 200), rng.poisson(4, 500)),
               ("day", "date", days, days), ("cut", "categorical", rng.choice(["a", "b"], 200), rng.choice(["a", "b"], 500))]
    viz_tables.plot_marginals(columns, "marginals.png")
    labels = [axes.get_xlabel() for axes in drawn[0].axes]
    assert labels == ["price (log scale)", "visits", "day", "cut"]
    viz_tables.plot_pairs([x, days], [x, days], ["price", "day"], ["log", "date"], "pairs.png", title="two")
    pairs = drawn[1].axes
    assert [a.get_xlabel() for a in pairs[2:]] == ["price (log)", "day"] and pairs[2].get_ylabel() == "day"
    with pytest.raises(ValueError, match="unknown way to draw"):
        viz_tables.plot_marginals([("x", "pie", x, x)], "x.png")


def test_the_pairs_plot_takes_the_columns_most_correlated_with_another() -> None:
    rng = np.random.default_rng(2)
    a, c = rng.normal(size=400), rng.normal(size=400)
    df = pd.DataFrame({"noise1": rng.normal(size=400), "a": a, "b": a + 0.1 * rng.normal(size=400), "noise2": rng.normal(size=400),
                       "c": c, "d": np.exp(c + 0.3 * rng.normal(size=400)), "noise3": rng.normal(size=400)})
    columns = [Column(name, "real") for name in df.columns]
    chosen, title = most_informative(columns, df)
    assert [c.name for c in chosen] == ["a", "b", "c", "d"]  # in the table's order
    assert title.startswith("the 4 of 7 continuous columns most rank-correlated with another")
    assert most_informative(columns[:3], df)[0] == columns[:3]
