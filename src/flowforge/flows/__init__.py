"""Flow models and their builders."""
from .autoregressive_builders import IAF, MAF, NSF
from .builders import NICE, Glow, RealNVP, count_parameters
from .continuous import CNF, ContinuousFlow
from .distribution import FlowDistribution
from .flow import Flow
from .image_builders import ImageGlow, ImageRealNVP
from .neural_builders import BNAF, NAF, UNAF, ResFlow
from .registry import MODELS, build_model, register
from .vi_builders import PlanarFlow, RadialFlow, SylvesterFlow

__all__ = [
    "BNAF",
    "CNF",
    "IAF",
    "MAF",
    "MODELS",
    "NAF",
    "NICE",
    "NSF",
    "UNAF",
    "ContinuousFlow",
    "Flow",
    "FlowDistribution",
    "Glow",
    "ImageGlow",
    "ImageRealNVP",
    "PlanarFlow",
    "RadialFlow",
    "RealNVP",
    "ResFlow",
    "SylvesterFlow",
    "build_model",
    "count_parameters",
    "register",
]
