"""Image layers (B, C, H, W): exact inverses and log-dets against autograd, float64, 1x4x4 and 3x4x4."""
from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.testing import assert_close

from flowforge import FlowforgeError
from flowforge.nn import ConvNet
from flowforge.transforms import (
    ActNorm2d,
    Compose,
    Conv1x1,
    Dequantize,
    Logit,
    MaskedAffineCoupling,
    Split,
    Squeeze,
    Transform,
    VariationalNoise,
    channel_mask,
    checkerboard_mask,
)
from flowforge.transforms.reshape import squeeze, unsqueeze

from .cases import autograd_logabsdet, randomized


def coupling(mask: Tensor, channels: int, context_features: int = 0) -> MaskedAffineCoupling:
    return MaskedAffineCoupling(mask, ConvNet(channels, 2 * channels, hidden=8, blocks=1, context_features=context_features))


def actnorm2d(channels: int) -> ActNorm2d:
    layer = ActNorm2d(channels)
    layer.initialize(torch.randn(8, channels, 4, 4) * 2 + 1)
    return layer


# each maker takes C and returns a layer for (B, C, 4, 4) images
LAYERS: dict[str, Callable[[int], Transform]] = {
    "squeeze": lambda c: Squeeze(),
    "actnorm2d": actnorm2d,
    "conv1x1_plain": lambda c: Conv1x1(c, lu=False, seed=0),
    "conv1x1_lu": lambda c: Conv1x1(c, lu=True, seed=0),
    "checkerboard_coupling": lambda c: coupling(checkerboard_mask(4, 4), c),
    "checkerboard_coupling_odd": lambda c: coupling(checkerboard_mask(4, 4, even=False), c),
    "logit": lambda c: Logit(0.05),
    "split": lambda c: Compose([Squeeze(), Split(coupling(channel_mask(2 * c), 2 * c), 2 * c)]),
}
CHANNEL_LAYERS = {  # channel-wise couplings need C >= 2
    "channel_coupling": lambda c: coupling(channel_mask(c), c),
    "channel_coupling_last": lambda c: coupling(channel_mask(c, first=False), c),
}
CASES = [(name, c) for name in LAYERS for c in (1, 3)] + [(name, 3) for name in CHANNEL_LAYERS]


def make(name: str, channels: int) -> tuple[Transform, Tensor]:
    layer = {**LAYERS, **CHANNEL_LAYERS}[name](channels)
    x = torch.rand(3, channels, 4, 4) if name == "logit" else torch.randn(3, channels, 4, 4) * 1.5 + 0.3
    return randomized(layer).double().eval(), x.double()


@pytest.mark.parametrize(("name", "channels"), CASES)
def test_round_trip_and_logabsdet_match_autograd(name: str, channels: int) -> None:
    t, x = make(name, channels)
    z, logabsdet = t(x)
    assert z.numel() == x.numel() and logabsdet.shape == (3,)
    assert_close(logabsdet, autograd_logabsdet(lambda v: t(v)[0], x))
    x_back, inverse_logabsdet = t.inverse(z)
    assert_close(x_back, x)
    assert_close(inverse_logabsdet, -logabsdet)
    assert_close(inverse_logabsdet, autograd_logabsdet(lambda v: t.inverse(v)[0], z))


def test_squeeze_is_exact_and_moves_each_patch_into_channels() -> None:
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    z, logabsdet = Squeeze()(x)
    assert z.shape == (2, 12, 2, 3) and torch.equal(logabsdet, torch.zeros(2))
    assert torch.equal(z[:, 4 * 1 + 2 * 1 + 0, 1, 2], x[:, 1, 3, 4])  # channel c*4 + i*2 + j, patch (1, 2), offset (1, 0)
    assert torch.equal(unsqueeze(squeeze(x)), x)
    assert torch.equal(Squeeze().inverse(z)[0], x)
    with pytest.raises(FlowforgeError, match="divisible"):
        Squeeze()(torch.zeros(1, 1, 3, 4))


def test_actnorm2d_initialises_from_the_first_training_batch() -> None:
    layer = ActNorm2d(3).train()
    x = torch.randn(16, 3, 4, 4) * torch.tensor([2.0, 0.5, 1.0])[:, None, None] + 3
    z, _ = layer(x)
    assert_close(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    assert_close(z.std((0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)
    assert bool(layer.is_initialized)


def test_coupling_starts_at_identity_and_takes_a_context() -> None:
    layer = coupling(checkerboard_mask(4, 4), 2, context_features=3)
    x, context = torch.randn(4, 2, 4, 4), torch.randn(4, 3)
    z, logabsdet = layer(x, context)
    assert torch.equal(z, x) and torch.equal(logabsdet, torch.zeros(4))
    layer = randomized(layer)
    z, _ = layer(x, context)
    assert not torch.allclose(layer(x, context + 1)[0], z)
    assert_close(layer.inverse(z, context)[0], x, rtol=1e-5, atol=1e-5)
    with pytest.raises(FlowforgeError, match="context"):
        layer(x, context[:, :2])
    with pytest.raises(FlowforgeError, match="both ones"):
        MaskedAffineCoupling(torch.ones(1, 4, 4), ConvNet(1, 2))


def test_conv1x1_lu_and_plain_give_the_same_map_at_init() -> None:
    x = torch.randn(2, 4, 3, 3)
    assert_close(Conv1x1(4, lu=True, seed=3)(x)[0], Conv1x1(4, lu=False, seed=3)(x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("lu", [True, False])
def test_conv1x1_inverts_in_half_precision(lu: bool, dtype: torch.dtype) -> None:
    """torch has no half-precision triangular solve, inverse or slogdet on the CPU: they run in float32."""
    layer = Conv1x1(4, lu=lu, seed=3).to(dtype)
    x = torch.randn(2, 4, 3, 3).to(dtype)
    z, logabsdet = layer(x)
    back, inverse_logabsdet = layer.inverse(z)
    assert back.dtype == logabsdet.dtype == dtype
    assert_close(back.float(), x.float(), rtol=0.05, atol=0.05)
    assert_close(logabsdet.float(), -inverse_logabsdet.float())


def pixels(levels: int, shape: tuple[int, ...] = (5, 1, 4, 4)) -> Tensor:
    return torch.randint(0, levels, shape).double()


@pytest.mark.parametrize("variational", [False, True])
def test_dequantize_recovers_the_pixels_and_reports_the_scale(variational: bool) -> None:
    noise = randomized(VariationalNoise((1, 4, 4), levels=4, hidden=8, steps=2), 0.1) if variational else None
    layer = Dequantize(4, noise).double()
    x = pixels(4)
    z, logabsdet = layer(x)
    assert ((z >= x / 4) & (z < (x + 1) / 4)).all()
    x_back, inverse_logabsdet = layer.inverse(z)
    assert torch.equal(x_back, x)
    assert_close(inverse_logabsdet, -logabsdet)
    if not variational:
        assert_close(logabsdet, torch.full((5,), -16 * math.log(4) + 16 * math.log(1 - 2e-4), dtype=torch.float64))


def test_variational_noise_log_q_matches_autograd() -> None:
    noise = randomized(VariationalNoise((1, 4, 4), levels=4, hidden=8, steps=2), 0.1).double()
    x = pixels(4, (2, 1, 4, 4))
    torch.manual_seed(5)
    u, log_q = noise.sample(x)
    assert ((u > 0) & (u < 1)).all()
    torch.manual_seed(5)
    e = torch.randn_like(x)

    def to_u(v: Tensor, context: Tensor) -> Tensor:
        return 1e-4 + (1 - 2e-4) * torch.sigmoid(noise.flow(v, context)[0])

    for i in range(2):
        logabsdet = autograd_logabsdet(to_u, e[i : i + 1], noise._context(x[i : i + 1]))
        expected = -0.5 * (e[i] ** 2 + math.log(2 * math.pi)).sum() - logabsdet[0]
        assert_close(log_q[i], expected)
    assert_close(noise.log_prob(u, x), log_q)


@pytest.mark.parametrize("bad", [-1.0, 4.0, 1.5])
def test_dequantize_rejects_pixels_outside_the_levels(bad: float) -> None:
    x = pixels(4)
    x[0, 0, 0, 0] = bad
    with pytest.raises(FlowforgeError, match=r"0\.\.3"):
        Dequantize(4)(x)
