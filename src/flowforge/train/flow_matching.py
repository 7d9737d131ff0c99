"""Conditional flow matching: train a CNF's vector field by regression, with no ODE solve.

With data x at t = 0 and noise z ~ N(0, I) at t = 1 (the direction of flowforge's ODETransform),
the linear (optimal-transport) conditional path and its velocity are

    x_t = (1 - t) x + t z,        u_t = z - x,        t ~ U(0, 1)

and the loss is E ||v(t, x_t, context) - u_t||^2 (per feature). Its minimiser is the marginal
field whose flow carries the data distribution to N(0, I), so the trained CNF's exact likelihood
(an ODE solve, at evaluation only) is that of a density model. `coupling="ot"` pairs the batch's
x and z by an exact optimal assignment of squared distances (minibatch OT, Tong et al.), which
straightens the paths: fewer solver steps for the same accuracy.

References: Lipman et al., Flow Matching for Generative Modeling, ICLR 2023 (arXiv:2210.02747);
Tong et al., Improving and generalizing flow-based generative models with minibatch optimal
transport, TMLR 2024 (arXiv:2302.00482).
"""
from __future__ import annotations

import importlib

import torch
from torch import Tensor

from ..errors import FlowforgeError
from ..flows.continuous import ContinuousFlow

COUPLINGS = ("independent", "ot")


def check_flow_matching(flow: object, coupling: str) -> None:
    """Named errors for a flow or a coupling flow matching cannot train."""
    if coupling not in COUPLINGS:
        raise FlowforgeError(f"unknown coupling {coupling!r}; choose from {', '.join(COUPLINGS)}")
    if not isinstance(flow, ContinuousFlow):
        raise FlowforgeError(f"objective 'flow-matching' trains a continuous flow (flowforge.CNF, --model cnf), "
                             f"not {type(flow).__name__}; use objective 'likelihood'")
    if len(flow.odes()) != 1:
        raise FlowforgeError(f"flow matching trains one ODE block; this CNF has {len(flow.odes())} (build it with layers=1)")


def ot_pairing(x: Tensor, z: Tensor) -> Tensor:
    """z reordered so that (x_i, z_i) is an optimal assignment for the squared Euclidean cost."""
    try:
        optimize = importlib.import_module("scipy.optimize")
    except ImportError:
        raise FlowforgeError("coupling 'ot' needs scipy (pip install scipy)") from None
    cost = torch.cdist(x.flatten(1).double(), z.flatten(1).double()).pow(2).cpu().numpy()
    _, columns = optimize.linear_sum_assignment(cost)
    return z[torch.as_tensor(columns, device=z.device)]


def flow_matching_loss(flow: ContinuousFlow, x: Tensor, context: Tensor | None = None, coupling: str = "independent",
                       time_power: float = 1.0) -> Tensor:
    """The conditional flow matching loss of one batch: mean over rows and features of
    ||v(t, x_t) - (z - x)||^2, on the linear path from the (standardised) data to the noise,
    at t = u^time_power, u ~ U(0, 1) (a power above 1 samples more times near the data)."""
    x, context = flow.ode_input(x, context)
    z = torch.randn_like(x)
    if coupling == "ot":
        z = ot_pairing(x.detach(), z)
    t = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), dtype=x.dtype, device=x.device) ** time_power
    x_t = (1 - t) * x + t * z
    v = flow.odes()[0].field(t.flatten(), x_t, context)  # one time per row
    return (v - (z - x)).pow(2).mean()
