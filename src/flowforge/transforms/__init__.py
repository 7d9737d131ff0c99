"""Invertible layers with tractable log-determinants."""
from .autoregressive import MaskedAutoregressive
from .base import Compose, Inverse, Transform
from .coupling import AdditiveCoupling, AffineCoupling, alternating_mask, half_mask
from .linear import LULinear
from .map_coupling import Coupling
from .maps import AffineMap, ElementwiseMap, SplineMap
from .norm import ActNorm, BatchNorm, DiagonalScale
from .permute import Permutation, Reverse
from .splines import rational_quadratic_spline
from .standardize import Standardize

__all__ = [
    "ActNorm", "AdditiveCoupling", "AffineCoupling", "AffineMap", "BatchNorm", "Compose", "Coupling", "DiagonalScale", "ElementwiseMap",
    "Inverse", "LULinear", "MaskedAutoregressive", "Permutation", "Reverse", "SplineMap", "Standardize", "Transform",
    "alternating_mask", "half_mask", "rational_quadratic_spline",
]
