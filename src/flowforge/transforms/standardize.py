"""Standardize: a fixed affine map fitted to the training data, part of the model."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import Transform


class Standardize(Transform):
    """z = (x - mean) / scale, log|det| = -sum(log scale); mean, scale fitted once, then frozen.

    Being a layer of the flow, it makes `log_prob` come out on the user's original scale (its
    Jacobian included), and `sample` return data on that scale. It starts as the identity;
    `fit_` (called by `flowforge.fit` on the training set) sets the statistics. A constant
    column (spread at float64 rounding of its mean, or below 1e-30) gets scale 1 rather than a
    division by ~0; a small but real spread (1e-7 +- 1e-9) is standardised like any other.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.register_buffer("is_fitted", torch.tensor(False))

    @torch.no_grad()
    def fit_(self, x: Tensor, chunk: int = 16384) -> None:
        """Set mean and scale from data x (N, D) in one streaming pass, in float64.

        Each chunk's mean and sum of squared deviations M2 are merged into the running ones
        (Chan et al.): M2 = M2_a + M2_b + delta^2 n_a n_b / n. Unlike E[x^2] - E[x]^2 this keeps
        its precision when the mean dwarfs the spread (timestamps: mean 1.7e9, std 30)."""
        count = 0
        mean = torch.zeros(x.shape[1], dtype=torch.float64)
        m2 = torch.zeros_like(mean)
        for start in range(0, x.shape[0], chunk):
            part = torch.as_tensor(x[start : start + chunk]).to(torch.float64).cpu()
            n_part = part.shape[0]
            part_mean = part.mean(0)
            part_m2 = ((part - part_mean) ** 2).sum(0)
            delta = part_mean - mean
            total = count + n_part
            mean = mean + delta * (n_part / total)
            m2 = m2 + part_m2 + delta * delta * (count * n_part / total)
            count = total
        std = (m2 / max(count, 1)).sqrt()
        # a constant column has no spread to normalise: leave its scale alone. Constant means no
        # spread beyond float64 rounding of its mean; a column of 1e-7 +- 1e-9 is not constant.
        tiny = (std <= 1e-12 * mean.abs()) | (std < 1e-30)
        std = torch.where(tiny, torch.ones_like(std), std)
        self.mean.copy_(mean.to(self.mean))
        self.scale.copy_(std.to(self.scale))
        self.is_fitted.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return (x - self.mean) / self.scale, (-self.scale.log().sum()).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z * self.scale + self.mean, self.scale.log().sum().expand(z.shape[0])

    def steps_in_place(self, x: Tensor) -> bool:
        return x.dim() == 2 and x.dtype == self.mean.dtype

    def step_(self, x: Tensor, context: Tensor | None, inverse: bool, flipped: bool) -> tuple[Tensor, bool]:
        """The same map in place on x, whose columns are reversed when `flipped` (inplace.py)."""
        mean, scale = (self.mean.flip(0), self.scale.flip(0)) if flipped else (self.mean, self.scale)
        logabsdet = scale.log().sum().expand(x.shape[0])
        if inverse:
            x.mul_(scale).add_(mean)
            return logabsdet, flipped
        x.sub_(mean).div_(scale)
        return -logabsdet, flipped
