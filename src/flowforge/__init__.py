"""flowforge: normalizing flows in PyTorch — exact likelihoods, exact latents, fast sampling."""
from . import data
from .compile import compile, uncompile
from .distributions import ConditionalDiagNormal, DiagNormal, StandardNormal
from .distributions.mixture import MixtureOfGaussians
from .errors import FlowforgeError
from .flows import IAF, MAF, MODELS, NICE, NSF, Flow, FlowDistribution, Glow, RealNVP, build_model
from .flows.continuous import CNF
from .flows.image_builders import ImageGlow, ImageRealNVP
from .flows.neural_builders import BNAF, NAF, UNAF, ResFlow
from .flows.vi_builders import PlanarFlow, RadialFlow, SylvesterFlow
from .metrics import bits_per_dim
from .nn.embedding import EMBEDDINGS, register_embedding
from .targets import ImportanceSamples, Target, importance_sample
from .train import FitOptions, History, TargetHistory, TargetOptions, fit, fit_target, load, mean_nll, save

__version__ = "0.1.0"

__all__ = [
    "BNAF",
    "CNF",
    "EMBEDDINGS",
    "IAF",
    "MAF",
    "MODELS",
    "NAF",
    "NICE",
    "NSF",
    "UNAF",
    "ConditionalDiagNormal",
    "DiagNormal",
    "FitOptions",
    "Flow",
    "FlowDistribution",
    "FlowforgeError",
    "Glow",
    "History",
    "ImageGlow",
    "ImageRealNVP",
    "ImportanceSamples",
    "MixtureOfGaussians",
    "PlanarFlow",
    "RadialFlow",
    "RealNVP",
    "ResFlow",
    "StandardNormal",
    "SylvesterFlow",
    "Target",
    "TargetHistory",
    "TargetOptions",
    "__version__",
    "bits_per_dim",
    "build_model",
    "compile",
    "data",
    "fit",
    "fit_target",
    "importance_sample",
    "load",
    "mean_nll",
    "register_embedding",
    "save",
    "uncompile",
]
