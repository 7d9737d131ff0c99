"""MixtureOfGaussians: a trainable mixture of K diagonal Gaussians, a base for any vector flow."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import check_int

_LOG_2PI = math.log(2 * math.pi)


class MixtureOfGaussians(nn.Module):
    """p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)) over (features,), every part learnt.

    Starts with equal weights, unit scales and means drawn from N(0, 0.5^2) (seeded, so a
    rebuilt model starts the same): apart enough that the components learn different modes, close
    enough that the mixture starts near the N(0, I) that standardised data fill. `temperature`
    scales each component's spread around its mean. Built by the builders' `base="mog:K"`.
    """

    def __init__(self, features: int, components: int = 8, seed: int = 0) -> None:
        super().__init__()
        check_int("mixture components", components, 1)
        self.event_shape = (features,)
        generator = torch.Generator().manual_seed(seed)
        self.loc = nn.Parameter(0.5 * torch.randn(components, features, generator=generator))
        self.log_scale = nn.Parameter(torch.zeros(components, features))
        self.logits = nn.Parameter(torch.zeros(components))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        u = (z[:, None, :] - self.loc) * torch.exp(-self.log_scale)
        per_component = (-0.5 * u * u - self.log_scale).sum(-1) - 0.5 * _LOG_2PI * self.event_shape[0]
        return torch.logsumexp(per_component + torch.log_softmax(self.logits, 0), dim=1)

    def sample(self, sample_shape: int | Sequence[int] = (), temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
        n = math.prod(shape)
        component = torch.multinomial(torch.softmax(self.logits, 0), n, replacement=True)
        eps = torch.randn(n, self.event_shape[0], dtype=self.loc.dtype, device=self.loc.device)
        z = self.loc[component] + temperature * eps * self.log_scale[component].exp()
        return z.view(*shape, *self.event_shape)
