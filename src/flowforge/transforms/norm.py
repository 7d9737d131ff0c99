"""Normalisation layers: ActNorm (Glow), BatchNorm (Real NVP), DiagonalScale (NICE)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Transform


class ActNorm(Transform):
    """Per-feature affine map with data-dependent initialisation (Glow).

        z = (x - b) * exp(-log_sigma),   log|det| = -sum(log_sigma)

    On the first training-mode forward pass, b and log_sigma are set to the batch mean and
    log-std, so the first batch leaves the layer with zero mean and unit variance.

    Reference: Kingma & Dhariwal, Glow, 2018 (arXiv:1807.03039).
    """

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(features))
        self.log_sigma = nn.Parameter(torch.zeros(features))
        self.register_buffer("is_initialized", torch.tensor(False))
        self.eps = eps

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set b, log_sigma from a batch x of shape (B, D)."""
        self.bias.copy_(x.mean(0))
        std = x.std(0) if x.shape[0] > 1 else torch.ones_like(x[0])
        self.log_sigma.copy_(torch.log(std.clamp_min(self.eps)))
        self.is_initialized.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not torch.compiler.is_compiling() and not self.is_initialized:  # compiled: Flow sets it up eagerly
            self.initialize(x)
        z = (x - self.bias) * torch.exp(-self.log_sigma)
        return z, (-self.log_sigma.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = z * torch.exp(self.log_sigma) + self.bias
        return x, self.log_sigma.sum().expand(z.shape[0])


class BatchNorm(Transform):
    """Batch normalisation as a flow layer (Real NVP).

        z = (x - mu) / sqrt(var + eps) * exp(log_gamma) + beta
        log|det| = sum(log_gamma - 0.5 * log(var + eps))

    In training mode mu, var are the batch statistics (and update running averages); in eval
    mode, and always in the inverse, the running averages are used, so eval is a fixed bijection.

    Reference: Dinh et al., Density estimation using Real NVP, 2017, section 3.7.
    """

    def __init__(self, features: int, momentum: float = 0.05, eps: float = 1e-5) -> None:
        super().__init__()
        self.log_gamma = nn.Parameter(torch.zeros(features))
        self.beta = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.momentum, self.eps = momentum, eps

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and x.shape[0] > 1:
            mean, var = x.mean(0), x.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
            return mean, var
        return self.running_mean, self.running_var

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, var = self._stats(x)
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        z = (x - mean) * torch.exp(log_scale) + self.beta
        return z, log_scale.sum().expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_scale = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        x = (z - self.beta) * torch.exp(-log_scale) + self.running_mean
        return x, (-log_scale.sum()).expand(z.shape[0])


class DiagonalScale(Transform):
    """NICE's learnable diagonal scaling: z = x * exp(s), log|det| = sum(s).

    Reference: Dinh et al., NICE, 2015, section 3.3.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(z.shape[0])
