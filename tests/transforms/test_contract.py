"""The Transform contract, checked on every case in cases.py (float64, eval mode, off-identity)."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torch.testing import assert_close

from flowforge import FlowforgeError
from flowforge.transforms import Inverse, Transform

from .cases import CASES, autograd_logabsdet, conditional_cases, make, randomized


def prepared(name: str, dtype: torch.dtype = torch.float64) -> tuple[Transform, Tensor, Tensor | None]:
    t, x, context = make(name)
    t = randomized(t).to(dtype).eval()
    return t, x.to(dtype), None if context is None else context.to(dtype)


def directions(t: Transform) -> dict[str, Transform]:
    return {"forward": t.forward, "inverse": t.inverse}


@pytest.mark.parametrize("name", CASES)
def test_logabsdet_matches_autograd(name: str) -> None:
    t, x, context = prepared(name)
    z, logabsdet = t(x, context)
    assert_close(logabsdet, autograd_logabsdet(lambda v, *c: t(v, *c)[0], x, context))
    _, inverse_logabsdet = t.inverse(z, context)
    assert_close(inverse_logabsdet, autograd_logabsdet(lambda v, *c: t.inverse(v, *c)[0], z, context))


@pytest.mark.parametrize("name", CASES)
def test_round_trip_both_ways(name: str) -> None:
    t, x, context = prepared(name)
    z = t(x, context)[0]
    assert not torch.allclose(z, x), "the case should not be the identity"
    assert_close(t.inverse(z, context)[0], x)
    z = torch.randn_like(x)
    assert_close(t(t.inverse(z, context)[0], context)[0], z)


@pytest.mark.parametrize("name", CASES)
def test_logabsdets_of_both_directions_sum_to_zero(name: str) -> None:
    t, x, context = prepared(name)
    z, logabsdet = t(x, context)
    assert_close(logabsdet + t.inverse(z, context)[1], torch.zeros_like(logabsdet))
    x_new, inverse_logabsdet = t.inverse(torch.randn_like(x), context)
    assert_close(inverse_logabsdet + t(x_new, context)[1], torch.zeros_like(logabsdet))


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", CASES)
def test_shape_dtype_device_preserved(name: str, direction: str) -> None:
    t, x, context = prepared(name)
    y, logabsdet = directions(t)[direction](x, context)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert logabsdet.shape == (x.shape[0],) and logabsdet.dtype == x.dtype and logabsdet.device == x.device


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", CASES)
def test_batch_of_one_matches_the_batch(name: str, direction: str) -> None:
    t, x, context = prepared(name)
    apply = directions(t)[direction]
    y, logabsdet = apply(x, context)
    for i in range(x.shape[0]):
        yi, logabsdet_i = apply(x[i : i + 1], None if context is None else context[i : i + 1])
        assert yi.shape == x[i : i + 1].shape and logabsdet_i.shape == (1,)
        assert_close(yi[0], y[i])
        assert_close(logabsdet_i[0], logabsdet[i])


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", CASES)
def test_in_eval_mode_no_sample_affects_another(name: str, direction: str) -> None:
    t, x, context = prepared(name)
    apply = directions(t)[direction]
    y, logabsdet = apply(x, context)
    changed = x.clone()
    changed[0] = 10 * torch.randn_like(x[0])
    y_changed, logabsdet_changed = apply(changed, context)
    assert not torch.allclose(y_changed[0], y[0])
    assert_close(y_changed[1:], y[1:])
    assert_close(logabsdet_changed[1:], logabsdet[1:])
    order = torch.randperm(x.shape[0])
    y_shuffled, logabsdet_shuffled = apply(x[order], None if context is None else context[order])
    assert_close(y_shuffled, y[order])
    assert_close(logabsdet_shuffled, logabsdet[order])


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", CASES)
def test_gradients_reach_every_parameter(name: str, direction: str) -> None:
    t, x, context = prepared(name)
    x.requires_grad_(True)
    y, logabsdet = directions(t)[direction](x, context)
    ((y * torch.randn_like(y)).sum() + logabsdet.sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in t.named_parameters():
        assert p.grad is not None, f"{pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", CASES)
def test_gradients_are_correct(name: str, direction: str) -> None:
    """Finite differences agree with autograd for x, the context and every parameter (fast mode:
    random directions), which checks hand-written backward passes."""
    t, x, context = prepared(name)
    module = t if direction == "forward" else Inverse(t)
    names, params = [n for n, _ in module.named_parameters()], [p for _, p in module.named_parameters()]

    def run(v: Tensor, c: Tensor | None, *values: Tensor) -> tuple[Tensor, Tensor]:
        return torch.func.functional_call(module, dict(zip(names, values)), (v, c))

    leaf = lambda v: None if v is None else v.detach().clone().requires_grad_(True)
    inputs = (leaf(x), leaf(context), *map(leaf, params))
    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", CASES)
def test_grad_mode_does_not_change_the_result(name: str, direction: str) -> None:
    t, x, context = prepared(name)
    y, logabsdet = directions(t)[direction](x, context)
    with torch.no_grad():
        y_no_grad, logabsdet_no_grad = directions(t)[direction](x, context)
    assert_close(y_no_grad, y)
    assert_close(logabsdet_no_grad, logabsdet)


@pytest.mark.parametrize("name", CASES)
def test_float32_smoke(name: str) -> None:
    t, x, context = prepared(name, torch.float32)
    z, logabsdet = t(x, context)
    assert z.dtype == logabsdet.dtype == torch.float32
    assert torch.isfinite(z).all() and torch.isfinite(logabsdet).all()
    x_back, inverse_logabsdet = t.inverse(z, context)
    assert_close(x_back, x, rtol=1e-4, atol=1e-4)
    assert_close(logabsdet + inverse_logabsdet, torch.zeros_like(logabsdet), rtol=0, atol=1e-4)


def test_some_case_is_conditional() -> None:
    assert conditional_cases(), "the contract's context checks need at least one conditional case"


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", conditional_cases())
def test_context_changes_the_output(name: str, direction: str) -> None:
    t, x, context = prepared(name)
    apply = directions(t)[direction]
    y, logabsdet = apply(x, context)
    y_other, logabsdet_other = apply(x, context + torch.randn_like(context))
    assert not torch.allclose(y_other, y)
    assert not torch.allclose(logabsdet_other, logabsdet)


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", conditional_cases())
def test_wrong_or_missing_context_raises(name: str, direction: str) -> None:
    t, x, context = prepared(name)
    apply = directions(t)[direction]
    bad = {
        "missing": None,
        "too few features": context[:, :-1],
        "too many features": torch.cat([context, context[:, :1]], 1),
        "too few rows": context[:-1],
        "flat": context.flatten(),
    }
    for what, c in bad.items():
        with pytest.raises(FlowforgeError, match="context"):
            apply(x, c)
            pytest.fail(f"a {what} context was accepted")
