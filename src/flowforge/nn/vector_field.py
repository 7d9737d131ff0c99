"""Time-conditioned vector fields v(t, x, context) for continuous flows: an MLP for vectors, a
small U-Net for images. Both start at v = 0 (last layer zeroed): the flow starts at the identity."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .mlp import ACTIVATIONS, MLP, check_activation, last_layer, require_context


def time_features(t: Tensor, batch: int, frequencies: int, like: Tensor) -> Tensor:
    """(batch, 1 + 2 * frequencies): t and sin/cos(pi 2^k t), k < frequencies, so that a small
    network can change its field quickly in t. t is a scalar tensor (an ODE solver's time, shared
    by the rows) or one time per row (flow matching's)."""
    t = t.to(like.dtype).reshape(-1, 1).expand(batch, 1)
    if not frequencies:
        return t
    scales = math.pi * 2.0 ** torch.arange(frequencies, dtype=like.dtype, device=like.device)
    return torch.cat([t, torch.sin(t * scales), torch.cos(t * scales)], dim=1)


def space_features(x: Tensor, frequencies: int) -> Tensor:
    """(B, D * (1 + 2 * frequencies)): x and sin/cos(pi 2^(k-1) x), k < frequencies (Fourier
    features, Tancik et al. 2020): a smooth MLP then bends sharply in x at little cost, as the
    field of a density with sharp edges (checkerboard) needs near the data."""
    if not frequencies:
        return x
    scales = math.pi * 2.0 ** (torch.arange(frequencies, dtype=x.dtype, device=x.device) - 1)
    scaled = (x[:, :, None] * scales).flatten(1)
    return torch.cat([x, torch.sin(scaled), torch.cos(scaled)], dim=1)


class TimeMLP(nn.Module):
    """v(t, x, context) = MLP([x, time_features(t)], context): (B, D) -> (B, D).

    Args:
        features: D.
        hidden: hidden widths.
        context_features: size of the context vector (0: none).
        activation: one of ACTIVATIONS; a smooth one (silu, tanh, elu) keeps the ODE smooth, which
            adaptive solvers need and the divergence's gradient uses.
        frequencies: sinusoidal time features beside t.
        space_frequencies: sinusoidal features of x beside x (space_features).
    """

    def __init__(self, features: int, hidden: Sequence[int] = (64, 64, 64), context_features: int = 0,
                 activation: str = "silu", frequencies: int = 0, space_frequencies: int = 0) -> None:
        super().__init__()
        self.frequencies, self.space_frequencies = frequencies, space_frequencies
        inputs = features * (1 + 2 * space_frequencies) + 1 + 2 * frequencies
        self.net = MLP(inputs, features, tuple(hidden), context_features, activation)

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        features = [space_features(x, self.space_frequencies), time_features(t, x.shape[0], self.frequencies, x)]
        return self.net(torch.cat(features, dim=1), context)


class FlatTimeMLP(nn.Module):
    """v(t, x, context) for (B, *shape) inputs, images among them: a TimeMLP on the flattened
    values, its output reshaped back. On the 8x8 digits a step costs a fifth of a 32-channel
    TimeUNet's and an exact divergence a fifth to a sixth, but it overfits where the U-Net does
    not (benchmarks/RESULTS.md); its first layer grows with the number of pixels.

    Args:
        shape: one input's shape, e.g. (C, H, W).
        hidden, context_features, activation, frequencies, space_frequencies: TimeMLP's.
    """

    def __init__(self, shape: Sequence[int], hidden: Sequence[int] = (512, 512, 512), context_features: int = 0,
                 activation: str = "silu", frequencies: int = 0, space_frequencies: int = 0) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.net = TimeMLP(math.prod(self.shape), hidden, context_features, activation, frequencies, space_frequencies)

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(t, x.flatten(1), context).reshape(x.shape)


class _Block(nn.Module):
    """A residual conv block; the time (and context) embedding shifts its first activation."""

    def __init__(self, channels: int, out: int, activation: str, embed: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(channels, out, 3, padding=1), nn.Conv2d(out, out, 3, padding=1)
        self.embed = nn.Linear(embed, out)
        self.act = ACTIVATIONS[activation]()
        self.skip = nn.Conv2d(channels, out, 1) if channels != out else nn.Identity()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.act(self.conv1(x) + self.embed(e)[:, :, None, None])
        h = self.act(self.conv2(h))
        return h + self.skip(x)


class TimeUNet(nn.Module):
    """v(t, x, context) for (B, C, H, W) images: a two-level U-Net (residual conv blocks, the time
    and context features added to each block, average-pool down, nearest up).

    No normalisation layer: BatchNorm would make an image's likelihood depend on its batch, and
    GroupNorm over a few pixels makes the field stiff (an adaptive solver then takes hundreds of steps).

    Args:
        channels: C.
        hidden: channels of the first level (the second has twice as many).
        context_features: size of a context vector (0: none).
        activation: one of ACTIVATIONS.
        frequencies: sinusoidal time features beside t.
    """

    def __init__(self, channels: int, hidden: int = 64, context_features: int = 0, activation: str = "silu",
                 frequencies: int = 0) -> None:
        super().__init__()
        check_activation(activation)
        self.frequencies, self.context_features = frequencies, context_features
        embed = 1 + 2 * frequencies + context_features
        self.stem = nn.Conv2d(channels, hidden, 3, padding=1)
        self.down = _Block(hidden, hidden, activation, embed)
        self.middle = _Block(hidden, 2 * hidden, activation, embed)
        self.up = _Block(3 * hidden, hidden, activation, embed)
        self.head = last_layer(nn.Conv2d(hidden, channels, 3, padding=1), zero_init=True)

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        e = time_features(t, x.shape[0], self.frequencies, x)
        if self.context_features:
            require_context(context, self.context_features)
            e = torch.cat([e, context.to(x.dtype)], dim=1)
        h = self.down(self.stem(x), e)
        low = nn.functional.avg_pool2d(h, 2) if min(h.shape[-2:]) >= 4 else h
        m = self.middle(low, e)
        m = nn.functional.interpolate(m, size=h.shape[-2:], mode="nearest")
        return self.head(self.up(torch.cat([h, m], dim=1), e))
