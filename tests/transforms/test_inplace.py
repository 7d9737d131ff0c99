"""inplace.py: a no-grad Compose pass runs on one buffer; it must equal the ordinary pass exactly
as far as the maths goes, never write its input, and allocate one batch-sized tensor in all."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import flowforge
from flowforge.nn import MLP
from flowforge.transforms import ActNorm, AdditiveCoupling, AffineCoupling, Compose, Permutation, Reverse, Standardize
from flowforge.transforms.coupling import alternating_mask, half_mask


def _layer(kind: str, d: int, context: int):
    net = lambda i, o: MLP(i, o, (16,), context)
    if kind == "affine":
        return AffineCoupling(half_mask(d), net)
    if kind == "affine-last":  # keeps the last half: not a [kept | transformed] split, no in-place step
        return AffineCoupling(half_mask(d, first=False), net)
    if kind == "additive":
        return AdditiveCoupling(half_mask(d), net)
    if kind == "alternating":
        return AffineCoupling(alternating_mask(d), net)
    if kind == "standardize":
        layer = Standardize(d)
        layer.fit_(torch.randn(50, d, dtype=torch.float64) * torch.linspace(0.5, 3, d, dtype=torch.float64) + 2)
        return layer
    if kind == "actnorm":
        return ActNorm(d)
    if kind == "permutation":
        return Permutation(d, seed=d)
    return Reverse()


KINDS = ["affine", "affine-last", "additive", "alternating", "standardize", "actnorm", "permutation", "reverse"]


def _randomized(compose: Compose) -> Compose:
    compose = compose.double()
    with torch.no_grad():
        for p in compose.parameters():
            p.normal_(0, 0.3)
    return compose


def _check_chain(kinds: list[str], d: int, context: int) -> None:
    torch.manual_seed(len(kinds) * 10 + d)
    compose = _randomized(Compose([_layer(kind, d, context) for kind in kinds]))
    x = torch.randn(37, d, dtype=torch.float64)
    c = torch.randn(37, context, dtype=torch.float64) if context else None
    z_plain, ld_plain = compose(x, c)  # autograd on (parameters require grad): the ordinary loop
    x_plain, ld_inv_plain = compose.inverse(z_plain.detach(), c)
    x_before, z_before = x.clone(), z_plain.detach().clone()
    with torch.no_grad():
        z, ld = compose(x, c)
        x_back, ld_inv = compose.inverse(z_before, c)
    torch.testing.assert_close(z, z_plain.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ld, ld_plain.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_back, x_plain.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ld_inv, ld_inv_plain.detach(), rtol=1e-12, atol=1e-12)
    assert torch.equal(x, x_before) and torch.equal(z_before, z_plain.detach())  # inputs never written
    torch.testing.assert_close(x_back, x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "kinds",
    [
        ["reverse", "standardize", "affine"],  # Standardize on reversed columns
        ["affine", "reverse", "affine", "reverse"],  # a coupling on reversed columns; ends reversed
        ["reverse", "actnorm", "affine", "reverse", "permutation"],  # flips materialised before other layers
        ["standardize", "affine", "reverse", "additive", "reverse", "reverse", "affine"],
    ],
)
@pytest.mark.parametrize("context", [0, 2])
def test_no_grad_pass_equals_the_ordinary_pass(kinds: list[str], context: int) -> None:
    _check_chain(kinds, 5, context)


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=7),
    d=st.integers(2, 7),
    context=st.sampled_from([0, 2]),
)
def test_no_grad_pass_equals_the_ordinary_pass_for_any_chain(kinds: list[str], d: int, context: int) -> None:
    """Any mix of layers with and without an in-place step, any width (odd too), with a context."""
    _check_chain(kinds, d, context)


class _BatchAllocations(TorchDispatchMode):
    """Records the ops that make a new tensor of the batch's (rows, features) shape."""

    def __init__(self, shape: torch.Size) -> None:
        super().__init__()
        self.shape, self.ops = shape, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func._schema.name
        made = not name.endswith("_") and "out" not in (kwargs or {}) and name not in ("aten::slice", "aten::view")
        if made and isinstance(out, torch.Tensor) and out.shape == self.shape:
            self.ops.append(name)
        return out


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_a_real_nvp_pass_copies_the_batch_once_and_flips_it_once(direction: str) -> None:
    flow = flowforge.RealNVP(7, layers=8, hidden=(16, 16))  # the conditioner's output is (50, 6)
    x = torch.randn(50, 7)
    with torch.no_grad(), _BatchAllocations(x.shape) as seen:
        getattr(flow.transform, direction)(x)
    # Standardize, 8 couplings and 7 reverses: one copy in, one flip out (the odd reverse), nothing else
    assert seen.ops == ["aten::clone", "aten::flip"]


def test_a_compose_ending_on_a_reverse_flips_once_at_the_end() -> None:
    compose = _randomized(Compose([_layer("affine", 5, 0), Reverse()]))
    x = torch.randn(20, 5, dtype=torch.float64)
    with torch.no_grad():
        with _BatchAllocations(x.shape) as seen:
            z, _ = compose(x)
        alone = compose[0](x)[0]  # the coupling by itself: the same kernel on a copy of x
    assert seen.ops == ["aten::clone", "aten::flip"]
    assert torch.equal(z, alone.flip(1))
