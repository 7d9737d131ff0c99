"""FlowforgeEstimator: a flowforge conditional flow as sbi's ConditionalDensityEstimator, and
`build_estimator`, the builder that sbi's trainers take as `density_estimator`.

sbi's documented interface for custom estimators: `NPE(prior, density_estimator=builder)`, where
`builder(theta, x)` returns a ConditionalDensityEstimator (log_prob, loss, sample). The flow
models theta (sbi's "input") given x (the "condition"); sbi trains it with its own loop.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..flows.registry import build_model
from ..transforms.standardize import Standardize

try:
    from sbi.neural_nets.estimators import ConditionalDensityEstimator
except ImportError:  # sbi is optional: build_estimator names the extra; the class below is then unusable
    ConditionalDensityEstimator = nn.Module  # type: ignore[assignment,misc]

EXTRA = "pip install 'flowforge[sbi]'"


class FlowforgeEstimator(ConditionalDensityEstimator):
    """sbi's ConditionalDensityEstimator around a conditional flowforge Flow q(theta | x).

    Shapes are sbi's: log_prob takes input (sample_dim, batch_dim, *input_shape) or
    (batch_dim, *input_shape) and returns (sample_dim, batch_dim); sample returns
    (*sample_shape, batch_dim, *input_shape). A condition of several dimensions is flattened.
    """

    def __init__(self, flow: Flow, input_shape: torch.Size, condition_shape: torch.Size) -> None:
        super().__init__(net=flow, input_shape=input_shape, condition_shape=condition_shape)

    def log_prob(self, input: Tensor, condition: Tensor, **kwargs: Any) -> Tensor:
        input, condition, batch = self._broadcast_and_align(input, condition)
        samples = input.shape[0]
        log_prob = self.net.log_prob(input.reshape(samples * batch, -1), condition.reshape(samples * batch, -1))
        return log_prob.reshape(samples, batch)

    def loss(self, input: Tensor, condition: Tensor, **kwargs: Any) -> Tensor:
        return -self.net.log_prob(input.reshape(len(input), -1), condition.reshape(len(condition), -1))

    def sample(self, sample_shape: torch.Size, condition: Tensor, **kwargs: Any) -> Tensor:
        self._check_condition_shape(condition)
        condition = condition.reshape(-1, math.prod(self.condition_shape))
        batch, n = len(condition), math.prod(sample_shape)
        theta = self.net.sample(n * batch, context=condition.repeat(n, 1))  # row i * batch + b: draw i at condition b
        return theta.reshape(*sample_shape, batch, *self.input_shape)


def build_estimator(model: str = "nsf", layers: int = 5, hidden: Sequence[int] = (64, 64), z_score: bool = True,
                    **model_options: Any) -> Callable[[Tensor, Tensor], FlowforgeEstimator]:
    """A builder for sbi's trainers: `NPE(prior, density_estimator=build_estimator("nsf"))`.

    sbi calls it with the first simulations (theta, x); it builds `model` (a name in
    flowforge.MODELS) for theta's dimensions, conditioned on x, and with `z_score` sets the
    flow's standardizing first layer from theta and its context standardizer from x (as sbi's
    own estimators z-score both).

    Args:
        model, layers, hidden, **model_options: the flowforge model and its builder's options.
        z_score: standardize theta and x with the simulations' mean and scale.
    """
    try:
        import sbi  # noqa: F401 -- the optional dependency, checked before sbi calls the builder
    except ImportError:
        raise FlowforgeError(f"flowforge.sbi needs sbi: {EXTRA}") from None

    def build(theta: Tensor, x: Tensor) -> FlowforgeEstimator:
        if theta.dim() != 2:
            raise FlowforgeError(f"sbi: theta must be (simulations, parameters), got {tuple(theta.shape)}")
        context_features = math.prod(x.shape[1:])
        flow = build_model(model, features=theta.shape[1], layers=layers, hidden=tuple(hidden),
                           context_features=context_features, standardize=z_score, **model_options)
        if z_score:
            _standardize(flow, theta.float().cpu(), x.reshape(len(x), -1).float().cpu())
        return FlowforgeEstimator(flow, theta.shape[1:], x.shape[1:])

    return build


def _standardize(flow: Flow, theta: Tensor, x: Tensor) -> None:
    """Fit the flow's first Standardize layer to theta and its context standardizer to x."""
    first = flow.transform[0]
    if isinstance(first, Standardize):
        first.fit_(theta)
    if flow.context_standardize is not None:
        flow.context_standardize.fit_(x)
