"""TableFlow.log_prob's rules for whole tables: unseen values, blank cells, and the sums.

    complete rows:                 log[(1 - w) P(c) q(y | c) + w F(c) N(y)] + sum log|dy/dx|
                                   (model.py; latent.py for counts)
    unseen level / outside support: -inf
    blank categorical cells only:  the exact marginal, log sum over their levels of p(row)
    a blank continuous cell:       NaN (a flow's marginal over some of its inputs has no closed form),
                                   or with missing="model" an importance-sampling estimate of the
                                   density of the observed cells, with its standard error (observed.py)

With missing="model" every row's log p is conditional on its blank pattern m, log p(c, y_obs | m)
(pattern_shift): a complete row's is the density of complete rows, as missing="drop" fits it, and
log P(m) is TableFlow.log_prob_pattern.
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import torch

from .baseline import TAIL_WEIGHT
from .discrete import one_hot
from .encode import encode
from .latent import has_dequantised, mean_exp, scoring_noise, to_latents
from .observed import IMPORTANCE_SAMPLES, estimate

MAX_COMBINATIONS = 4096  # rows whose blank categorical cells have more level combinations than this get NaN


def pattern_shift(model, codes: torch.Tensor, pattern: np.ndarray | int) -> torch.Tensor:
    """missing="model": log P(m | c) - log P(m), which turns log p(c, y_obs) into log p(c, y_obs | m), the
    density of the cells a row has given which it has (zeros otherwise, and for a pattern of probability 0)."""
    pattern_model = getattr(model, "pattern_model", None)
    if pattern_model is None:
        return torch.zeros(len(codes), dtype=torch.float64)
    pattern = torch.as_tensor(np.broadcast_to(pattern, (len(codes),)).copy(), dtype=torch.long)
    known = pattern >= 0
    shift = torch.zeros(len(codes), dtype=torch.float64)
    shift[known] = pattern_model.log_prob(codes[known], pattern[known]) - pattern_model.log_marginal[pattern[known]]
    return shift


def joint_log_prob(model, codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log[(1 - w) P(c) q(y | c) + w F(c) N(y)] of codes (m, C) and latents y (m, D), float64
    (no support-map Jacobians: the caller adds those)."""
    discrete = model.discrete.log_prob(codes).double()
    hot = one_hot(codes, model.discrete.sizes)
    context = hot if hot.shape[1] else None
    flow = discrete
    if model.flow is not None:
        copula = getattr(model, "copula", None)  # marginals="copula": the flow's density is of z = Phi^-1(F_h(y))
        z, log_det = copula(y) if copula is not None else (y, 0.0)
        flow = flow + model.flow.log_prob(z.float(), context).double() + log_det
    baseline = getattr(model, "baseline", None)  # None in a model saved before the mixture
    if baseline is None:
        return flow
    tail = baseline.codes_log_prob(codes) + baseline.latent_log_prob(y)
    return torch.logaddexp(flow + math.log1p(-TAIL_WEIGHT), tail + math.log(TAIL_WEIGHT))


def log_prob_rows(model, codes_np: np.ndarray, x_np: np.ndarray) -> np.ndarray:
    """log p of complete, in-support rows: codes (n, C), raw continuous values x (n, D). The flow
    and the baseline see the same dequantisation draws, so the estimate is of the mixture's P."""
    codes = torch.from_numpy(codes_np)
    samples = model.samples if has_dequantised(model.schema) and model.flow is not None else 1
    u = scoring_noise(model.schema, samples, model.seed + 1)
    logs = []
    for s in range(samples):
        y, logabsdet = to_latents(model.schema, torch.from_numpy(x_np), u[s])
        logs.append(joint_log_prob(model, codes, y) + logabsdet)
    complete = model.patterns.levels.index((False,) * len(model.patterns.columns)) if getattr(model, "pattern_model", None) else 0
    return (mean_exp(torch.stack(logs)) + pattern_shift(model, codes, complete)).numpy()


def observed_rows(model, codes: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with blank continuous cells (NaN in x), in-support, categories known: the importance-
    sampling estimate of the density of their observed cells and its standard error (observed.py)."""
    log_p, error = estimate(model, codes, x, joint_log_prob, seed=model.seed + 2)
    pattern = model.patterns.codes(model.schema, np.isnan(x)) if getattr(model, "pattern_model", None) else -1
    return log_p + pattern_shift(model, torch.from_numpy(codes), pattern).numpy(), error


def marginal(model, codes: np.ndarray, x: np.ndarray) -> float:
    """log p of one row summed over every level of its blank (-1) categorical cells."""
    blank = np.flatnonzero(codes < 0)
    choices = list(itertools.product(*[range(model.discrete.sizes[k]) for k in blank]))
    if len(choices) > MAX_COMBINATIONS:
        return float("nan")
    filled = np.repeat(codes[None], len(choices), 0)
    filled[:, blank] = np.array(choices)
    logs = log_prob_rows(model, filled, np.repeat(x[None], len(choices), 0))
    return float(torch.logsumexp(torch.from_numpy(logs), 0))


def _warn(df: pd.DataFrame, rows: np.ndarray, what: str) -> None:
    if rows.any():
        warnings.warn(f"log_prob: {int(rows.sum())} rows {what}, e.g. rows {list(df.index[rows][:10])}", stacklevel=4)


def score(model, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(n,) log p of every row of df by the rules in this module's docstring, with warnings, and
    (n,) the standard error of the rows whose log p is an importance-sampling estimate (NaN on the others)."""
    encoded = encode(model.schema, df)
    result, error = np.full(len(df), np.nan), np.full(len(df), np.nan)
    outside = encoded.outside
    blank_continuous = np.isnan(encoded.continuous).any(1)
    summed = encoded.missing & ~outside & ~blank_continuous
    complete = ~encoded.missing & ~outside
    estimated = np.zeros(len(df), bool)
    if getattr(model, "missing", "drop") == "model":
        estimated = blank_continuous & ~outside & (encoded.codes >= 0).all(1)
    result[outside] = -np.inf
    if outside.any():
        warnings.warn(f"log_prob: {int(outside.sum())} rows outside the model's support get -inf, e.g. rows "
                      f"{list(df.index[outside][:10])}: {encoded.describe_outside(df.index)}", stacklevel=4)
    _warn(df, encoded.missing & ~summed & ~outside & ~estimated, "with blank continuous cells get NaN")
    _warn(df, summed, "with blank categorical cells get the exact marginal over those cells")
    _warn(df, estimated, f"with blank continuous cells get an importance-sampling estimate ({IMPORTANCE_SAMPLES} draws) of the "
          "density of their observed cells (a lower bound in expectation; its standard error: TableFlow.log_prob_details)")
    if complete.any():
        result[complete] = log_prob_rows(model, encoded.codes[complete], encoded.continuous[complete])
    for i in np.flatnonzero(summed):
        result[i] = marginal(model, encoded.codes[i], np.nan_to_num(encoded.continuous[i]))
    if estimated.any():
        result[estimated], error[estimated] = observed_rows(model, encoded.codes[estimated], encoded.continuous[estimated])
    return result, error
