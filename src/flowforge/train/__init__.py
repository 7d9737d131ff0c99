"""Training loop and checkpoints."""
from .checkpoint import load, save
from .evaluate import mean_nll
from .history import History
from .loop import fit
from .options import FitOptions

__all__ = ["FitOptions", "History", "fit", "load", "mean_nll", "save"]
