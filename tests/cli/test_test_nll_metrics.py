"""metrics.json's test NLL summary: the median beside the mean, and a named worst row when one row makes the mean."""
from __future__ import annotations

import numpy as np
import pytest

import flowforge
from flowforge.cli.table_run import test_nll_metrics as nll_metrics


@pytest.fixture
def flow():
    return flowforge.RealNVP(2, layers=2, hidden=(8,))  # untrained: a standard normal


def test_one_far_row_is_named_with_the_mean_without_it(flow):
    rows = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    rows[17] = [60.0, 0.0]  # -log N = 1800 + log(2 pi): alone it moves the mean by ~36 nats
    m = nll_metrics(flow, rows)
    worst = m["test_nll_dominated_by"]
    assert worst["test_row"] == 17
    assert worst["nll"] == pytest.approx(1800 + np.log(2 * np.pi) + rows[17, 1] ** 2 / 2, rel=1e-4)
    assert m["test_nll"] - m["test_nll_median"] > 30
    assert worst["mean_without_it"] == pytest.approx(float(np.delete(0.5 * (rows ** 2).sum(1) + np.log(2 * np.pi), 17).mean()), rel=1e-4)


def test_ordinary_rows_get_the_median_and_no_worst_row(flow):
    rows = np.random.default_rng(1).normal(size=(200, 2)).astype(np.float32)
    m = nll_metrics(flow, rows)
    assert "test_nll_dominated_by" not in m
    assert abs(m["test_nll"] - m["test_nll_median"]) < 1.0


def test_no_test_rows_gives_no_test_nll(flow):
    assert nll_metrics(flow, np.zeros((0, 2), np.float32)) == {"test_nll": None}
