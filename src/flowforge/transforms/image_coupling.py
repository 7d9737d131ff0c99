"""Image masks for Coupling, and MaskedAffineCoupling: the affine Coupling on (B, C, H, W)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .coupling import Coupling
from .maps import AdditiveMap, AffineMap


def checkerboard_mask(height: int, width: int, even: bool = True) -> Tensor:
    """(1, H, W) 0/1 mask, 1 where (row + column) is even (odd when even=False); ones pass through."""
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    mask = ((rows + cols) % 2 == 0).float()[None]
    return mask if even else 1 - mask


def channel_mask(channels: int, first: bool = True) -> Tensor:
    """(C, 1, 1) 0/1 mask passing the first C // 2 channels through (the others when first=False)."""
    mask = (torch.arange(channels) < channels // 2).float()[:, None, None]
    return mask if first else 1 - mask


class MaskedAffineCoupling(Coupling):
    """Affine coupling (Real NVP) on images, with a checkerboard or channel-wise mask m:
    Coupling(mask, net, AffineMap(bound)).

        (s, t) = net(x * m, context),  both zero where m = 1
        z = x * exp(s) + t,    log|det dz/dx| = sum(s);    x = (z - t) * exp(-s)

    Give it a conditioner whose last layer is zero (flowforge.nn.ConvNet) to start at the identity.

    Args:
        mask: 0/1, broadcastable to one image, e.g. (1, H, W) from checkerboard_mask or
            (C, 1, 1) from channel_mask; ones pass through. Needs both kinds.
        net: maps (B, C, H, W) and context to (B, 2C, H, W): log-scale and shift.
        scale: False gives NICE's additive coupling (AdditiveMap: the net emits the C shift channels).
        bound: soft-clamp bound for the log-scale.

    Reference: Dinh et al., Density estimation using Real NVP, 2017, section 3.4.
    """

    def __init__(self, mask: Tensor, net: nn.Module, scale: bool = True, bound: float = 3.0) -> None:
        affine = AffineMap(bound)
        super().__init__(mask, net, affine if scale else AdditiveMap())
