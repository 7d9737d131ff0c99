"""Bayesian logistic regression on scikit-learn's breast_cancer: a 31-dimensional posterior."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import softplus

from ..errors import FlowforgeError
from .base import Target

REFERENCE_FILE = Path(__file__).with_name("breast_cancer_posterior.npz")


def breast_cancer_design() -> tuple[np.ndarray, np.ndarray]:
    """The 569 x 30 features standardised (mean 0, std 1), with a leading column of ones, and the 0/1 labels."""
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError as e:
        raise FlowforgeError("the logistic_regression target uses scikit-learn's breast_cancer: "
                             "pip install 'flowforge[data]'") from e
    data = load_breast_cancer()
    x = (data.data - data.data.mean(0)) / data.data.std(0)
    return np.hstack([np.ones((x.shape[0], 1)), x]), data.target.astype(np.float64)


def logistic_regression(prior_std: float = 1.0) -> Target:
    """The posterior of the weights beta (intercept + 30) of a logistic regression on breast_cancer,

        log p~(beta) = -|beta|^2 / (2 prior_std^2) + sum_i y_i eta_i - log(1 + e^eta_i),   eta = X beta

    `reference` holds the mean and std of a long MCMC run (benchmarks/reference_posterior.py,
    stored in breast_cancer_posterior.npz, for prior_std = 1) and 1000 of its draws.
    """
    design, labels = breast_cancer_design()
    x_all, y_all = torch.from_numpy(design), torch.from_numpy(labels)

    def log_density(beta: Tensor) -> Tensor:
        eta = beta @ x_all.to(beta).T  # (batch, rows)
        likelihood = (y_all.to(beta) * eta - softplus(eta)).sum(1)
        return likelihood - 0.5 * (beta ** 2).sum(1) / prior_std ** 2

    reference = {}
    if prior_std == 1.0 and REFERENCE_FILE.is_file():
        with np.load(REFERENCE_FILE) as stored:
            reference = {key: torch.from_numpy(stored[key].astype(np.float64)) for key in stored.files}
    return Target(log_density, design.shape[1], name="logistic_regression",
                  mean=reference.get("mean"), std=reference.get("std"), reference=reference)
