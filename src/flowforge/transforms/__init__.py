"""Invertible layers with tractable log-determinants."""
from .autoregressive import MaskedAutoregressive
from .base import Compose, CouplingTransform, Inverse, Transform
from .block_autoregressive import BlockNeuralAutoregressive
from .circular import AngleFeatures, CircularSplineMap, CircularStandardize, MixedSplineMap, WrapAngles
from .conv import ActNorm2d, Conv1x1
from .coupling import AdditiveCoupling, AffineCoupling, Coupling, alternating_mask, half_mask, reversed_complement
from .dequantize import Dequantize, Logit, VariationalNoise
from .image_coupling import MaskedAffineCoupling, channel_mask, checkerboard_mask
from .linear import LULinear
from .maps import AdditiveMap, AffineMap, ElementwiseMap, SplineMap
from .monotone import DeepSigmoidMap, UnconstrainedMonotoneMap
from .norm import ActNorm, BatchNorm, DiagonalScale
from .ode import ODETransform
from .permute import Permutation, Reverse
from .planar import Planar, Radial, Sylvester
from .reshape import Split, Squeeze
from .residual import ResidualBlock
from .splines import rational_quadratic_spline
from .standardize import Standardize, Whiten

__all__ = [
    "ActNorm",
    "ActNorm2d",
    "AdditiveCoupling",
    "AdditiveMap",
    "AffineCoupling",
    "AffineMap",
    "AngleFeatures",
    "BatchNorm",
    "BlockNeuralAutoregressive",
    "CircularSplineMap",
    "CircularStandardize",
    "Compose",
    "Conv1x1",
    "Coupling",
    "CouplingTransform",
    "DeepSigmoidMap",
    "Dequantize",
    "DiagonalScale",
    "ElementwiseMap",
    "Inverse",
    "LULinear",
    "Logit",
    "MaskedAffineCoupling",
    "MaskedAutoregressive",
    "MixedSplineMap",
    "ODETransform",
    "Permutation",
    "Planar",
    "Radial",
    "ResidualBlock",
    "Reverse",
    "SplineMap",
    "Split",
    "Squeeze",
    "Standardize",
    "Sylvester",
    "Transform",
    "UnconstrainedMonotoneMap",
    "VariationalNoise",
    "Whiten",
    "WrapAngles",
    "alternating_mask",
    "channel_mask",
    "checkerboard_mask",
    "half_mask",
    "rational_quadratic_spline",
    "reversed_complement",
]
