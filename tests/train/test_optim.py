"""fit's optimizer: fused Adam where torch has the kernel, the default Adam otherwise."""
from __future__ import annotations

import math

import pytest
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


def _with_grads(*shapes: tuple[int, ...], scale: float = 1.0, dtype=torch.float32) -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.zeros(shape, dtype=dtype)) for shape in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, dtype=dtype) * scale
    return params


@pytest.mark.parametrize("scale", [1e-3, 1.0, 100.0])
def test_clip_grad_norm_agrees_with_torch(scale: float) -> None:
    ours, theirs = _with_grads((7, 5), (5,), (3, 4, 2), scale=scale), _with_grads((7, 5), (5,), (3, 4, 2), scale=scale)
    norm = optim.clip_grad_norm(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert torch.equal(norm, expected)  # bit for bit: fit's runs do not change with this function
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, theirs))
    after = torch.sqrt(sum((p.grad**2).sum() for p in ours))
    if float(norm) > 1.0:
        torch.testing.assert_close(after, torch.tensor(1.0), rtol=1e-5, atol=0)
    else:
        torch.testing.assert_close(after, norm)


def test_clip_grad_norm_leaves_gradients_within_the_bound_untouched() -> None:
    params = _with_grads((50, 50), (50,))
    before = [p.grad.clone() for p in params]
    norm = optim.clip_grad_norm(params, 1e6)
    assert 0 < float(norm) < 1e6
    assert all(torch.equal(p.grad, b) for p, b in zip(params, before))  # bitwise: no multiplication by 1


def test_clip_grad_norm_reports_non_finite_gradients() -> None:
    params = _with_grads((4, 3), (3,))
    params[1].grad[0] = float("nan")
    assert optim.clip_grad_norm(params, 1.0).isnan()
    params[1].grad[0] = float("inf")
    assert optim.clip_grad_norm(params, None).isinf()


def test_clip_grad_norm_with_mixed_dtypes_and_no_gradients() -> None:
    params = _with_grads((6, 2)) + _with_grads((3,), dtype=torch.float64) + [torch.nn.Parameter(torch.zeros(2))]
    expected = torch.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params[:2]) * torch.ones((), dtype=torch.float64))
    torch.testing.assert_close(optim.clip_grad_norm(params, None), expected)
    assert float(optim.clip_grad_norm([torch.nn.Parameter(torch.zeros(2))], 1.0)) == 0.0
    optim.clip_grad_norm(params, 1e-3)
    assert all(p.grad.dtype == d for p, d in zip(params[:2], (torch.float32, torch.float64)))
    assert torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params[:2])) <= 1e-3 * (1 + 1e-5)


def test_finite_gradients_whose_norm_overflows_float32_are_clipped_not_reported_non_finite() -> None:
    """A 1e12 in a 400-row table: finite gradients of ~1e20, whose float32 squares overflow, made
    fit call every step non-finite and stop as 'diverged' at step 2."""
    params = _with_grads((64, 64), (64,), scale=1e20)
    norm = optim.clip_grad_norm(params, 10.0)
    assert torch.isfinite(norm) and float(norm) > 1e21
    after = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params))
    assert float(after) == pytest.approx(10.0, rel=1e-4)
    params[0].grad[0, 0] = float("inf")  # a gradient that is itself infinite is still reported
    assert not torch.isfinite(optim.clip_grad_norm(params, 10.0))


def test_a_far_outlier_in_a_small_table_trains() -> None:
    x = torch.randn(400, 4, generator=torch.Generator().manual_seed(1))
    x[77, 1] = 1e12
    flow = flowforge.RealNVP(4, layers=2, hidden=(16,))
    history = flowforge.fit(flow, x, steps=30, batch_size=512, progress=False)
    assert history.skipped_steps == 0 and all(math.isfinite(v) for v in history.val_nll)
