"""LULinear: an invertible linear map in LU form (Glow's 1x1 convolution, for vectors)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Transform


def solve_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a triangular solve, inverse or determinant (or a spline, whose b^2 overflows
    float16) runs in: torch has no float16/bfloat16 kernels for the solves on the CPU, so half
    precision is promoted to float32 (and cast back after)."""
    return torch.promote_types(dtype, torch.float32)


class LULinear(Transform):
    """z = W x + b with W = P L (U + diag(sign * exp(log_abs_diag))).

    P is a fixed permutation, L unit lower-triangular, U strictly upper-triangular, so
    log|det W| = sum(log_abs_diag) costs O(D) and the inverse is two triangular solves.
    Initialised from the LU decomposition of a random rotation (as in Glow), so it starts
    volume-preserving but mixes all features.

    Reference: Kingma & Dhariwal, Glow, 2018, section 3.2.
    """

    def __init__(self, features: int, seed: int | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        q, _ = torch.linalg.qr(torch.randn(features, features, generator=generator))
        p, lower, upper = torch.linalg.lu(q)
        diag = upper.diagonal()
        self.register_buffer("permutation", p)
        self.register_buffer("sign", diag.sign())
        self.register_buffer("lower_mask", torch.tril(torch.ones(features, features), -1))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_abs_diag = nn.Parameter(diag.abs().log())
        self.bias = nn.Parameter(torch.zeros(features))

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(len(self.bias), dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * self.log_abs_diag.exp())
        return lower, upper

    def weight(self) -> Tensor:
        """The dense matrix W = P L U."""
        lower, upper = self._factors()
        return self.permutation @ lower @ upper

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = torch.nn.functional.linear(x, self.weight(), self.bias)
        return z, self.log_abs_diag.sum().expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        work = solve_dtype(z.dtype)
        lower, upper = (f.to(work) for f in self._factors())
        # x = U^-1 L^-1 P^T (z - b), solved on the transposed system to keep the batch in rows
        y = ((z - self.bias) @ self.permutation).to(work)  # rows of P^T (z - b)
        y = torch.linalg.solve_triangular(lower.T, y, upper=True, left=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper.T, y, upper=False, left=False).to(z.dtype)
        return x, (-self.log_abs_diag.sum()).expand(z.shape[0])
