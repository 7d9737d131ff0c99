"""Conditioner networks."""
from .made import MADE, MaskedLinear
from .mlp import MLP

__all__ = ["MADE", "MLP", "MaskedLinear"]
