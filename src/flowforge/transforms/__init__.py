"""Invertible layers with tractable log-determinants."""
from .base import Compose, Inverse, Transform
from .coupling import AdditiveCoupling, AffineCoupling, alternating_mask, half_mask
from .linear import LULinear
from .norm import ActNorm, BatchNorm, DiagonalScale
from .permute import Permutation, Reverse
from .standardize import Standardize

__all__ = [
    "ActNorm", "AdditiveCoupling", "AffineCoupling", "BatchNorm", "Compose", "DiagonalScale",
    "Inverse", "LULinear", "Permutation", "Reverse", "Standardize", "Transform",
    "alternating_mask", "half_mask",
]
