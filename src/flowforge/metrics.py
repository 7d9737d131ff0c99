"""Bits per dimension: the unit image models are compared in."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .flows.flow import Flow
from .train.data import as_data
from .train.evaluate import mean_nll


def nats_to_bits_per_dim(nll: float | Tensor, dims: int) -> float | Tensor:
    """A negative log-likelihood of one example in nats -> bits per dimension: nll / (dims ln 2)."""
    return nll / (dims * math.log(2))


def bits_per_dim(flow: Flow, data: Any, seed: int | None = 0, batch_size: int = 1024, *, context: Any = None) -> float:
    """Mean bits/dim of `data` under `flow` (eval mode), on the scale `flow.log_prob` works on.

    For the image models, whose first layer is Dequantize, data are integer pixel levels and
    the number is the pixel-scale bits/dim that papers report (a one-sample estimate of an
    upper bound). `seed` fixes the dequantisation noise without touching the global random
    state (None: use it as is). A conditional flow takes its `context`, one row per data row.

    Example (a uniform model of 2-bit pixels scores exactly 2 bits/dim):
        >>> import torch, flowforge
        >>> from torch.distributions import Independent, Uniform
        >>> from flowforge.transforms import Dequantize
        >>> uniform = Independent(Uniform(torch.zeros(1, 4, 4), torch.ones(1, 4, 4)), 3)
        >>> flow = flowforge.Flow(Dequantize(levels=4, margin=0.0), uniform)
        >>> round(flowforge.bits_per_dim(flow, torch.randint(0, 4, (10, 1, 4, 4))), 6)
        2.0
    """
    data = as_data(data, "data", flow.event_shape)
    dims = math.prod(flow.event_shape)
    if seed is None:
        return nats_to_bits_per_dim(mean_nll(flow, data, context, batch_size=batch_size), dims)
    device = flow._anchor().device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return nats_to_bits_per_dim(mean_nll(flow, data, context, batch_size=batch_size), dims)
