"""Evaluation during and after training: the mean NLL of a dataset, and fit's validation step."""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from ..errors import check_int
from ..flows.flow import Flow
from . import distributed
from .data import as_data, check_same_rows, to_flow_dtype
from .ema import ema_weights
from .history import TrainState, clone_state


def _batch_nll(flow: Flow, data: Any, context: Any, batch_size: int, shard: bool) -> Iterator[Tensor]:
    """Each batch's per-row NLL (float64, CPU) under `flow` in eval mode, a batch at a time (a .npy
    file is read in the flow's dtype, not float32); with `shard`, this rank's rows only."""
    check_int("batch_size", batch_size, 1)
    data = as_data(data, "data", flow.event_shape)
    context = as_data(context, "context") if context is not None else None
    check_same_rows(data, context, "data", "context")
    dtype, device = flow._anchor().dtype, flow._anchor().device
    data, context = to_flow_dtype(data, dtype, "data"), to_flow_dtype(context, dtype, "context")
    rows = torch.arange(data.shape[0])
    rows = distributed.shard(rows) if shard else rows
    was_training = flow.training
    flow.eval()
    try:
        for part in rows.split(batch_size):
            c = context[part].to(device) if context is not None else None
            yield -flow.log_prob(data[part].to(device), c).double().cpu()
    finally:
        flow.train(was_training)


@torch.no_grad()
def row_nll(flow: Flow, data: Any, context: Any = None, batch_size: int = 8192) -> Tensor:
    """Each row's negative log-likelihood (nats, float64 on the CPU) under `flow` in eval mode,
    on this process's rows only (mean_nll is the one that sums across ranks)."""
    parts = list(_batch_nll(flow, data, context, batch_size, shard=False))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def mean_nll(flow: Flow, data: Any, context: Any = None, batch_size: int = 8192) -> float:
    """Mean negative log-likelihood (nats) of `data` (a tensor, array or .npy path) under `flow`
    in eval mode, over all ranks; memory stays one batch's, however many rows.

    Example:
        >>> import torch, flowforge
        >>> flow = flowforge.RealNVP(2, layers=2, hidden=(8,))  # untrained: a standard normal
        >>> round(flowforge.mean_nll(flow, torch.zeros(10, 2)), 4)  # -log N(0; 0, I) = log(2 pi)
        1.8379
    """
    total = torch.zeros(2, dtype=torch.float64)
    for nll in _batch_nll(flow, data, context, batch_size, shard=distributed.is_distributed()):
        total[0] += nll.sum()
        total[1] += len(nll)
    total = distributed.sum_across(total)
    return float(total[0] / total[1])


def evaluate(
    flow: Flow, optimizer: torch.optim.Optimizer, state: TrainState, val: Tensor | None, val_context: Tensor | None, patience: int | None,
    restorable: bool = True,
) -> None:
    """Snapshot the good state; measure the validation NLL, keep the best weights, decide early stop.
    Weights whose validation NLL is not finite are no state to restore: they are not kept. The
    starting weights (`restorable=False`) may be the best, but are no state to restore after
    non-finite steps: a run that diverges at once is reported, not silently reset to its start.
    With a moving average of the weights (`state.ema`), the average is measured and kept as best;
    the good state to restore stays the live one."""
    snapshot = (clone_state(flow), clone_state(optimizer))
    if val is None:
        state.good = snapshot
        return
    with ema_weights(flow, state.ema):
        val_nll = mean_nll(flow, val, val_context)
        weights = clone_state(flow) if state.ema is not None else snapshot[0]
    state.history.val_step.append(state.step)
    state.history.val_nll.append(val_nll)
    if math.isfinite(val_nll) and restorable:
        state.good = snapshot
    _keep_best(state, val_nll, weights, patience)


def _keep_best(state: TrainState, val_nll: float, weights: dict[str, Tensor], patience: int | None) -> None:
    """The early-stopping rule: keep the weights when they beat every earlier evaluation; stop
    after `patience` evaluations in a row that do not (None: never)."""
    history = state.history
    if val_nll < history.best_val_nll:
        history.best_val_nll, history.best_step = val_nll, state.step
        state.best, state.evals_since_best = weights, 0
    else:
        state.evals_since_best += 1
    if patience is not None and state.evals_since_best >= patience:
        history.stopped_early = True
