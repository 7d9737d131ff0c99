"""Small tables: the trained flow is kept only where its validation rows say it is clearly better
than its start, the full-covariance Gaussian of the training rows.

Below training.SMALL_TABLE_ROWS the flow's first layer whitens and the rest start as the identity,
so step 0 is that Gaussian; early stopping then picks the best of many validation checks on a
handful of rows (mtcars: 4 or 5), and a step that wins on so few rows by chance keeps whatever
shape and tails it grew with no evidence for them. The test, per validation row i (its NLL
averaged over its dequantised copies):

    gain_i = NLL_start(i) - NLL_trained(i),   kept when mean(gain) > t(m - 1) * sd(gain) / sqrt(m)

t(m - 1) the 97.5% quantile of Student's t with m - 1 degrees of freedom (a one-sided test at 2.5%:
3.18 for mtcars' 4 validation rows, 2.0 from 30 rows on)

With missing="model" the training rows with blank numeric cells, which the flow never trains on,
join the validation rows: gain_i is then the difference of importance-sampling estimates of the
log-density of their observed cells (the same draws under both flows). On airquality (80/20
splits) the validation rows alone reset the flow at seeds 0, 1 and 2 (gains 0.33 +- 0.19,
0.47 +- 0.26, 0.25 +- 0.14 nats on 14 rows), and the 31-35 incomplete rows gained 0.41 +- 0.10,
0.11 +- 0.12, 0.22 +- 0.06.

else the start is restored (its learned parameters; fitted buffers such as the whitening stay)
and metrics say so, with the numbers.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..flows.flow import Flow

# 97.5% quantiles of Student's t, 1 to 30 degrees of freedom; about 2.0 above
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def margin(rows: int) -> float:
    """Standard errors the mean gain over `rows` validation rows must exceed (t quantile, rows - 1 dof)."""
    return T_975[rows - 2] if 2 <= rows <= len(T_975) + 1 else 2.0


def start_state(flow: Flow) -> dict[str, Tensor]:
    """The flow's parameters before training (to restore the start with)."""
    return {name: value.detach().clone() for name, value in flow.named_parameters()}


@torch.no_grad()
def row_nll(flow: Flow, y: Tensor, context: Tensor | None, rows: int) -> np.ndarray:
    """(rows,) NLL of each row, averaged over its dequantised copies (y holds copy after copy)."""
    nll = -flow.log_prob(y, context if context is not None and context.shape[1] else None).double()
    return nll.reshape(-1, rows).mean(0).numpy()


def keep_trained(flow: Flow, start: dict[str, Tensor], y_val: Tensor, c_val: Tensor | None, rows: int,
                 extra: Callable[[], np.ndarray] | None = None) -> dict[str, float | bool]:
    """Restore the start unless the trained flow beats it clearly on the validation rows; what was
    measured: kept, the mean gain per row and its standard error (nats). `extra`: the log-likelihoods
    of more rows the flow never trained on under its current parameters (missing="model": the
    observed cells of the rows with blank numbers); their gains join the validation rows' in the test."""
    flow.eval()
    trained = row_nll(flow, y_val, c_val, rows)
    trained_extra = extra() if extra is not None else np.zeros(0)
    learned = copy.deepcopy({name: value.detach().clone() for name, value in flow.named_parameters()})
    with torch.no_grad():
        for name, value in flow.named_parameters():
            value.copy_(start[name])
    gain = row_nll(flow, y_val, c_val, rows) - trained
    if extra is not None:
        gain = np.concatenate([gain, trained_extra - extra()])
    rows = len(gain)
    error = float(gain.std(ddof=1) / np.sqrt(rows)) if rows > 1 else float("inf")
    kept = bool(rows > 1 and np.isfinite(gain).all() and gain.mean() > margin(rows) * error)
    if kept:
        with torch.no_grad():
            for name, value in flow.named_parameters():
                value.copy_(learned[name])
    return {"kept": kept, "gain": float(gain.mean()), "gain_error": error, "margin": margin(rows), "rows": rows}


def describe_gain(test: dict[str, float | bool]) -> str:
    """keep_trained's test in words: the mean gain and the margin it had to clear, or, with a single
    validation row, that no standard error (hence no test) exists."""
    if test["rows"] < 2:
        return f"1 validation row, a gain of {test['gain']:.2f} nats: with one row there is no standard error, so no test can tell it from chance"
    return (f"mean gain {test['gain']:.2f} +- {test['gain_error']:.2f} nats per row over {test['rows']} rows; kept above "
            f"{test['margin']:.2f} standard errors, the 97.5% quantile of Student's t with {test['rows'] - 1} degrees of freedom "
            "(2 above 30)")
