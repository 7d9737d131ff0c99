"""Volume-preserving reorderings of the features: Reverse (flip) and a fixed random Permutation."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import Transform, zero_logabsdet


class Permutation(Transform):
    """z = x[:, perm]; log|det| = 0. A fixed permutation, stored as a buffer (saved with the model).

    Args:
        features: D, the size of the permuted dimension.
        perm: the permutation; a random one (from `seed`) if None.
        dim: which dimension to permute (1: features for vectors, channels for images).
    """

    def __init__(self, features: int, perm: Tensor | None = None, seed: int | None = None, dim: int = 1) -> None:
        super().__init__()
        if perm is None:
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
            perm = torch.randperm(features, generator=generator)
        self.register_buffer("perm", torch.as_tensor(perm, dtype=torch.long))
        self.register_buffer("inverse_perm", torch.argsort(self.perm))
        self.dim = dim

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.index_select(self.dim, self.perm), zero_logabsdet(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z.index_select(self.dim, self.inverse_perm), zero_logabsdet(z)


class Reverse(Transform):
    """z = x reversed along the feature (or channel) dimension; log|det| = 0."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.flip(self.dim), zero_logabsdet(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z.flip(self.dim), zero_logabsdet(z)

    def steps_in_place(self, x: Tensor) -> bool:
        return self.dim in (1, -1) and x.dim() == 2

    def step_(self, x: Tensor, context: Tensor | None, inverse: bool, flipped: bool) -> tuple[None, bool]:
        """In a no-grad Compose pass nothing moves: the next layers read x's columns reversed (inplace.py)."""
        return None, not flipped
