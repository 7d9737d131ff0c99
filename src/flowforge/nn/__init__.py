"""Conditioner networks."""
from .convnet import ConvNet
from .made import MADE, MaskedLinear
from .mlp import MLP
from .vector_field import TimeMLP, TimeUNet

__all__ = ["MADE", "MLP", "ConvNet", "MaskedLinear", "TimeMLP", "TimeUNet"]
