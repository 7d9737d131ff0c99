"""fit's moving average of the weights (ema=): the update rule, what is validated and kept, resume."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import flowforge
from flowforge.errors import FlowforgeError
from flowforge.train.ema import ema_start, ema_update, ema_weights


def _data(n: int = 512) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 2, generator=generator) * torch.tensor([2.0, 0.3]) + torch.tensor([1.0, -1.0])


def _flow() -> flowforge.Flow:
    torch.manual_seed(1)
    return flowforge.RealNVP(2, layers=2, hidden=(8,))


def test_update_follows_the_warmed_up_decay():
    module = nn.Linear(2, 1)
    average = ema_start(module)
    start = module.weight.detach().clone()
    expected = start.clone()
    for n in range(1, 40):
        with torch.no_grad():
            module.weight.add_(1.0)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * module.weight.detach()
        ema_update(average, module, 0.9, n)
    torch.testing.assert_close(average["weight"], expected)
    assert set(average) == {"weight", "bias"}


def test_ema_weights_swaps_in_and_back():
    module = nn.Linear(2, 1)
    average = {name: torch.zeros_like(p) for name, p in module.named_parameters()}
    live = module.weight.detach().clone()
    with ema_weights(module, average):
        assert float(module.weight.detach().abs().sum()) == 0
    torch.testing.assert_close(module.weight.detach(), live, rtol=0, atol=0)
    with ema_weights(module, None):
        torch.testing.assert_close(module.weight.detach(), live, rtol=0, atol=0)


def test_fit_without_validation_leaves_the_average_of_its_iterates():
    """The flow ends with the average of the live weights after each step; the live ones go to
    the checkpoint, to continue from."""
    flow, decay, iterates = _flow(), 0.8, []
    saved: dict = {}
    flowforge.fit(flow, _data(), steps=12, batch_size=64, val_fraction=0, ema=decay, progress=False,
                  callback=lambda step, f, h: iterates.append({k: p.detach().clone() for k, p in f.named_parameters()}),
                  on_checkpoint=saved.update)
    name = next(iter(iterates[0]))
    expected = ema_start(_flow())[name]  # the average starts at the initial weights
    for n, weights in enumerate(iterates, start=1):
        d = min(decay, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * weights[name]
    torch.testing.assert_close(dict(flow.named_parameters())[name].detach(), expected)
    torch.testing.assert_close(saved["live_model"][name], iterates[-1][name], rtol=0, atol=0)


def test_validation_measures_and_keeps_the_average():
    flow, val = _flow(), _data(256) + 0.1
    history = flowforge.fit(flow, _data(), val=val, steps=30, batch_size=64, eval_every=10, ema=0.9, progress=False,
                            patience=None)
    # the flow holds the best validated weights: the average's, whose NLL the history recorded
    assert flowforge.mean_nll(flow, val) == pytest.approx(history.best_val_nll, rel=1e-6)
    assert history.best_step > 0


def test_resume_with_an_average_continues_bit_exactly():
    options = {"steps": 16, "batch_size": 64, "ema": 0.9, "progress": False, "eval_every": 4}
    whole = _flow()
    flowforge.fit(whole, _data(), **options)
    first, saved, calls = _flow(), {}, [0]

    def should_stop() -> bool:
        calls[0] += 1
        return calls[0] > 7

    flowforge.fit(first, _data(), should_stop=should_stop, on_checkpoint=saved.update, **options)
    assert saved["history"]["interrupted"] and saved["ema"] is not None
    resumed = _flow()
    flowforge.fit(resumed, _data(), resume=dict(saved), **options)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("ema", [1.0, -0.1, True, "0.9"])
def test_bad_decay_is_a_named_error(ema):
    with pytest.raises(FlowforgeError, match="ema"):
        flowforge.FitOptions(ema=ema)
