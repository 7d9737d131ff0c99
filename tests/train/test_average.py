"""WeightAverage: the exponential moving average of a module's weights that fit_target keeps."""
import torch
from torch import nn

from flowforge.train.ema import WeightAverage


def test_the_average_follows_its_formula_and_leaves_buffers_to_the_module() -> None:
    module = nn.BatchNorm1d(3)  # parameters weight and bias, buffers running_mean/var and a count
    average = WeightAverage(module, decay=0.9)
    expected = {name: p.detach().clone() for name, p in module.named_parameters()}
    for t in range(1, 31):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn_like(p))
            module.running_mean.fill_(float(t))
        average.update(module)
        decay = min(0.9, (1 + t) / (10 + t))  # the ramp, then the decay itself from t = 80 / 9
        for name, p in module.named_parameters():
            expected[name] = decay * expected[name] + (1 - decay) * p.detach()
    state = average.module_state(module)
    for name, value in expected.items():
        assert torch.allclose(state[name], value, rtol=1e-6, atol=1e-6)
    assert torch.equal(state["running_mean"], module.running_mean) and set(state) == set(module.state_dict())


def test_a_saved_average_continues_exactly() -> None:
    module = nn.Linear(2, 2)
    whole, part = WeightAverage(module, 0.95), WeightAverage(module, 0.95)
    for step in range(10):
        with torch.no_grad():
            module.weight.mul_(1.1).add_(0.01 * step)
        whole.update(module)
        if step < 5:
            part.update(module)
        elif step == 5:
            part = WeightAverage(module, 0.95, saved=part.to_dict())
            part.update(module)
        else:
            part.update(module)
    assert all(torch.equal(a, b) for a, b in zip(whole.module_state(module).values(), part.module_state(module).values()))
