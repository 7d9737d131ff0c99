"""Training loop and checkpoints."""
from .checkpoint import load, save
from .evaluate import mean_nll
from .history import History
from .loop import fit
from .options import FitOptions
from .target import fit_target
from .target_options import TargetHistory, TargetOptions

__all__ = ["FitOptions", "History", "TargetHistory", "TargetOptions", "fit", "fit_target", "load", "mean_nll", "save"]
