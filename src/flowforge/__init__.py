"""flowforge: normalizing flows in PyTorch — exact likelihoods, exact latents, fast sampling."""
from .distributions import DiagNormal, StandardNormal
from .errors import FlowforgeError
from .flows import MODELS, NICE, Flow, Glow, RealNVP, build_model
from .train import History, fit, load, mean_nll, save

__version__ = "0.1.0"

__all__ = [
    "DiagNormal", "Flow", "FlowforgeError", "Glow", "History", "MODELS", "NICE", "RealNVP",
    "StandardNormal", "build_model", "fit", "load", "mean_nll", "save", "__version__",
]
