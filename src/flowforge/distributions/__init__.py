"""Base distributions for flows."""
from .normal import DiagNormal, StandardNormal

__all__ = ["DiagNormal", "StandardNormal"]
