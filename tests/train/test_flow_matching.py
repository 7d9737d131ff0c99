"""Flow matching as a `fit` objective: the minibatch OT pairing, training, early stopping, resume."""
from __future__ import annotations

import itertools

import pytest
import torch

import flowforge
from flowforge.errors import FlowforgeError
from flowforge.train.flow_matching import flow_matching_loss, ot_pairing

pytest.importorskip("torchdiffeq")


def _data(n: int = 1024) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 2, generator=generator) * torch.tensor([2.0, 0.3]) + torch.tensor([1.0, -1.0])


def test_ot_pairing_is_the_optimal_assignment():
    generator = torch.Generator().manual_seed(1)
    x, z = torch.randn(5, 2, generator=generator), torch.randn(5, 2, generator=generator)
    paired = ot_pairing(x, z)
    cost = lambda zz: float((x - zz).pow(2).sum())
    best = min(cost(z[list(p)]) for p in itertools.permutations(range(5)))
    assert cost(paired) == pytest.approx(best, rel=1e-12)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, z.tolist()))  # a permutation of z


def test_loss_is_zero_mean_regression_target_at_the_identity():
    """At the start (v = 0) the loss is E||z - x||^2 per feature = 1 + E x^2 for standardised x."""
    torch.manual_seed(2)
    flow = flowforge.CNF(2, hidden=(8,))
    x = _data(4096)
    flow.transform[0].fit_(x)
    loss = flow_matching_loss(flow, x).detach()
    assert float(loss) == pytest.approx(2.0, abs=0.15)


@pytest.mark.parametrize("coupling", ["independent", "ot"])
def test_flow_matching_fit_lowers_the_exact_validation_nll(coupling):
    torch.manual_seed(3)
    flow = flowforge.CNF(2, hidden=(32, 32), standardize=False, atol=1e-4, rtol=1e-4)
    history = flowforge.fit(flow, _data(), steps=150, batch_size=128, lr=5e-3, objective="flow-matching", coupling=coupling,
                            eval_every=50, progress=False, patience=None)
    # a Gaussian data set: flow matching learns the affine map; the exact NLL falls from N(0, I)'s
    assert history.best_val_nll < history.val_nll[0] - 0.5
    assert history.best_step > 0 and not flow.training


def test_resume_continues_bit_exactly():
    options = {"steps": 20, "batch_size": 64, "objective": "flow-matching", "progress": False, "eval_every": 5}

    def new_flow():
        torch.manual_seed(4)
        return flowforge.CNF(2, hidden=(8,), solver="rk4", steps=4)

    whole = new_flow()
    flowforge.fit(whole, _data(512), **options)
    first, saved, calls = new_flow(), {}, [0]

    def should_stop() -> bool:
        calls[0] += 1
        return calls[0] > 9

    flowforge.fit(first, _data(512), should_stop=should_stop, on_checkpoint=saved.update, **options)
    state = dict(saved)
    assert state["step"] == 10 and state["history"]["interrupted"]
    resumed = new_flow()
    resumed.load_state_dict(first.state_dict())
    flowforge.fit(resumed, _data(512), resume=state, **options)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_named_errors():
    with pytest.raises(FlowforgeError, match="coupling"):
        flowforge.FitOptions(coupling="sinkhorn")
    with pytest.raises(FlowforgeError, match="one ODE block"):
        flowforge.fit(flowforge.CNF(2, layers=2), _data(64), steps=1, objective="flow-matching", progress=False)
    with pytest.raises(FlowforgeError, match="flow-matching"):
        flowforge.fit(flowforge.CNF(2), _data(64), steps=1, coupling="ot", progress=False)


@pytest.mark.parametrize("time_power, mean", [(1.0, 1 / 2), (2.0, 1 / 3)])
def test_times_are_drawn_as_a_power_of_a_uniform(time_power, mean):
    """t = u^p has mean 1 / (p + 1); 20,000 draws put it within 0.01 (5 standard errors)."""
    torch.manual_seed(5)
    flow = flowforge.CNF(2, hidden=(8,))
    flow.transform[0].fit_(_data())
    times = []
    flow.odes()[0].field.register_forward_hook(lambda module, args, out: times.append(args[0].detach()))
    flow_matching_loss(flow, _data(20000), time_power=time_power)
    t = times[0]
    assert t.shape == (20000,) and bool(((t >= 0) & (t <= 1)).all())
    assert float(t.mean()) == pytest.approx(mean, abs=0.01)


def test_time_power_errors():
    with pytest.raises(FlowforgeError, match="time_power"):
        flowforge.FitOptions(time_power=0)
    with pytest.raises(FlowforgeError, match="flow-matching"):
        flowforge.fit(flowforge.CNF(2), _data(64), steps=1, time_power=2.0, progress=False)
