"""What `fit` minimises: the objective modules its loop calls on each batch.

    "likelihood"      mean NLL of the batch, plus a CNF's RNODE regularisers when it has them
    "flow-matching"   conditional flow matching of a CNF's field (train/flow_matching.py)

Each is an nn.Module, so that DDP's gradient hooks see a forward call. Validation, best weights
and early stopping use the exact validation NLL whatever the objective.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..errors import FlowforgeError
from ..flows.continuous import ContinuousFlow
from ..flows.flow import Flow
from .flow_matching import check_flow_matching, flow_matching_loss

OBJECTIVES = ("likelihood", "flow-matching")


class Likelihood(nn.Module):
    """Mean NLL of a batch (plus a continuous flow's regularisers of the same pass)."""

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        loss = -self.flow.log_prob(x, context).mean()
        if isinstance(self.flow, ContinuousFlow):
            loss = loss + self.flow.penalty()
        return loss


class FlowMatching(nn.Module):
    """Conditional flow matching loss of a batch; `coupling` "independent" or "ot"; times t = u^time_power."""

    def __init__(self, flow: Flow, coupling: str = "independent", time_power: float = 1.0) -> None:
        super().__init__()
        check_flow_matching(flow, coupling)
        self.flow, self.coupling, self.time_power = flow, coupling, time_power

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        return flow_matching_loss(self.flow, x, context, self.coupling, self.time_power)


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise FlowforgeError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")


def objective_module(flow: Flow, objective: str = "likelihood", coupling: str = "independent",
                     time_power: float = 1.0) -> nn.Module:
    """The module `fit` calls on each batch for `objective`."""
    check_objective(objective)
    if objective == "flow-matching":
        return FlowMatching(flow, coupling, time_power)
    if coupling != "independent":
        raise FlowforgeError(f"coupling {coupling!r} is for objective 'flow-matching'")
    if time_power != 1:
        raise FlowforgeError(f"time_power {time_power!r} is for objective 'flow-matching'")
    return Likelihood(flow)
