"""Affine coupling for images (B, C, H, W): checkerboard and channel-wise masks, conv conditioner."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError, check_bound
from .base import CouplingTransform
from .coupling import soft_clamp


def checkerboard_mask(height: int, width: int, even: bool = True) -> Tensor:
    """(1, H, W) 0/1 mask, 1 where (row + column) is even (odd when even=False); ones pass through."""
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    mask = ((rows + cols) % 2 == 0).float()[None]
    return mask if even else 1 - mask


def channel_mask(channels: int, first: bool = True) -> Tensor:
    """(C, 1, 1) 0/1 mask passing the first C // 2 channels through (the others when first=False)."""
    mask = (torch.arange(channels) < channels // 2).float()[:, None, None]
    return mask if first else 1 - mask


class MaskedAffineCoupling(CouplingTransform):
    """Affine coupling (Real NVP) on images, with a checkerboard or channel-wise mask m.

        (s, t) = net(x * m, context),  both zeroed where m = 1
        z = x * exp(s) + t,    log|det dz/dx| = sum(s);    x = (z - t) * exp(-s)

    The log-scale is soft-clamped, s = bound * tanh(s_raw / bound), as in AffineCoupling. Give
    it a conditioner whose last layer is zero (flowforge.nn.ConvNet) to start at the identity.

    Args:
        mask: 0/1, broadcastable to one image, e.g. (1, H, W) from checkerboard_mask or
            (C, 1, 1) from channel_mask; ones pass through. Needs both kinds.
        net: maps (B, C, H, W) and context to (B, 2C, H, W): log-scale and shift.
        scale: False gives NICE's additive coupling (s = 0).
        bound: soft-clamp bound for the log-scale.

    Reference: Dinh et al., Density estimation using Real NVP, 2017, section 3.4.
    """

    def __init__(self, mask: Tensor, net: nn.Module, scale: bool = True, bound: float = 3.0) -> None:
        super().__init__()
        if mask.all() or not mask.any():
            raise FlowforgeError("coupling mask needs both ones (kept) and zeros (transformed)")
        self.register_buffer("mask", mask.float())
        check_bound("bound", bound)
        self.net, self.scale, self.bound = net, scale, bound

    def _scale_shift(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        s, t = self.net(x * self.mask, context).chunk(2, dim=1)
        s = soft_clamp(s, self.bound) if self.scale else torch.zeros_like(s)
        return s * (1 - self.mask), t * (1 - self.mask)

    def condition(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """(s, t), zero where the mask is 1; only x * mask is read."""
        return self._scale_shift(x, context)

    def couple(self, x: Tensor, theta: tuple[Tensor, Tensor], inverse: bool = False) -> tuple[Tensor, Tensor]:
        """The coupling given (s, t); where the mask is 1, s = t = 0 and x passes through."""
        s, t = theta
        if inverse:
            return (x - t) * (-s).exp(), -s.flatten(1).sum(1)
        return x * s.exp() + t, s.flatten(1).sum(1)
