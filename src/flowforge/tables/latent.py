"""From raw continuous values to the flow's unbounded y and back, with dequantisation.

Integer and datetime columns are whole numbers k; the models see k + u, u ~ U(0, 1), so a
density q on y gives the probability P(k) = E_u[q(k + u) |dy/dx|] of the cell. Scoring estimates
it with S draws of u:  log P(k) ~ log (1/S) sum_s q(k + u_s) |dy/dx|_s,  a lower bound in
expectation (Jensen) that tightens as S grows; with no such column it is exact and S = 1.
A nonnegative column's zeros are dequantised the same way over (0, d) (support.dequantise); its
positive values are not, so for them the S draws agree and the density is exact.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .schema import Schema
from .support import dequantise, is_dequantised, requantise, to_data, to_latent

EPS = 1e-6  # u stays in [EPS, 1 - EPS]: k + u > 0 for the log map of counts starting at 0


def has_dequantised(schema: Schema) -> bool:
    return any(is_dequantised(c) for c in schema.continuous)


def noise(schema: Schema, n: int, samples: int, generator: torch.Generator) -> Tensor:
    """(samples, n, D) float64: U(EPS, 1 - EPS) on dequantised columns, 0 on the others."""
    mask = torch.tensor([float(is_dequantised(c)) for c in schema.continuous], dtype=torch.float64)
    u = torch.rand(samples, n, len(mask), generator=generator, dtype=torch.float64)
    return (EPS + (1 - 2 * EPS) * u) * mask


def scoring_noise(schema: Schema, samples: int, seed: int) -> Tensor:
    """(samples, 1, D) draws of u shared by every row, so a row's score does not depend on the
    rows scored with it; a Latin hypercube (each column's draws one per stratum of [0, 1)), which
    keeps each P(k) estimate unbiased with less spread than independent draws."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.tensor([float(is_dequantised(c)) for c in schema.continuous], dtype=torch.float64)
    strata = torch.stack([torch.randperm(samples, generator=generator) for _ in mask], 1) if len(mask) else torch.zeros(samples, 0)
    u = (strata + torch.rand(samples, len(mask), generator=generator, dtype=torch.float64)) / samples
    return (EPS + (1 - 2 * EPS) * u)[:, None, :] * mask


def to_latents(schema: Schema, x: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """(m, D) raw values and (m, D) noise (0 where unused) -> y (m, D) and the summed log of
    |dy/dx| and of the dequantised cells' widths (m,), float64."""
    if not schema.continuous:
        return x, torch.zeros(len(x), dtype=x.dtype)
    u = u.expand_as(x)
    ys, logs = [], []
    for j, c in enumerate(schema.continuous):
        value, log_width = dequantise(c, x[:, j], u[:, j])
        y, logabsdet = to_latent(c, value)
        ys.append(y)
        logs.append(logabsdet + log_width)
    return torch.stack(ys, 1), torch.stack(logs, 1).sum(1)


def from_latents(schema: Schema, y: Tensor) -> np.ndarray:
    """(n, D) latents -> raw values, floored to whole numbers on dequantised columns."""
    columns = []
    for j, c in enumerate(schema.continuous):
        columns.append(requantise(c, to_data(c, y[:, j].double())))
    return torch.stack(columns, 1).numpy() if columns else np.zeros((len(y), 0))


def mean_exp(log_values: Tensor) -> Tensor:
    """log of the mean over dim 0 of exp(log_values), stably: (S, n) -> (n,)."""
    return torch.logsumexp(log_values, 0) - math.log(log_values.shape[0])
