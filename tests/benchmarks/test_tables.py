"""Smoke tests of benchmarks/tables.py's pure parts on tiny frames: no SDV, no table packages, no training."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
pytest.importorskip("sklearn")
pytest.importorskip("scipy")

import table_metrics as tm
from table_data import split


def _train() -> pd.DataFrame:
    return pd.DataFrame({"colour": ["red", "blue"] * 20, "count": np.arange(40), "code": [1, 2, 3, 4] * 10,
                         "share": np.linspace(0, 1, 40), "size": np.linspace(-1, 1, 40) ** 2 + 0.01})


def test_column_kinds() -> None:
    assert tm.column_kinds(_train()) == {"colour": "categorical", "count": "integer", "code": "categorical",
                                         "share": "continuous", "size": "continuous"}


def test_support_violations_counts_each_rule_and_each_cell_once() -> None:
    train = _train()
    synthetic = pd.DataFrame({"colour": ["red", "green"], "count": [2.5, -1.0], "code": [5, 1], "share": [1.5, 0.5],
                              "size": [-0.1, np.nan]})
    out = tm.support_violations(train, synthetic, tm.column_kinds(train))
    cells = 10
    assert out["unseen category"] == 2 / cells  # green, code 5
    assert out["non-integer"] == 1 / cells and out["negative"] == 2 / cells  # count -1.0 is an integer but negative
    assert out["above 1 (proportion)"] == 1 / cells and out["missing"] == 1 / cells
    assert out["any"] == 7 / cells
    assert out["columns"] == {"colour": 0.5, "count": 1.0, "code": 0.5, "share": 0.5, "size": 1.0}
    assert tm.support_violations(train, train, tm.column_kinds(train))["any"] == 0


def test_c2st_auc_tells_shifted_rows_and_not_identical_ones() -> None:
    rng = np.random.default_rng(0)
    real = pd.DataFrame({"x": rng.normal(size=200), "c": rng.choice(["a", "b"], 200)})
    same = pd.DataFrame({"x": rng.normal(size=200), "c": rng.choice(["a", "b"], 200)})
    shifted = pd.DataFrame({"x": rng.normal(3, 1, size=200), "c": ["a"] * 200})
    assert abs(tm.c2st_auc(real, same) - 0.5) < 0.1
    assert tm.c2st_auc(real, shifted) > 0.95


def test_independent_log_prob_is_a_sum_of_per_column_terms() -> None:
    train = pd.DataFrame({"c": ["a", "a", "a", "b"], "x": [0.0, 1.0, np.nan, 2.0]})
    test = pd.DataFrame({"c": ["a", "z"], "x": [np.nan, 1.0]})
    kinds = {"c": "categorical", "x": "continuous"}
    logp = tm.independent_log_prob(train, test, kinds)
    from scipy.stats import gaussian_kde

    p_missing = (1 + 1) / (4 + 2)
    c = np.log(np.array([3 + 1, 0 + 1]) / (4 + 2 + 1))  # add-one over a, b and one unseen slot
    x = np.array([np.log(p_missing), np.log1p(-p_missing) + gaussian_kde([0.0, 1.0, 2.0]).logpdf([1.0])[0]])
    np.testing.assert_allclose(logp, c + x)


def test_integer_columns_get_a_mass_and_the_masses_sum_to_one() -> None:
    train = pd.DataFrame({"n": [0, 1, 1, 2, 5, 7, 8, 8, 9, 12]})
    grid = pd.DataFrame({"n": np.arange(-40, 60)})
    mass = np.exp(tm.independent_log_prob(train, grid, {"n": "integer"}))
    assert abs(mass.sum() - 1) < 1e-9 and mass[40 + 8] > mass[40 + 3] > mass[40 + 30]


def test_atoms_are_continuous_columns_with_a_frequent_value() -> None:
    df = pd.DataFrame({"rain": [0.0] * 6 + [0.3, 1.7, 2.2, 5.1], "count": [0] * 5 + list(range(20, 25)), "x": np.linspace(0.5, 1, 10)})
    assert tm.atoms(df) == {"rain": (0.0, 0.6)}


def test_split_is_seeded_and_disjoint() -> None:
    df = pd.DataFrame({"i": np.arange(50)})
    train, test = split(df, 3)
    assert len(test) == 10 and set(train.i).isdisjoint(test.i) and len(train) + len(test) == 50
    assert split(df, 3)[1].equals(test) and not split(df, 4)[1].equals(test)


def test_quality_score_runs_on_a_tiny_frame() -> None:
    pytest.importorskip("sdmetrics")
    train = _train()
    metadata = tm.sdv_metadata(train, tm.column_kinds(train))
    assert 0.9 < tm.quality_score(train, train, metadata) <= 1


def test_report_and_results_section(tmp_path: Path) -> None:
    import table_report as tables

    row = {"table": "t", "train_rows": 8, "test_rows": 2, "columns": 2, "seed": 0, "fit_s": 1.0, "quality": 0.8,
           "c2st_auc": 0.6, "outside": {"any": 0.01}}
    results = {"rows": [{**row, "method": "flowforge", "nll": 1.0, "independent_nll": 2.0, "worst_minus_independent": 0.5,
                         "gaussian_nll": 0.5, "worst_minus_gaussian": 3.0},
                        {**row, "method": "ctgan", "quality": 0.7, "c2st_auc": 0.9}, {**row, "method": "tvae", "error": "E: x"}],
               "notes": {}, "missing": {"copula_gan": "not installed"}}
    assert tables.verdicts(results) == ["flowforge has the highest quality score on 1 of 1 tables",
                                        "flowforge has the C2ST AUC nearest 0.5 on 1 of 1 tables",
                                        "flowforge's held-out NLL is below the independent baseline's in 1 of 1 runs",
                                        "flowforge's held-out NLL is below the gaussian baseline's in 0 of 1 runs"]
    assert "| t | 8/2 | tvae | — | E: x |" in tables.sample_table(results)
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nWords.\n\n## Peers benchmark, old\n\n| p |\n")
    tables.write_results(path, "## Tables benchmark, one\n\n| a |")
    tables.write_results(path, "## Tables benchmark, two\n\n| b |")
    assert path.read_text() == "# Results\n\nWords.\n\n## Tables benchmark, two\n\n| b |\n\n## Peers benchmark, old\n\n| p |\n"
