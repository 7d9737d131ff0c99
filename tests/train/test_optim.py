"""fit's optimizer: fused Adam where torch has the kernel, the default Adam otherwise."""
from __future__ import annotations

import torch

import flowforge
from flowforge.train import optim


def test_adam_is_fused_on_this_torch() -> None:
    optimizer = optim.adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    assert optimizer.param_groups[0]["fused"] is True


def test_adam_falls_back_where_fused_is_refused(monkeypatch) -> None:
    real = torch.optim.Adam

    def refusing(params, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", refusing)
    optimizer = optim.adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3, weight_decay=0.1)
    assert not optimizer.param_groups[0].get("fused")
    assert optimizer.param_groups[0]["weight_decay"] == 0.1


def test_fused_adam_takes_the_same_steps_as_the_default() -> None:
    """Same update rule: after 20 steps the weights agree to float32 rounding."""
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    b.load_state_dict(a.state_dict())
    fused, plain = optim.adam(a.parameters(), lr=1e-2), torch.optim.Adam(b.parameters(), lr=1e-2)
    x = torch.randn(32, 4)
    for model, opt in ((a, fused), (b, plain)):
        for _ in range(20):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    torch.testing.assert_close(a.weight, b.weight, rtol=1e-5, atol=1e-6)
    assert not torch.equal(a.weight, torch.nn.Linear(4, 4).weight)


def test_fit_uses_the_fused_optimizer_and_resumes_with_it() -> None:
    flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
    states = []
    flowforge.fit(flow, torch.randn(256, 2), steps=4, batch_size=64, progress=False, checkpoint_every=2, on_checkpoint=states.append)
    assert states[-1]["optimizer"]["param_groups"][0]["fused"] is True
