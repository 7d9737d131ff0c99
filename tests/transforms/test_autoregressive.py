"""MADE's autoregressive property, MaskedAutoregressive and Coupling beyond the shared contract.

The contract (round trip, log|det| against autograd in float64, context, gradients) runs on these
layers through tests/transforms/cases.py; here: masks, orders, identity init, pass counts.
"""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from flowforge import FlowforgeError
from flowforge.nn import MADE, MLP
from flowforge.transforms import AffineMap, Coupling, Inverse, MaskedAutoregressive, SplineMap, half_mask

from .cases import randomized


def jacobian(f, x: torch.Tensor) -> torch.Tensor:
    """d f(x)[..] / d x for one sample x (D,); f maps (1, D) to (1, ...)."""
    return torch.autograd.functional.jacobian(lambda v: f(v[None])[0], x)


@pytest.mark.parametrize("features", [1, 2, 5])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("context_features", [0, 3])
def test_made_output_i_depends_on_exactly_the_inputs_before_i(features: int, residual: bool, context_features: int) -> None:
    # tanh: no dead units, so every connection the masks allow shows up in the Jacobian
    net = randomized(MADE(features, 3, (12, 12, 12), context_features, "tanh", residual)).double()
    context = torch.randn(1, context_features, dtype=torch.float64) if context_features else None
    J = jacobian(lambda v: net(v, context), torch.randn(features, dtype=torch.float64))  # (D, P, D)
    depends = J.abs().sum(1) > 0  # [i, j]: output i depends on x_j
    assert torch.equal(depends, torch.ones(features, features).tril(-1).bool())


def test_made_passes_the_context_to_every_output_the_first_included() -> None:
    net = randomized(MADE(4, 2, (16, 16), context_features=3, activation="tanh")).double()
    x = torch.randn(1, 4, dtype=torch.float64)
    J = jacobian(lambda c: net(x, c), torch.randn(3, dtype=torch.float64))  # (D, P, C)
    assert (J.abs().sum((1, 2)) > 0).all()


def test_made_starts_at_zero_and_rejects_bad_options() -> None:
    assert torch.equal(MADE(3, 2, (8,))(torch.randn(4, 3)), torch.zeros(4, 3, 2))
    with pytest.raises(FlowforgeError, match="hidden"):
        MADE(3, 2, (8, 16), residual=True)
    with pytest.raises(FlowforgeError, match="activation"):
        MADE(3, 2, (8,), activation="sigmoid-ish")


@pytest.mark.parametrize("map_fn", [AffineMap(), SplineMap(bins=4)], ids=["affine", "spline"])
def test_masked_autoregressive_jacobian_is_lower_triangular(map_fn) -> None:
    layer = randomized(MaskedAutoregressive(4, map_fn, (16, 16), activation="tanh")).double()
    x = torch.randn(4, dtype=torch.float64)
    J = jacobian(lambda v: layer(v)[0], x)
    assert torch.equal(J.triu(1), torch.zeros_like(J))
    below = torch.ones(4, 4).tril(-1).bool()
    assert (J.diagonal() > 0).all() and (J[below] != 0).all()
    J_inverse = jacobian(lambda v: layer.inverse(v)[0], layer(x[None])[0][0])
    assert torch.equal(J_inverse.triu(1), torch.zeros_like(J_inverse))


@pytest.mark.parametrize("map_fn", [AffineMap(), SplineMap(bins=4)], ids=["affine", "spline"])
def test_new_layers_start_at_the_identity(map_fn) -> None:
    x, context = torch.randn(6, 4) * 2, torch.randn(6, 3)
    layers = [MaskedAutoregressive(4, map_fn, (8,), context_features=3), Coupling(half_mask(4), lambda i, o: MLP(i, o, (8,), 3), map_fn)]
    for layer in layers:
        for direction in (layer.forward, layer.inverse):
            y, logabsdet = direction(x, context)
            assert_close(y, x)
            assert_close(logabsdet, torch.zeros(6))


def count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_maf_density_takes_one_pass_and_sampling_d_passes_iaf_the_reverse() -> None:
    maf = MaskedAutoregressive(5, AffineMap(), (8,))
    calls = count_calls(maf.net)
    z, _ = maf(torch.randn(3, 5))
    assert calls[0] == 1
    maf.inverse(z)
    assert calls[0] == 1 + 5
    iaf = Inverse(MaskedAutoregressive(5, AffineMap(), (8,)))
    calls = count_calls(iaf.base_transform.net)
    iaf.inverse(torch.randn(3, 5))
    assert calls[0] == 1


def test_coupling_keeps_the_masked_features_and_checks_its_mask() -> None:
    layer = randomized(Coupling(half_mask(5), lambda i, o: MLP(i, o, (8,)), SplineMap(bins=4)))
    x = torch.randn(7, 5)
    z, _ = layer(x)
    assert torch.equal(z[:, :3], x[:, :3]) and not torch.allclose(z[:, 3:], x[:, 3:])
    with pytest.raises(FlowforgeError, match="mask"):
        Coupling(torch.ones(4), lambda i, o: MLP(i, o, (8,)), SplineMap())


def test_affine_map_log_scale_is_soft_clamped() -> None:
    x = torch.ones(2, 3)
    params = torch.stack([torch.full((2, 3), 100.0), torch.zeros(2, 3)], dim=-1)
    z, logabsdet = AffineMap(bound=3.0)(x, params)
    assert torch.isfinite(z).all() and (logabsdet <= 9.0).all()
