"""Whiten: the fitted first layer that makes an identity flow the Gaussian fitted to the data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

import flowforge
from flowforge.cli import main
from flowforge.transforms import Standardize, Whiten


def _correlated(rows: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.tensor([[3.0, 0.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 0.5, 1.0]], dtype=torch.float64)  # correlations 0.7, -0.6
    return torch.randn(rows, 3, generator=g, dtype=torch.float64) @ mixing.T + torch.tensor([100.0, -5.0, 0.3], dtype=torch.float64)


def test_an_untrained_whitened_flow_is_the_gaussian_fitted_to_its_data() -> None:
    x = _correlated(50_000)
    flow = flowforge.RealNVP(3, 2, (8, 8), standardize="whiten").double()
    flow.transform[0].fit_(x)
    gaussian = MultivariateNormal(x.mean(0), torch.cov(x.T, correction=0))
    probe = _correlated(100, seed=1)
    gap = (flow.log_prob(probe) - gaussian.log_prob(probe)).abs()
    assert gap.max() < 1e-2 and gap.mean() < 2e-3  # Ledoit-Wolf's shrinkage at 50,000 rows: ~1e-4


def test_few_rows_of_collinear_repeated_and_constant_columns_give_a_finite_well_conditioned_map() -> None:
    base = np.random.default_rng(0).normal(size=(40, 3))
    x = np.column_stack([base, base[:, 0] * 2 + 1, np.round(base[:, 1]), np.full(40, 7.0)])  # collinear, discrete, constant
    layer = Whiten(6)
    layer.fit_(torch.as_tensor(x, dtype=torch.float32))
    diagonal = layer.whitener.diagonal()
    assert torch.isfinite(layer.whitener).all() and diagonal.max() / diagonal.min() < 1e3
    z, logabsdet = layer(torch.as_tensor(x, dtype=torch.float32))
    assert torch.isfinite(z).all() and torch.isfinite(logabsdet).all()
    assert torch.all(z[:, 5] == 0) and layer.whitener[5, 5] == 1  # the constant column is left alone, as Standardize leaves it
    plain = Standardize(6)
    plain.fit_(torch.as_tensor(x, dtype=torch.float32))
    assert plain.scale[5] == layer.scale[5] == 1


def test_shrinkage_vanishes_with_many_rows_and_grows_with_few() -> None:
    """Ledoit-Wolf: with 50,000 rows the whitened data have identity covariance; with 12 rows of 3
    correlated columns the correlation is shrunk towards the identity."""
    many, few = Whiten(3), Whiten(3)
    many.fit_(_correlated(50_000))
    few.fit_(_correlated(12))
    z = many(_correlated(50_000).float())[0]
    torch.testing.assert_close(torch.cov(z.T, correction=0), torch.eye(3), rtol=0, atol=2e-3)
    z_few = few(_correlated(12).float())[0]
    off_diagonal = torch.cov(z_few.T, correction=0) - torch.diag(torch.cov(z_few.T, correction=0).diagonal())
    assert off_diagonal.abs().max() > 1e-3  # shrunk: the few rows are not whitened exactly


def test_unknown_standardize_is_named() -> None:
    with pytest.raises(flowforge.FlowforgeError, match=r"unknown standardize 'full'; choose from True, False or 'whiten'"):
        flowforge.MAF(3, standardize="full")


@pytest.mark.parametrize(("rows", "first"), [(300, "whiten"), (3000, True)])
def test_the_cli_whitens_small_tables_only(rows: int, first: object, tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(rows, 3)) @ np.array([[1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [0.0, 0.5, 1.0]])
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    out = tmp_path / "run"
    flags = ["--steps", "4", "--layers", "1", "--hidden", "8", "--threads", "1", "--no-progress"]
    assert main(["train", "--data", str(tmp_path / "x.npy"), *flags, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["kwargs"]["standardize"] == first
    flow = flowforge.load(out)
    assert isinstance(flow.transform[0], Whiten if first == "whiten" else Standardize) and bool(flow.transform[0].is_fitted)
    assert main(["train", "--resume", str(out), "--steps", "6", "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps_run"] == 6


def test_a_column_standardize_leaves_unscaled_is_left_alone_by_w_too() -> None:
    """1e15 +- 100 is constant at float64 rounding (Standardize keeps scale 1): W must not rescale it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64)
    x[:, 2] = 1e15 + 100 * x[:, 0]
    layer = Whiten(3).double()
    layer.fit_(x)
    assert layer.scale[2] == 1 and layer.whitener[2, 2] == 1 and torch.all(layer.whitener[2, :2] == 0)
    z, _ = layer(x)
    torch.testing.assert_close(z[:, 2], x[:, 2] - layer.mean[2])


def test_a_small_table_run_started_with_standardize_resumes_with_it(tmp_path: Path, monkeypatch) -> None:
    """Runs saved before the CLI whitened small tables keep their Standardize when resumed."""
    from flowforge.cli import small_data

    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32))
    flags = ["--layers", "1", "--hidden", "8", "--threads", "1", "--no-progress"]
    with monkeypatch.context() as patch:
        patch.setattr(small_data, "first_layer", lambda rows, features: True)  # the rule before Whiten
        assert main(["train", "--data", str(tmp_path / "x.npy"), "--steps", "4", *flags, "--out", str(tmp_path / "run")]) == 0
    assert main(["train", "--resume", str(tmp_path / "run"), "--steps", "6", "--no-progress"]) == 0
    flow = flowforge.load(tmp_path / "run")
    assert type(flow.transform[0]) is Standardize and json.loads((tmp_path / "run" / "metrics.json").read_text())["steps_run"] == 6


def test_two_rows_give_a_bounded_map_and_half_precision_samples() -> None:
    """Two rows leave Ledoit-Wolf no noise to measure (every u u^T equals R): the eigenvalue floor
    keeps W's gain near 1/sqrt(MIN_EIGENVALUE) instead of 1e6. bf16 flows invert in float32."""
    layer = Whiten(4)
    layer.fit_(torch.randn(2, 4, generator=torch.Generator().manual_seed(0)))
    assert layer.whitener.abs().max() <= 1.01 / Whiten.MIN_EIGENVALUE**0.5
    flow = flowforge.RealNVP(3, 1, (8,), standardize="whiten")
    flow.transform[0].fit_(_correlated(100).float())
    half = flow.to(torch.bfloat16)
    assert half.sample(5).dtype == torch.bfloat16 and torch.isfinite(half.sample(5).float()).all()


@pytest.mark.parametrize("layer", [Standardize, Whiten])
def test_a_far_outlier_does_not_set_the_scale(layer: type) -> None:
    """One 1e6 among 800 normal rows made the column's scale 35 (test NLL 14.3 nats against 4.2)."""
    x = torch.randn(800, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    clean = layer(3)
    clean.fit_(x)
    assert torch.equal(clean.scale, x.std(0, unbiased=False).float())  # nothing that far out: exact statistics
    x[5, 1] = 1e6
    dirty = layer(3)
    dirty.fit_(x)
    torch.testing.assert_close(dirty.scale, clean.scale, rtol=0.1, atol=0)  # clipped at 10 robust std: +6%
    torch.testing.assert_close(dirty.mean, clean.mean, rtol=0, atol=0.05)
    if layer is Whiten:
        torch.testing.assert_close(dirty.whitener, clean.whitener, rtol=0, atol=0.05)
    z = dirty(x.float())[0]
    assert torch.isfinite(z).all() and float(z[5, 1]) > 1e5  # the outlier itself still maps, exactly invertibly
    torch.testing.assert_close(dirty.inverse(z)[0], x.float())


def test_a_column_mostly_of_one_value_is_not_clipped() -> None:
    """A median absolute deviation of 0 (over half the rows equal) gives no bound: plain statistics."""
    x = torch.zeros(500, 2, dtype=torch.float64)
    x[:100, 0] = torch.linspace(1, 50, 100, dtype=torch.float64)
    x[:, 1] = torch.randn(500, dtype=torch.float64)
    layer = Standardize(2)
    layer.fit_(x)
    assert torch.equal(layer.scale, x.std(0, unbiased=False).float())


def test_a_large_second_mode_is_data_not_outliers() -> None:
    """55% of a column in a tight cluster at 0, 45% around 10: clipping the second mode as outliers
    gave a scale of 0.2 instead of 5 and a test NLL of 21.4 against 2.2."""
    gen = torch.Generator().manual_seed(0)
    mode = torch.rand(2000, generator=gen) < 0.55
    column = torch.where(mode, 0.01 * torch.randn(2000, generator=gen), 10 + torch.randn(2000, generator=gen))
    x = torch.stack([column, torch.randn(2000, generator=gen)], 1).double()
    layer = Standardize(2)
    layer.fit_(x)
    assert torch.equal(layer.scale, x.std(0, unbiased=False).float())
    empty = Standardize(2)
    empty.fit_(torch.zeros(0, 2))  # no rows: the identity, as before
    assert torch.equal(empty.scale, torch.ones(2)) and bool(empty.is_fitted)
