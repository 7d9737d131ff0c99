"""TableFlow.fit(checkpoint=..., resume=True): a fit stopped part way and resumed ends where a fit
that never stopped ends; the checkpoint holds no pickle and refuses other rows or options."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from flowforge.errors import FlowforgeError
from flowforge.tables import TableFlow
from flowforge.train.checkpoint import read_checkpoint

from .frames import mixed

OPTIONS = {"steps": 40, "layers": 1, "hidden": (8,), "seed": 0, "patience": 10**6}
# float32 weights after the same operations on one machine; the tolerance allows a few units in the last
# place of each of ~40 Adam updates, relative to the log-densities' scale (tens of nats)
RTOL = 50 * float(np.finfo(np.float32).eps) * OPTIONS["steps"]


def _fit(df, **kwargs) -> TableFlow:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TableFlow(**OPTIONS).fit(df, **kwargs)


def _stop_after(steps: int):
    calls = itertools.count(1)
    return lambda: next(calls) >= steps


@pytest.fixture(scope="module")
def table():
    return mixed(90, seed=3)


@pytest.fixture(scope="module")
def straight(table) -> TableFlow:
    return _fit(table)


def test_a_fit_stopped_and_resumed_ends_as_one_never_stopped(table, straight, tmp_path) -> None:
    path = tmp_path / "state.pt"
    stopped = _fit(table, checkpoint=path, save_every=7, should_stop=_stop_after(15))
    assert stopped.metrics["interrupted_at_step"] == 15
    with pytest.raises(FlowforgeError, match="stopped at step 15.*resume=True"):
        stopped.sample(3)
    assert read_checkpoint(path)["train_state"]["step"] == 15
    resumed = _fit(table, checkpoint=path, resume=True)
    assert "interrupted_at_step" not in resumed.metrics
    assert resumed.history.step == straight.history.step  # every step run once, none lost
    expected, got = straight.log_prob(table), resumed.log_prob(table)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL)
    for name, tensor in straight.flow.state_dict().items():
        torch.testing.assert_close(resumed.flow.state_dict()[name], tensor, rtol=RTOL, atol=RTOL)
    assert resumed.metrics["categorical"] == straight.metrics["categorical"]


def test_a_finished_fit_trains_on_from_its_checkpoint_with_more_steps(table, tmp_path) -> None:
    path = tmp_path / "state.pt"
    _fit(table, checkpoint=path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        longer = TableFlow(**{**OPTIONS, "steps": 60}).fit(table, checkpoint=path, resume=True)
    assert len(longer.history.step) == 60 and read_checkpoint(path)["train_state"]["step"] == 60


def test_resuming_other_rows_or_options_is_refused_by_name(table, tmp_path) -> None:
    path = tmp_path / "state.pt"
    _fit(table, checkpoint=path, should_stop=_stop_after(5))
    with pytest.raises(FlowforgeError, match="other rows"):
        _fit(table.iloc[1:], checkpoint=path, resume=True)
    with pytest.raises(FlowforgeError, match="hidden was \\[8\\], now \\[16\\]"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TableFlow(**{**OPTIONS, "hidden": (16,)}).fit(table, checkpoint=path, resume=True)
    with pytest.raises(FlowforgeError, match="no checkpoint at"):
        _fit(table, checkpoint=tmp_path / "absent.pt", resume=True)
    with pytest.raises(FlowforgeError, match="need checkpoint=PATH"):
        _fit(table, resume=True)
