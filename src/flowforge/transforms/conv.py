"""Per-channel layers for images (B, C, H, W): ActNorm2d and the invertible 1x1 convolution (Glow)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Transform
from .linear import solve_dtype


class ActNorm2d(Transform):
    """Per-channel affine map with data-dependent initialisation (Glow).

        z = (x - b) * exp(-log_sigma),   log|det| = -H * W * sum(log_sigma)

    On the first training-mode forward pass, b and log_sigma are set to the per-channel mean
    and log-std over batch and pixels, so the first batch leaves with zero mean, unit variance.

    Reference: Kingma & Dhariwal, Glow, 2018, section 3.1.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))
        self.log_sigma = nn.Parameter(torch.zeros(channels, 1, 1))
        self.register_buffer("is_initialized", torch.tensor(False))
        self.eps = eps

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set b, log_sigma from a batch x of shape (B, C, H, W)."""
        pixels = x.transpose(0, 1).flatten(1)  # (C, B * H * W)
        self.bias.copy_(pixels.mean(1)[:, None, None])
        std = pixels.std(1) if pixels.shape[1] > 1 else torch.ones_like(pixels[:, 0])
        self.log_sigma.copy_(std.clamp_min(self.eps).log()[:, None, None])
        self.is_initialized.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not torch.compiler.is_compiling() and not self.is_initialized:  # compiled: Flow sets it up eagerly
            self.initialize(x)
        pixels = x.shape[2] * x.shape[3]
        return (x - self.bias) * torch.exp(-self.log_sigma), (-pixels * self.log_sigma.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        pixels = z.shape[2] * z.shape[3]
        return z * torch.exp(self.log_sigma) + self.bias, (pixels * self.log_sigma.sum()).expand(z.shape[0])


class Conv1x1(Transform):
    """Invertible 1x1 convolution: every pixel's channel vector is multiplied by one C x C matrix M.

        z[:, :, i, j] = M x[:, :, i, j],    log|det| = height * width * log|det M|

    Plain (lu=False): M is a free matrix; log|det M| and M^-1 cost O(C^3) per call. LU form
    (lu=True): M = P L (U + diag(sign * exp(log_abs_diag))) with P fixed, L unit lower- and U
    strictly upper-triangular, so log|det M| = sum(log_abs_diag) is O(C) and M^-1 needs two
    triangular solves. Both start at a random rotation (volume-preserving, mixes all channels).

    Reference: Kingma & Dhariwal, Glow, 2018, section 3.2.
    """

    def __init__(self, channels: int, lu: bool = True, seed: int | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        self.lu = lu
        if not lu:
            self.weight = nn.Parameter(q)
            return
        p, lower, upper = torch.linalg.lu(q)
        diag = upper.diagonal()
        self.register_buffer("permutation", p)
        self.register_buffer("sign", diag.sign())
        self.lower = nn.Parameter(torch.tril(lower, -1))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_abs_diag = nn.Parameter(diag.abs().log())

    def _factors(self) -> tuple[Tensor, Tensor]:
        lower = torch.tril(self.lower, -1) + torch.eye(len(self.sign), dtype=self.lower.dtype, device=self.lower.device)
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * self.log_abs_diag.exp())
        return lower, upper

    def matrix(self) -> Tensor:
        """The dense matrix M."""
        if not self.lu:
            return self.weight
        lower, upper = self._factors()
        return self.permutation @ lower @ upper

    def _inverse_matrix(self) -> Tensor:
        dtype = self.log_abs_diag.dtype if self.lu else self.weight.dtype  # the solves run in at least float32
        if not self.lu:
            return torch.linalg.inv(self.weight.to(solve_dtype(dtype))).to(dtype)
        lower, upper = (f.to(solve_dtype(dtype)) for f in self._factors())
        eye = torch.eye(len(self.sign), dtype=lower.dtype, device=lower.device)
        # M^-1 = U^-1 L^-1 P^T, from two triangular solves
        lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        return (torch.linalg.solve_triangular(upper, lower_inv, upper=True) @ self.permutation.T.to(lower.dtype)).to(dtype)

    def _log_abs_det(self) -> Tensor:
        if self.lu:
            return self.log_abs_diag.sum()
        return torch.linalg.slogdet(self.weight.to(solve_dtype(self.weight.dtype))).logabsdet.to(self.weight.dtype)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = F.conv2d(x, self.matrix()[:, :, None, None])
        return z, (x.shape[2] * x.shape[3] * self._log_abs_det()).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = F.conv2d(z, self._inverse_matrix()[:, :, None, None])
        return x, (-z.shape[2] * z.shape[3] * self._log_abs_det()).expand(z.shape[0])
