"""Target: an unnormalised log-density log p~(x[, context]) -> (batch,), and what is known about it."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import FlowforgeError

LogDensity = Callable[..., Tensor]


class Target:
    """A density known up to its normaliser Z: p(x) = p~(x) / Z, given as `log_density(x[, context])`.

    The callable takes x of shape (batch, features) (and, for a conditional target, context of
    shape (batch, context_features)) and returns log p~(x) of shape (batch,), differentiable in x
    with torch. `-inf` means zero density; NaN and +inf are treated as failures of the target at x
    (those samples are dropped and counted by training and importance sampling).

    Args:
        log_density: the callable.
        features: D, the size of x.
        context_features: the size of the context (0: the target takes no context).
        name: shown in errors and reports.
        log_z: the true log normaliser, when known (built-in targets), for checks.
        mean, std: the true moments (features,), when known.
        loc, scale: a rough location and spread (features,) of the mass; `fit_target` uses them to
            set an unfitted Standardize first layer, so the flow starts where the mass is.
        reference: a dict of reference statistics (e.g. a long MCMC run's means and stds).
    """

    def __init__(self, log_density: LogDensity, features: int, *, context_features: int = 0, name: str | None = None,
                 log_z: float | None = None, mean: Sequence[float] | Tensor | None = None,
                 std: Sequence[float] | Tensor | None = None, loc: Sequence[float] | Tensor | None = None,
                 scale: Sequence[float] | Tensor | None = None, reference: dict[str, Any] | None = None) -> None:
        if not callable(log_density):
            raise FlowforgeError(f"target: log_density must be callable, got {type(log_density).__name__}")
        if isinstance(features, bool) or not isinstance(features, int) or features < 1:
            raise FlowforgeError(f"target: features must be a positive integer, got {features!r}")
        self.log_density, self.features, self.context_features = log_density, features, context_features
        self.name = name or getattr(log_density, "__name__", "target")
        self.log_z, self.reference = log_z, reference or {}
        self.mean, self.std, self.loc, self.scale = (_vector(v, features, n) for v, n in
                                                     ((mean, "mean"), (std, "std"), (loc, "loc"), (scale, "scale")))

    def __call__(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log p~(x) of shape (batch,); a wrong shape or a non-floating result is a named error."""
        values = self.log_density(x) if self.context_features == 0 else self.log_density(x, context)
        return check_log_density(values, x.shape[0], self.name)

    def __repr__(self) -> str:
        return f"Target({self.name!r}, features={self.features})"


def _vector(value: Any, features: int, name: str) -> Tensor | None:
    if value is None:
        return None
    vector = torch.as_tensor(value, dtype=torch.float64).flatten()
    if vector.numel() == 1:
        vector = vector.expand(features).clone()
    if vector.numel() != features:
        raise FlowforgeError(f"target: {name} must have {features} values, got {vector.numel()}")
    return vector


def check_log_density(values: Any, batch: int, name: str = "target") -> Tensor:
    """`values` if it is a floating tensor of shape (batch,), else a FlowforgeError naming the shape."""
    if not isinstance(values, Tensor):
        raise FlowforgeError(f"{name}: log_density must return a torch.Tensor of shape ({batch},), "
                             f"got {type(values).__name__}")
    if tuple(values.shape) != (batch,):
        hint = " (sum over the feature axis: .sum(-1))" if values.dim() == 2 and values.shape[0] == batch else ""
        raise FlowforgeError(f"{name}: log_density must return shape ({batch},), one value per row, "
                             f"got {tuple(values.shape)}{hint}")
    if not values.is_floating_point():
        raise FlowforgeError(f"{name}: log_density must return floating-point values, got {values.dtype}")
    return values


def as_target(target: Target | LogDensity | str, features: int | None = None, context_features: int = 0) -> Target:
    """A Target from a Target, a built-in name (see `TARGETS`) or a callable (then `features` is needed)."""
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        from .builtin import make_target

        return make_target(target)
    if not callable(target):
        raise FlowforgeError(f"target: expected a Target, a built-in name or a callable, got {type(target).__name__}")
    if features is None:
        raise FlowforgeError("target: a callable needs features=D, the size of x")
    return Target(target, features, context_features=context_features)
