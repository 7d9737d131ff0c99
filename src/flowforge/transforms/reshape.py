"""Reshaping layers for images: Squeeze (space-to-depth) and Split (multi-scale factor-out)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import FlowforgeError
from .base import Transform, zero_logabsdet


def squeeze(x: Tensor, factor: int = 2) -> Tensor:
    """(B, C, H, W) -> (B, C * f * f, H / f, W / f): each f x f patch becomes f * f channels."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // factor, factor, w // factor, factor)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * factor * factor, h // factor, w // factor)


def unsqueeze(z: Tensor, factor: int = 2) -> Tensor:
    """The exact inverse of `squeeze`."""
    b, c, h, w = z.shape
    z = z.reshape(b, c // (factor * factor), factor, factor, h, w)
    return z.permute(0, 1, 4, 2, 5, 3).reshape(b, c // (factor * factor), h * factor, w * factor)


class Squeeze(Transform):
    """Space-to-depth: z[:, c * f * f + i * f + j, y, x] = x[:, c, f * y + i, f * x + j]; log|det| = 0.

    Halves height and width (f = 2) and multiplies the channels by four, so that channel-wise
    layers can mix neighbouring pixels. H and W must be divisible by the factor.

    Reference: Dinh et al., Density estimation using Real NVP, 2017, section 3.6.
    """

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise FlowforgeError(f"Squeeze: height and width must be divisible by {self.factor}, got {tuple(x.shape[2:])}")
        return squeeze(x, self.factor), zero_logabsdet(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return unsqueeze(z, self.factor), zero_logabsdet(z)


class Split(Transform):
    """Multi-scale factor-out: the first `channels` go on through `inner`, the rest are final.

        z = cat(inner(x[:, :channels]), x[:, channels:]),    log|det| = inner's

    The factored-out channels stay in place in the output, so a multi-scale flow still maps a
    tensor to a tensor of the same shape and a standard normal base over that shape is the
    prior of every level; sampling then runs level by level, innermost first, and a
    temperature scales every latent.

    Args:
        inner: the transform applied to the kept channels (the next, coarser levels).
        channels: how many channels are kept; the others are factored out.

    Reference: Dinh et al., Density estimation using Real NVP, 2017, section 3.6.
    """

    def __init__(self, inner: Transform, channels: int) -> None:
        super().__init__()
        self.inner, self.channels = inner, channels

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept, logabsdet = self.inner(x[:, : self.channels], context)
        return torch.cat([kept, x[:, self.channels :]], dim=1), logabsdet

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept, logabsdet = self.inner.inverse(z[:, : self.channels], context)
        return torch.cat([kept, z[:, self.channels :]], dim=1), logabsdet
