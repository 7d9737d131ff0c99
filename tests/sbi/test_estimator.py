"""flowforge.sbi: a flowforge flow through sbi's custom density-estimator interface (skipped without sbi)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import flowforge
from flowforge import FlowforgeError
from flowforge.sbi import FlowforgeEstimator, build_estimator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sbi_posterior.py"


def test_without_sbi_the_builder_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sbi", None)
    with pytest.raises(FlowforgeError, match=r"pip install 'flowforge\[sbi\]'"):
        build_estimator("nsf")


def test_shapes_follow_sbis_contract_and_log_prob_is_the_flows() -> None:
    pytest.importorskip("sbi")
    theta, x = torch.randn(200, 3), torch.randn(200, 4)
    estimator = build_estimator("maf", layers=2, hidden=(16,))(theta, x)
    assert isinstance(estimator, FlowforgeEstimator)
    condition, inputs = x[:5], torch.randn(7, 5, 3)
    log_prob = estimator.log_prob(inputs, condition)
    assert log_prob.shape == (7, 5)
    by_row = estimator.net.log_prob(inputs[2], condition)
    torch.testing.assert_close(log_prob[2], by_row)
    assert estimator.loss(theta[:5], x[:5]).shape == (5,)
    assert estimator.sample(torch.Size((4, 2)), condition).shape == (4, 2, 5, 3)
    # z-scored from the simulations: the flow's first layer holds theta's mean
    torch.testing.assert_close(estimator.net.transform[0].mean, theta.mean(0), atol=1e-5, rtol=0)


def test_npe_trains_the_flow_and_samples_its_posterior(tmp_path, monkeypatch) -> None:
    sbi_inference = pytest.importorskip("sbi.inference")
    monkeypatch.chdir(tmp_path)  # sbi writes its training curves to ./sbi-logs
    prior = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    theta = prior.sample((500,))
    x = theta + 0.1 * torch.randn_like(theta)
    inference = sbi_inference.NPE(prior, density_estimator=build_estimator("nsf", layers=2, hidden=(16,)), show_progress_bars=False)
    estimator = inference.append_simulations(theta, x).train(max_num_epochs=5)
    assert isinstance(estimator, FlowforgeEstimator) and isinstance(estimator.net, flowforge.Flow)
    posterior = inference.build_posterior()
    samples = posterior.sample((100,), x=torch.tensor([[0.5, -0.5]]), show_progress_bars=False)
    assert samples.shape == (100, 2) and torch.isfinite(posterior.log_prob(samples, x=torch.tensor([[0.5, -0.5]]))).all()


def test_the_example_compares_both_estimators_at_one_budget(tmp_path) -> None:
    pytest.importorskip("sbi")
    spec = importlib.util.spec_from_file_location("sbi_posterior", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    summary = example.main(["--estimators", "maf,flowforge-nsf", "--simulations", "300", "--max-epochs", "2", "--observations", "1", "--dim", "2", "--out", str(tmp_path)])
    assert [r["estimator"] for r in summary["results"]] == ["maf", "flowforge-nsf"]
    assert all(r["simulations"] == 300 and 0.4 <= r["c2st_mean"] <= 1.0 for r in summary["results"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary and (tmp_path / "posteriors.png").is_file()
