"""Reliability (issue 6): training faults lose nothing (non-finite steps are skipped, only finite
weights are saved), fit stopped and resumed is bit-exact, SIGINT/SIGTERM ask once, then interrupt."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import flowforge
from flowforge import Flow, FlowforgeError
from flowforge.cli.config import TrainConfig
from flowforge.cli.guard import RunCheckpoint, StopSignals
from flowforge.cli.table_run import table_metrics as _metrics
from flowforge.cli.training import fit_run
from flowforge.train.checkpoint import read_checkpoint


# -- training faults -----------------------------------------------------------------------------------------
def poison(flow: Flow, bad_calls: set[int]) -> Flow:
    """Make the flow's last layer return a NaN log-det on the chosen training calls (from 0)."""
    calls = [0]

    def hook(layer, inputs, output):
        if not layer.training:
            return output
        calls[0] += 1
        return (output[0], output[1] + float("nan")) if calls[0] - 1 in bad_calls else output

    flow.transform[-1].register_forward_hook(hook)
    return flow


def test_skipped_steps_reach_metrics_and_only_finite_weights_are_saved(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    flow = poison(flowforge.RealNVP(2, layers=2, hidden=(8,)), {3, 7, 8})
    config = TrainConfig(steps=20, batch_size=32, patience=None, progress=False, save_every=5, out=str(tmp_path))
    history, stopped_by = fit_run(flow, x[:250], config, tmp_path)
    assert stopped_by is None and _metrics(flow, history, x[:250], x[250:])["skipped_steps"] == 3
    state = read_checkpoint(tmp_path)["train_state"]
    assert state["step"] == 20 and state["history"]["skipped_steps"] == 3
    with pytest.raises(FlowforgeError, match=r"non-finite weights in the training state \(live_model\)"):
        RunCheckpoint(flowforge.RealNVP(2, layers=1, hidden=(8,)), tmp_path / "other.pt", {})(
            {**state, "live_model": {"w": torch.tensor([float("nan")])}})
    assert not (tmp_path / "other.pt").exists()


def test_python_fit_interrupted_and_resumed_is_bit_exact() -> None:
    x = torch.randn(400, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 0.3])

    def train(stop_at: int | None = None, resume: dict | None = None, weights: dict | None = None):
        torch.manual_seed(0)
        flow, saved, calls = flowforge.RealNVP(2, layers=2, hidden=(8,)), {}, [0]
        if weights is not None:
            flow.load_state_dict(weights)

        def should_stop() -> bool:
            calls[0] += 1
            return stop_at is not None and calls[0] > stop_at

        flowforge.fit(flow, x, steps=40, batch_size=64, eval_every=5, progress=False, resume=resume,
                      on_checkpoint=saved.update, should_stop=should_stop)
        return flow, dict(saved)

    whole, _ = train()
    half, state = train(stop_at=17)
    assert state["step"] == 18 and state["history"]["interrupted"]  # the step under way when asked completes
    resumed, final = train(resume=state, weights=half.state_dict())
    assert "live_model" in final and not final["history"]["interrupted"]
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())


def test_stop_signals_ask_once_then_interrupt() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # Python runs handlers between bytecodes
        assert stop() and stop.received == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGTERM) is before
