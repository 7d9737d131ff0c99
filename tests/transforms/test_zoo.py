"""The zoo's layers beyond the shared contract: stated tolerances of iterative inverses, the
residual log-det estimator against the exact log-det, one-way (VI) layers, angles."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from flowforge import FlowforgeError
from flowforge.transforms import BlockNeuralAutoregressive, DeepSigmoidMap, ResidualBlock, UnconstrainedMonotoneMap, WrapAngles
from flowforge.transforms.monotone import bisect, default_tolerance

from .cases import ONE_WAY, autograd_logabsdet, data, made, randomized


def test_bisect_meets_its_tolerance() -> None:
    y = torch.linspace(-20, 20, 101, dtype=torch.float64)
    f = lambda x: x**3 + x  # increasing; root bracketed by [-30, 30]
    for tol in (1e-2, 1e-6, 1e-10):
        x = bisect(f, y, torch.full_like(y, -30.0), torch.full_like(y, 30.0), tol)
        exact = torch.tensor([_cubic_root(float(v)) for v in y], dtype=torch.float64)
        assert (x - exact).abs().max() <= tol


def _cubic_root(y: float) -> float:
    lo, hi = -30.0, 30.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid**3 + mid < y else (lo, mid)
    return (lo + hi) / 2


def test_default_tolerance_is_sqrt_epsilon() -> None:
    assert default_tolerance(torch.float32) == pytest.approx(3.45e-4, rel=0.01)
    assert default_tolerance(torch.float64) == pytest.approx(1.49e-8, rel=0.01)


@pytest.mark.parametrize(("map_fn", "far"), [(DeepSigmoidMap(units=4, tol=1e-3), 30.0), (UnconstrainedMonotoneMap(units=4, tol=1e-3), 4.0)],
                         ids=["naf", "unaf"])
def test_monotone_inverse_within_tolerance(map_fn, far: float) -> None:
    """Bisection to tol, then the Newton step: the round trip is within the stated tol, also far
    out where the sigmoids saturate (float64: there a float32 map can be too flat to invert).
    UNAF's quadrature (32 nodes) is accurate, hence monotone, over the standardised range only."""
    torch.manual_seed(0)
    layer = randomized(made(map_fn, 3)).double().eval()
    x = torch.cat([data(64, 3), far * torch.randn(16, 3)]).double()
    with torch.no_grad():
        z = layer(x)[0]
        back = layer.inverse(z)[0]
    assert torch.isfinite(z).all()
    assert (back - x).abs().max() <= 1e-3
    with torch.no_grad():  # float32 in the data's range
        layer = layer.float()
        x = data(64, 3)
        assert (layer.inverse(layer(x)[0])[0] - x).abs().max() <= 1e-3


def test_bnaf_inverse_within_tolerance_and_onto() -> None:
    """Latents far outside the network's own range still have a preimage (the alpha * x skip)."""
    torch.manual_seed(0)
    layer = randomized(BlockNeuralAutoregressive(3, (12, 12), tol=1e-4)).eval()
    z = torch.cat([torch.randn(32, 3), 50 * torch.randn(8, 3)])
    with torch.no_grad():
        x = layer.inverse(z)[0]
        assert (layer(x)[0] - z).abs().max() <= 1e-3 * max(1.0, float(z.abs().max()))


def test_residual_fixed_point_meets_its_tolerance() -> None:
    torch.manual_seed(0)
    block = randomized(ResidualBlock(3, (16, 16), tol=1e-9, max_iter=500)).double().eval()
    z = torch.randn(20, 3, dtype=torch.float64)
    x = block.inverse(z)[0]
    assert (x + block.residual(x) - z).abs().max() <= 1e-9


def test_residual_is_a_contraction() -> None:
    """Spectral normalisation: Lip(g) <= coeff^layers < 1, checked on the exact Jacobian."""
    torch.manual_seed(0)
    block = ResidualBlock(4, (32, 32), coeff=0.9)
    with torch.no_grad():
        for layer in block.linears:
            layer.weight.mul_(20)  # far beyond 1 before the normalisation
    x = torch.randn(16, 4)
    jacobian = torch.stack([torch.autograd.functional.jacobian(lambda v: block.residual(v[None])[0], xi) for xi in x])
    assert torch.linalg.matrix_norm(jacobian, ord=2).max() <= 0.9**3 + 1e-5


def test_residual_estimator_mean_matches_the_exact_logdet() -> None:
    """The Russian-roulette estimator is unbiased: its mean over draws is within 4 standard
    errors of the exact log-det (float64, a block with Lip(g) well below 1)."""
    torch.manual_seed(0)
    block = randomized(ResidualBlock(3, (16,), coeff=0.9, logdet="estimate", exact_terms=2, stop=0.5), 0.5).double()
    x = data(4, 3).double()
    exact = block.exact_logabsdet(x).detach()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        draws = torch.stack([block.estimate_logabsdet(x, generator=generator) for _ in range(600)])
    mean, standard_error = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert (draws.std(0) > 0).all()
    assert ((mean - exact).abs() <= 4 * standard_error).all(), (mean, exact, standard_error)


def test_residual_estimator_is_used_in_training_and_differentiable() -> None:
    torch.manual_seed(0)
    block = ResidualBlock(12, (16,), logdet="auto").train()
    x = torch.randn(5, 12, requires_grad=True)
    z, logabsdet = block(x)
    (z.sum() + logabsdet.sum()).backward()
    assert all(p.grad is not None for p in block.parameters())
    block.eval()
    assert_close(block(x)[1], block.exact_logabsdet(x))


@pytest.mark.parametrize("name", ONE_WAY)
def test_one_way_layers_logdet_matches_autograd(name: str) -> None:
    layer, z, _ = ONE_WAY[name]()
    layer = randomized(layer, 0.5).double()
    z = z.double()
    x, logabsdet = layer.inverse(z)
    assert x.shape == z.shape and logabsdet.shape == (z.shape[0],)
    assert not torch.allclose(x, z)
    assert_close(logabsdet, autograd_logabsdet(lambda v: layer.inverse(v)[0], z))


@pytest.mark.parametrize("name", ONE_WAY)
def test_one_way_layers_forward_raises_and_gradients_flow(name: str) -> None:
    layer, z, _ = ONE_WAY[name]()
    with pytest.raises(FlowforgeError, match="no analytic inverse"):
        layer(z)
    z.requires_grad_(True)
    x, logabsdet = layer.inverse(z)
    (x.square().sum() + logabsdet.sum()).backward()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    with pytest.raises(FlowforgeError, match="context"):
        layer.inverse(z, torch.zeros(z.shape[0], 2))


def test_planar_stays_invertible_when_u_opposes_w() -> None:
    """The u' reparameterisation keeps 1 + u'^T w h' > 0 for any u: log-dets stay finite."""
    layer, z, _ = ONE_WAY["planar"]()
    with torch.no_grad():
        layer.u.copy_(-50 * layer.w)
    assert torch.isfinite(layer.inverse(10 * z)[1]).all()


def test_wrap_angles_lands_in_minus_pi_to_pi() -> None:
    layer = WrapAngles([True, False])
    x = torch.tensor([[math.pi, 5.0], [-math.pi, 5.0], [3 * math.pi + 0.5, -7.0], [-1e-9, 0.0]], dtype=torch.float64)
    z, logabsdet = layer(x)
    assert ((z[:, 0] >= -math.pi) & (z[:, 0] < math.pi)).all()
    assert_close(torch.cos(z[:, 0]), torch.cos(x[:, 0]))
    assert_close(z[:, 1], x[:, 1]) and not logabsdet.any()
