"""The two computations flowforge exports, as modules with plain tensor inputs and no checks:

    log_prob(x[, context])                 = log p_base(f(x)) + log|det df/dx|
    sample(noise, temperature[, context])  = f^-1(z),  z = the base's draw from `noise` ~ N(0, I)

Sampling takes its noise as an input, so an exported sampler is deterministic: the same noise
and temperature give the same rows as `Flow.decode` of the base's draw.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..distributions import ConditionalDiagNormal, DiagNormal, StandardNormal
from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..transforms.maps import soft_clamp

BASES = (StandardNormal, DiagNormal, ConditionalDiagNormal)


NOT_EXPORTED = {  # models whose inverse or log-density is an iteration that stops on a tolerance: no fixed graph
    "naf": "its inverse is a bisection search per feature",
    "unaf": "its inverse is a bisection search per feature",
    "bnaf": "its inverse is a bisection search per feature",
    "resflow": "its inverse is a fixed-point iteration and its log-determinant a stochastic power series",
    "cnf": "its log-density and samples come from an adaptive ODE solver",
}


def check_exportable(flow: Flow) -> None:
    """A named error for a flow that flowforge does not export, with the reason."""
    model = (flow.spec or {}).get("model")
    if model in NOT_EXPORTED:
        raise FlowforgeError(f"export: {model!r} flows are not exported: {NOT_EXPORTED[model]}, which a fixed ONNX graph "
                             "cannot hold; realnvp, nice, glow, maf, iaf, nsf and nsf-ar export")
    if len(flow.event_shape) != 1:
        raise FlowforgeError(f"export: only vector flows are exported; this flow models {flow.event_shape} images "
                             "(its log_prob dequantises pixels with random noise, which a fixed graph cannot reproduce)")
    if not isinstance(flow.base, BASES):
        raise FlowforgeError(f"export: the base {type(flow.base).__name__} is not exportable; "
                             f"choose from {', '.join(b.__name__ for b in BASES)}")


def _context(flow: Flow, context: Tensor | None) -> Tensor | None:
    scaler = flow.context_standardize
    return context if context is None or scaler is None else scaler(context)[0]


class LogProbGraph(nn.Module):
    """log p(x | context) of a flow: (batch, features) [, (batch, context_features)] -> (batch,)."""

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        context = _context(self.flow, context)
        z, logabsdet = self.flow.transform(x, context)
        base = self.flow.base
        return (base.log_prob(z, context) if context is not None else base.log_prob(z)) + logabsdet


class SampleGraph(nn.Module):
    """Rows x = f^-1(z) from base noise: (batch, features), a temperature () [, (batch, context_features)] -> (batch, features)."""

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, noise: Tensor, temperature: Tensor, context: Tensor | None = None) -> Tensor:
        context = _context(self.flow, context)
        z = latent(self.flow.base, noise, temperature, context)
        return self.flow.transform.inverse(z, context)[0]


def latent(base: nn.Module, noise: Tensor, temperature: Tensor, context: Tensor | None) -> Tensor:
    """The base's draw at temperature T from standard-normal noise: T * noise, moved and scaled by
    a DiagNormal's (or a ConditionalDiagNormal's, from the context) mean and scale."""
    if isinstance(base, StandardNormal):
        return temperature * noise
    if isinstance(base, DiagNormal):
        return base.loc + temperature * noise * base.log_scale.exp()
    mean, log_scale = base.net(context).chunk(2, dim=1)
    return mean + temperature * noise * soft_clamp(log_scale, base.bound).exp()
