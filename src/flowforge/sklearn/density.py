"""FlowDensity: a normalizing flow as a scikit-learn density estimator, like KernelDensity or GaussianMixture."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import DensityMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .storage import save_estimator
from .training import FlowEstimator, as_float64, seed_of, seeded, train_flow

COUPLING_MODELS = ("realnvp", "nice", "glow", "nsf")  # a coupling keeps some columns and transforms the rest: 2 or more


class FlowDensity(DensityMixin, FlowEstimator):
    """Density estimation with a normalizing flow: `fit(X)`, `score_samples(X)`, `score(X)`, `sample(n)`.

        score_samples(X)[i] = log p(X[i])   (exact, in nats, on X's own scale)
        score(X) = sum_i log p(X[i])        (the total, as KernelDensity's score; GridSearchCV maximises it)

    The flow is trained in float32 by [`fit`][flowforge.fit] (Adam, cosine schedule, the best
    validation weights kept) and scored and sampled in float64.

    Args:
        model: a name in flowforge.MODELS for vectors: "maf" (default; any number of columns),
            "realnvp", "nice", "glow", "nsf" (two columns or more), "nsf-ar", "iaf".
        layers, hidden: the flow's depth and its conditioner networks' widths.
        steps, batch_size, lr: the optimisation budget.
        val_fraction: the share of X held out to pick the best weights and stop early (0: none).
        patience: evaluations without improvement before stopping (None: never).
        model_options: further keyword arguments of the model's builder, e.g. {"bins": 16} for nsf.
        random_state: seeds the initial weights, the validation split and the batches (None: fresh).

    Attributes:
        flow_: the trained flowforge Flow (float64, eval mode).
        n_features_in_, feature_names_in_: as every scikit-learn estimator sets them.

    Example:
        >>> import numpy as np
        >>> from flowforge.sklearn import FlowDensity
        >>> X = np.random.default_rng(0).normal(size=(500, 2))
        >>> density = FlowDensity(layers=2, hidden=(16,), steps=100, random_state=0).fit(X)
        >>> density.score_samples(X[:3]).shape, density.sample(4, random_state=0).shape
        ((3,), (4, 2))
    """

    def fit(self, X: Any, y: Any = None) -> FlowDensity:
        """Train a flow on the rows of X, (n_samples, n_features); y is ignored."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        if X.shape[1] == 1 and str(self.model).lower() in COUPLING_MODELS:
            raise ValueError(f"{self.model} needs 2 columns or more, X has 1 feature(s); use model='maf' or 'nsf-ar'")
        self.flow_ = train_flow(self.get_params(), X)
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """log p(x) of each row of X, in nats: shape (n_samples,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        with torch.no_grad():
            return self.flow_.log_prob(as_float64(X)).numpy()

    def score(self, X: Any, y: Any = None) -> float:
        """The total log-likelihood of X, sum of score_samples(X); y is ignored."""
        return float(self.score_samples(X).sum())

    def sample(self, n_samples: int = 1, random_state: Any = None) -> np.ndarray:
        """n_samples new rows drawn from the flow, (n_samples, n_features); random_state makes them reproducible."""
        check_is_fitted(self)
        with seeded(seed_of(random_state)):
            return self.flow_.sample(n_samples).numpy()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to `path` in flowforge's checkpoint format (no pickle); `load_estimator` reads it."""
        return save_estimator(self, path)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags
