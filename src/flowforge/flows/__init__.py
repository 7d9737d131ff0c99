"""Flow models and their builders."""
from .autoregressive_builders import IAF, MAF, NSF
from .builders import NICE, Glow, RealNVP, count_parameters
from .continuous import CNF, ContinuousFlow
from .distribution import FlowDistribution
from .flow import Flow
from .image_builders import ImageGlow, ImageRealNVP
from .registry import MODELS, build_model, register

__all__ = [
    "CNF",
    "IAF",
    "MAF",
    "MODELS",
    "NICE",
    "NSF",
    "ContinuousFlow",
    "Flow",
    "FlowDistribution",
    "Glow",
    "ImageGlow",
    "ImageRealNVP",
    "RealNVP",
    "build_model",
    "count_parameters",
    "register",
]
