"""Flow models and their builders."""
from .builders import NICE, Glow, RealNVP, count_parameters
from .flow import Flow
from .registry import MODELS, build_model, register

__all__ = ["Flow", "Glow", "MODELS", "NICE", "RealNVP", "build_model", "count_parameters", "register"]
