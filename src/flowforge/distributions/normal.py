"""Base distributions: StandardNormal and a learnable DiagNormal, over an event shape."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

_LOG_2PI = math.log(2 * math.pi)


def _shape(sample_shape: int | Sequence[int]) -> tuple[int, ...]:
    return (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)


class StandardNormal(nn.Module):
    """N(0, I) over an event shape; log_prob(z) is one value per sample (summed over the event)."""

    def __init__(self, shape: int | Sequence[int]) -> None:
        super().__init__()
        self.event_shape = _shape(shape)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # follows .to(device/dtype)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        dims = tuple(range(z.dim() - len(self.event_shape), z.dim()))
        return -0.5 * (z * z).sum(dims) - 0.5 * _LOG_2PI * math.prod(self.event_shape)

    def sample(self, sample_shape: int | Sequence[int] = (), temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        shape = _shape(sample_shape) + self.event_shape
        return temperature * torch.randn(shape, dtype=self._anchor.dtype, device=self._anchor.device)


class DiagNormal(nn.Module):
    """N(loc, diag(exp(log_scale))^2) with learnable loc and log_scale, over an event shape."""

    def __init__(self, shape: int | Sequence[int]) -> None:
        super().__init__()
        self.event_shape = _shape(shape)
        self.loc = nn.Parameter(torch.zeros(self.event_shape))
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        dims = tuple(range(z.dim() - len(self.event_shape), z.dim()))
        u = (z - self.loc) * torch.exp(-self.log_scale)
        return (-0.5 * u * u - self.log_scale).sum(dims) - 0.5 * _LOG_2PI * math.prod(self.event_shape)

    def sample(self, sample_shape: int | Sequence[int] = (), temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        shape = _shape(sample_shape) + self.event_shape
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + temperature * eps * self.log_scale.exp()
