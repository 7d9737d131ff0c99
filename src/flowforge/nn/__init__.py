"""Conditioner networks."""
from .convnet import ConvNet
from .made import MADE, MaskedLinear
from .mlp import MLP

__all__ = ["MADE", "MLP", "ConvNet", "MaskedLinear"]
