"""Base distributions for flows."""
from .circular import TorusBase
from .conditional import ConditionalDiagNormal
from .mixture import MixtureOfGaussians
from .normal import DiagNormal, StandardNormal

__all__ = ["ConditionalDiagNormal", "DiagNormal", "MixtureOfGaussians", "StandardNormal", "TorusBase"]
