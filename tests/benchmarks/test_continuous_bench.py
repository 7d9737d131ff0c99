"""Smoke test of benchmarks/continuous.py's flowforge runs: a budget run pauses at each point of
its curve (fit stops, the flow is measured, fit resumes), and the long run reports both phases."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("torchdiffeq")
SCRIPT_DIR = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture
def continuous(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT_DIR))
    import continuous

    monkeypatch.setattr(continuous, "HIDDEN", (16, 16))
    return continuous


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(600, 2, generator=generator) * torch.tensor([1.0, 0.3])
    return x[:500], x[500:]


def test_budget_run_measures_its_curve_and_resumes(continuous):
    train, test = _data()
    row = continuous.run_flowforge(train, test, 0.15, "flow-matching", **continuous.FM_OPTIONS)
    times = [t for t, _ in row["curve"]]
    assert len(times) == len(continuous.CURVE) and times == sorted(times) and times[-1] >= 0.15
    assert row["test_nll"] == row["curve"][-1][1] and row["sample_nfe"] >= 2


def test_long_run_reports_flow_matching_and_finetuning(continuous, monkeypatch):
    monkeypatch.setattr(continuous, "LONG_BATCH", 64)
    monkeypatch.setattr(continuous, "FINETUNE_BATCH", 64)
    train, test = _data()
    row = continuous.run_long(train, test, steps=4, finetune=2)
    assert row["steps"] == 4 and row["finetune_steps"] == 2 and len(row["curve"]) == 2
    assert row["test_nll"] == row["curve"][-1][1] and row["flow_matching_test_nll"] == row["curve"][0][1]
