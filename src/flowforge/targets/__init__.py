"""Target densities (unnormalised log-densities) and importance sampling with a flow as proposal."""
from .base import Target, as_target, check_log_density
from .builtin import TARGETS, banana, double_well, funnel, gmm40, make_target, many_well
from .files import load_target
from .importance import ImportanceSamples, failed_rows, importance_sample
from .logistic import logistic_regression
from .reference import compare_to_reference

__all__ = ["TARGETS", "ImportanceSamples", "Target", "as_target", "banana", "check_log_density", "compare_to_reference", "double_well",
           "failed_rows", "funnel", "gmm40", "importance_sample", "load_target", "logistic_regression", "make_target", "many_well"]
