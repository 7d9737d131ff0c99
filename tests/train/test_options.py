"""FitOptions: fit's options as one frozen dataclass, also accepted as fit's keyword arguments."""
from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

import flowforge
from flowforge import FitOptions, FlowforgeError
from flowforge.train.options import default_eval_every


def _run(**kwargs) -> tuple[dict[str, torch.Tensor], flowforge.History]:
    torch.manual_seed(0)
    flow = flowforge.RealNVP(2, layers=2, hidden=(16,))
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 0.3])
    history = flowforge.fit(flow, x, **kwargs)
    return flow.state_dict(), history


def test_options_object_and_keywords_train_alike() -> None:
    keywords = {"steps": 20, "batch_size": 32, "lr": 3e-3, "eval_every": 5, "seed": 2, "progress": False}
    weights, history = _run(**keywords)
    for kwargs in ({"options": FitOptions(**keywords)}, {"options": FitOptions(steps=20, seed=7), **keywords}):
        again_weights, again = _run(**kwargs)
        assert all(torch.equal(weights[k], again_weights[k]) for k in weights)
        assert again.train_nll == history.train_nll and again.val_nll == history.val_nll


def test_unknown_option_is_named() -> None:
    with pytest.raises(FlowforgeError, match="unknown option 'step'.*steps"):
        _run(step=10, progress=False)
    with pytest.raises(FlowforgeError, match="options must be a FitOptions, got dict"):
        _run(options={"steps": 10})


@pytest.mark.parametrize("options", [{"steps": 0}, {"batch_size": 2.5}, {"lr": -1.0}, {"schedule": "exponential"}], ids=str)
def test_bad_options_fail_at_construction_naming_the_field(options: dict) -> None:
    name = next(iter(options))
    with pytest.raises(FlowforgeError, match=name):
        FitOptions(**options)


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FitOptions().steps = 5


def test_data_dependent_defaults() -> None:
    resolved = FitOptions(epochs=3, batch_size=100).for_data(rows_given=1000, train_rows=900)
    assert (resolved.steps, resolved.warmup, resolved.eval_every) == (27, 1, default_eval_every(27, 1000, 100))
    assert FitOptions().for_data(1000, 900).steps == 2000
    assert FitOptions(steps=500, warmup=0, eval_every=7).for_data(1000, 900) == FitOptions(steps=500, warmup=0, eval_every=7)


def test_fit_takes_at_most_twelve_parameters() -> None:
    assert len(inspect.signature(flowforge.fit).parameters) <= 12
