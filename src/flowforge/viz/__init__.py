"""Plots for run folders: small functions that take arrays and a path and write a PNG.

This package is the only place flowforge imports matplotlib. Figures use matplotlib's object
API on an explicit Agg canvas (no pyplot): no display is needed, no global figure list grows,
and a figure is freed as soon as it goes out of scope.
"""
from .curves import plot_training_curve
from .density import plot_density
from .scatter import plot_samples
from .tables import plot_marginals, plot_pairs
from .targets import plot_importance_curves, plot_target_samples

__all__ = ["plot_density", "plot_importance_curves", "plot_marginals", "plot_pairs", "plot_samples", "plot_target_samples", "plot_training_curve"]
