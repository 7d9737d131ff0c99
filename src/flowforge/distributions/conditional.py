"""ConditionalDiagNormal: a diagonal normal whose mean and scale are computed from a context."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError
from ..nn.mlp import MLP
from ..transforms.maps import soft_clamp

_LOG_2PI = math.log(2 * math.pi)


class ConditionalDiagNormal(nn.Module):
    """N(mean(c), diag(exp(log_scale(c)))^2) over (features,), (mean, log_scale) = MLP(c).

    The MLP's last layer is zero-initialised, so it starts as N(0, I) for every context; the
    log-scale is soft-clamped to (-bound, bound), as in the coupling layers.

    Args:
        features: size of the event (a vector).
        context_features: size of the context vector (>= 1).
        hidden: hidden widths of the MLP.
        bound: soft-clamp bound of the log-scale.
    """

    def __init__(self, features: int, context_features: int, hidden: Sequence[int] = (64, 64), bound: float = 5.0) -> None:
        super().__init__()
        if not isinstance(context_features, int) or context_features < 1:
            raise FlowforgeError(f"a conditional base needs context_features >= 1, got {context_features!r}")
        self.event_shape = (features,)
        self.context_features, self.bound = context_features, bound
        self.net = MLP(context_features, 2 * features, tuple(hidden))

    def _mean_log_scale(self, context: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        if context is None or context.shape != (batch, self.context_features):
            got = None if context is None else tuple(context.shape)
            raise FlowforgeError(f"context: expected ({batch}, {self.context_features}), got {got}")
        mean, log_scale = self.net(context.to(next(self.parameters()))).chunk(2, dim=1)
        return mean, soft_clamp(log_scale, self.bound)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        mean, log_scale = self._mean_log_scale(context, z.shape[0])
        u = (z - mean) * torch.exp(-log_scale)
        return (-0.5 * u * u - log_scale).sum(1) - 0.5 * _LOG_2PI * self.event_shape[0]

    def sample(self, sample_shape: int | Sequence[int] = (), temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        n = sample_shape if isinstance(sample_shape, int) else math.prod(sample_shape)
        mean, log_scale = self._mean_log_scale(context, n)
        z = mean + temperature * torch.randn_like(mean) * log_scale.exp()
        shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
        return z.view(*shape, *self.event_shape)
