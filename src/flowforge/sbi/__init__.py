"""sbi: a flowforge conditional flow as the density estimator of sbi's neural posterior estimation
(the `sbi` extra). See docs/ecosystem.md and examples/sbi_posterior.py."""
from .estimator import FlowforgeEstimator, build_estimator

__all__ = ["FlowforgeEstimator", "build_estimator"]
