"""Training loop and checkpoints."""
from .checkpoint import load, save
from .history import History
from .loop import fit, mean_nll

__all__ = ["History", "fit", "load", "mean_nll", "save"]
