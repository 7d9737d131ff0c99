"""TorusBase: uniform on each angle column, standard normal on the others."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

_LOG_2PI = math.log(2 * math.pi)


class TorusBase(nn.Module):
    """Product base over (features,): Uniform[-pi, pi) where `circular[i]`, N(0, 1) elsewhere.

    log_prob is periodic in the angle columns (-log 2 pi at any value), as a density on the
    circle read through its lift to R must be. `temperature` scales the normal columns only."""

    def __init__(self, circular: Sequence[bool]) -> None:
        super().__init__()
        self.event_shape = (len(circular),)
        self.register_buffer("angles", torch.tensor(list(circular), dtype=torch.bool), persistent=False)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        normal = -0.5 * z * z - 0.5 * _LOG_2PI
        return torch.where(self.angles, torch.full_like(z, -_LOG_2PI), normal).sum(-1)

    def sample(self, sample_shape: int | Sequence[int] = (), temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        shape = ((sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)) + self.event_shape
        options = {"dtype": self._anchor.dtype, "device": self._anchor.device}
        uniform = (torch.rand(shape, **options) * 2 - 1) * math.pi
        return torch.where(self.angles, uniform, temperature * torch.randn(shape, **options))
