"""Base distributions for flows."""
from .conditional import ConditionalDiagNormal
from .normal import DiagNormal, StandardNormal

__all__ = ["ConditionalDiagNormal", "DiagNormal", "StandardNormal"]
