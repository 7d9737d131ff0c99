"""Invertible layers with tractable log-determinants."""
from .autoregressive import MaskedAutoregressive
from .base import Compose, CouplingTransform, Inverse, Transform
from .conv import ActNorm2d, Conv1x1
from .coupling import AdditiveCoupling, AffineCoupling, Coupling, alternating_mask, half_mask
from .dequantize import Dequantize, Logit, VariationalNoise
from .image_coupling import MaskedAffineCoupling, channel_mask, checkerboard_mask
from .linear import LULinear
from .maps import AdditiveMap, AffineMap, ElementwiseMap, SplineMap
from .norm import ActNorm, BatchNorm, DiagonalScale
from .ode import ODETransform
from .permute import Permutation, Reverse
from .reshape import Split, Squeeze
from .splines import rational_quadratic_spline
from .standardize import Standardize, Whiten

__all__ = [
    "ActNorm", "ActNorm2d", "AdditiveCoupling", "AdditiveMap", "AffineCoupling", "AffineMap", "BatchNorm", "Compose", "Conv1x1", "Coupling",
    "CouplingTransform",
    "Dequantize", "DiagonalScale", "ElementwiseMap", "Inverse", "LULinear", "Logit", "MaskedAffineCoupling", "MaskedAutoregressive",
    "ODETransform",
    "Permutation", "Reverse", "SplineMap", "Split", "Squeeze", "Standardize", "Transform", "VariationalNoise", "Whiten",
    "alternating_mask", "channel_mask", "checkerboard_mask", "half_mask", "rational_quadratic_spline",
]
