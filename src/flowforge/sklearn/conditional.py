"""ConditionalFlowDensity: p(y | X) with a conditional normalizing flow, as a scikit-learn estimator."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, validate_data

from .density import COUPLING_MODELS
from .storage import save_estimator
from .training import FlowEstimator, as_float64, seed_of, seeded, train_flow


class ConditionalFlowDensity(FlowEstimator):
    """Conditional density estimation: `fit(X, y)` learns p(y | X) with a flow whose context is X.

        score_samples(X, y)[i] = log p(y[i] | X[i])     score(X, y) = its sum
        sample(X, n)[i] = n draws of y from p(y | X[i])

    y may be one target, (n_samples,), or several, (n_samples, n_targets). The parameters are
    FlowDensity's (a coupling model needs two targets or more; "maf", the default, takes any).

    Example:
        >>> import numpy as np
        >>> from flowforge.sklearn import ConditionalFlowDensity
        >>> X = np.random.default_rng(0).uniform(-2, 2, size=(500, 1))
        >>> y = X[:, 0] + 0.5 * np.random.default_rng(1).normal(size=500)
        >>> model = ConditionalFlowDensity(layers=2, hidden=(16,), steps=100, random_state=0).fit(X, y)
        >>> model.score_samples(X[:3], y[:3]).shape, model.sample(X[:3], 5, random_state=0).shape
        ((3,), (3, 5))
    """

    def fit(self, X: Any, y: Any) -> ConditionalFlowDensity:
        """Train p(y | X): X (n_samples, n_features) is the context, y (n_samples,) or (n_samples, n_targets)."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], multi_output=True, y_numeric=True, ensure_min_samples=2)
        self.n_targets_ = 1 if y.ndim == 1 else y.shape[1]
        self.is_single_target_ = y.ndim == 1
        if self.n_targets_ == 1 and str(self.model).lower() in COUPLING_MODELS:
            raise ValueError(f"{self.model} needs 2 targets or more, y has 1; use model='maf' or 'nsf-ar'")
        self.flow_ = train_flow(self.get_params(), y.reshape(len(y), -1), context=X)
        return self

    def score_samples(self, X: Any, y: Any) -> np.ndarray:
        """log p(y[i] | X[i]) of each row, in nats: shape (n_samples,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
        with torch.no_grad():
            return self.flow_.log_prob(as_float64(y), context=as_float64(X)).numpy()

    def score(self, X: Any, y: Any) -> float:
        """The total conditional log-likelihood, sum of score_samples(X, y)."""
        return float(self.score_samples(X, y).sum())

    def sample(self, X: Any, n_samples: int = 1, random_state: Any = None) -> np.ndarray:
        """n_samples draws of y per row of X: (len(X), n_samples) for one target, else (len(X), n_samples, n_targets)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        context = as_float64(np.repeat(X, n_samples, axis=0))
        with seeded(seed_of(random_state)):
            draws = self.flow_.sample(len(context), context=context).numpy()
        draws = draws.reshape(len(X), n_samples, self.n_targets_)
        return draws[..., 0] if self.is_single_target_ else draws

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to `path` in flowforge's checkpoint format (no pickle); `load_estimator` reads it."""
        return save_estimator(self, path)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        tags.non_deterministic = self.random_state is None
        return tags
