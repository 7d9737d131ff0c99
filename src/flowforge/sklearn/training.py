"""What the estimators share: the flow they build and train from their parameters, and seeded draws."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..flows.registry import build_model
from ..train.loop import fit

# parameters of FlowDensity and ConditionalFlowDensity that go to the model builder / to `fit`
BUILD_PARAMS = ("layers", "hidden")
FIT_PARAMS = ("steps", "batch_size", "lr", "val_fraction", "patience")


class FlowEstimator(BaseEstimator):
    """The constructor parameters FlowDensity and ConditionalFlowDensity share; scikit-learn's
    get_params/set_params/clone read them from this __init__'s signature."""

    def __init__(self, model: str = "maf", layers: int = 4, hidden: tuple[int, ...] = (64, 64), steps: int = 1000,
                 batch_size: int = 256, lr: float = 1e-3, val_fraction: float = 0.1, patience: int | None = 20,
                 model_options: dict[str, Any] | None = None, random_state: Any = None) -> None:
        self.model = model
        self.layers = layers
        self.hidden = hidden
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.val_fraction = val_fraction
        self.patience = patience
        self.model_options = model_options
        self.random_state = random_state


def seed_of(random_state: Any) -> int:
    """A torch seed from scikit-learn's random_state (None, an int or a RandomState)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's global generator seeded with `seed` inside, restored after: an estimator never
    disturbs the caller's random stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def train_flow(params: dict[str, Any], x: np.ndarray, context: np.ndarray | None = None) -> Flow:
    """Build `params["model"]` for x's columns (and the context's), train it, and return it in
    float64 and eval mode: trained in float32, scored and sampled in float64, so a row's score
    does not depend on the batch it comes in (scikit-learn checks that to 1e-7)."""
    options = dict(params.get("model_options") or {})
    clash = sorted(set(options) & {"features", "context_features", *BUILD_PARAMS})
    if clash:
        raise FlowforgeError(f"model_options: set {clash[0]!r} as the estimator's own parameter, not in model_options")
    seed = seed_of(params["random_state"])
    context_features = 0 if context is None else context.shape[1]
    with seeded(seed):
        flow = build_model(params["model"], features=x.shape[1], layers=params["layers"], hidden=tuple(params["hidden"]),
                           context_features=context_features, **options)
        fit(flow, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            context=None if context is None else torch.from_numpy(np.ascontiguousarray(context, dtype=np.float32)),
            progress=False, seed=seed, **{name: params[name] for name in FIT_PARAMS})
    return flow.double().eval()


def as_float64(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
