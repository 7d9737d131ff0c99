"""FlowDistribution: a Flow seen as a torch.distributions.Distribution."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .checks import check_context

if TYPE_CHECKING:
    from .flow import Flow


class FlowDistribution(Distribution):
    """A Flow (optionally with a fixed context) as a torch Distribution; made by `flow.distribution()`.

    Shapes: event_shape is the flow's event shape. batch_shape is () for an unconditional flow or
    a single context of shape (C,), and (B,) for a context of shape (B, C): one distribution per
    row, so `sample((n,))` has shape (n, B, *event_shape) and `log_prob` takes values of shape
    (..., B, *event_shape). `rsample` keeps the autograd graph through the flow (and a learnable
    base), so it serves as a reparameterised variational posterior; `sample` does not.

    Example:
        >>> import torch, flowforge
        >>> flow = flowforge.MAF(2, layers=2, hidden=(8,), context_features=3)
        >>> q = flow.distribution(torch.zeros(4, 3))
        >>> q.batch_shape, q.event_shape, q.rsample((5,)).shape
        (torch.Size([4]), torch.Size([2]), torch.Size([5, 4, 2]))
    """

    has_rsample = True
    arg_constraints: ClassVar[dict] = {}

    def __init__(self, flow: Flow, context: Tensor | None = None, validate_args: bool | None = None) -> None:
        self.flow = flow
        if context is not None and not isinstance(context, Tensor):
            context = torch.as_tensor(context, dtype=torch.get_default_dtype(), device=flow._anchor().device)
        if context is not None and context.dim() == 1:
            self.context = check_context(context, flow.context_features, 1)[0]  # one condition: batch_shape ()
        else:
            self.context = check_context(context, flow.context_features, None)  # (B, C): batch_shape (B,)
        batch_shape = torch.Size() if self.context is None or self.context.dim() == 1 else self.context.shape[:1]
        super().__init__(batch_shape, torch.Size(flow.event_shape), validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, len(self.event_shape))

    def _rows(self, lead: tuple[int, ...]) -> tuple[int, Tensor | None]:
        """Number of flat rows for leading dims `lead` (..., *batch_shape), and the matching contexts."""
        n = math.prod(lead)
        if self.context is None:
            return n, None
        return n, self.context.expand(*lead, self.context.shape[-1]).reshape(n, -1)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        lead = tuple(sample_shape) + tuple(self.batch_shape)
        n, context = self._rows(lead)
        x, _ = self.flow.sample_and_log_prob(n, context=context)  # keeps the graph, unlike flow.sample
        return x.reshape(*lead, *self.event_shape)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        lead = tuple(sample_shape) + tuple(self.batch_shape)
        n, context = self._rows(lead)
        return self.flow.sample(n, context=context).reshape(*lead, *self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        lead = tuple(value.shape[: value.dim() - len(self.event_shape)])
        lead = torch.broadcast_shapes(lead, tuple(self.batch_shape))
        n, context = self._rows(lead)
        x = value.expand(*lead, *self.event_shape).reshape(n, *self.event_shape)
        return self.flow.log_prob(x, context).reshape(lead)
