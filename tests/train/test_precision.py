"""Mixed precision: conditioners under autocast, the change of variables in float32."""
from __future__ import annotations

import pytest
import torch

import flowforge
from flowforge.nn.precision import set_precision


def _moons(n: int = 1500) -> torch.Tensor:
    return torch.tensor(flowforge.data.make_toy("moons", n, seed=0))


@pytest.mark.parametrize("model", ["realnvp", "maf", "nsf"])
def test_bf16_conditioners_keep_float32_log_densities(model: str) -> None:
    torch.manual_seed(0)
    flow = flowforge.build_model(model, features=2, layers=2, hidden=[32, 32])
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = _moons(64)
    full = flow.log_prob(x)
    set_precision(flow, "bf16")
    mixed = flow.log_prob(x)
    assert mixed.dtype == torch.float32
    assert not torch.equal(mixed, full)  # the conditioners really ran in bf16
    torch.testing.assert_close(mixed, full, rtol=0.05, atol=0.1)
    set_precision(flow, "fp32")
    assert torch.equal(flow.log_prob(x), full)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_fit_in_mixed_precision_learns_and_resets(precision: str) -> None:
    torch.manual_seed(0)
    flow = flowforge.RealNVP(2, layers=2, hidden=(32, 32))
    before = flowforge.mean_nll(flow, _moons(500))
    history = flowforge.fit(flow, _moons(), steps=120, batch_size=128, progress=False, precision=precision)
    assert history.best_val_nll < before - 0.3
    assert all(getattr(m, "autocast_dtype", None) is None for m in flow.modules())


def test_unknown_precision_is_named() -> None:
    with pytest.raises(flowforge.FlowforgeError, match="unknown precision 'int8'"):
        flowforge.fit(flowforge.RealNVP(2, layers=1, hidden=(4,)), _moons(100), steps=1, precision="int8", progress=False)
